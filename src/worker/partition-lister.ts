/**
 * Listing one partition of the ready index for a worker's poller (src/worker/poller.ts): the due
 * markers it may act on, `PAGES_PER_POLL` pages at most, resuming where the last listing of a
 * deep partition stopped; and putting a listing to use, made just now or ahead
 * (./listing-ahead.ts).
 *
 * @module
 */
import type { QueueInternals } from "../queue/internals.ts";
import type { DueSoon } from "./due-soon.ts";
import type { Candidate } from "./monitor.ts";
import type { PollerOptions } from "./poller-options.ts";
import { PAGES_PER_POLL } from "./poller-settings.ts";
import { byEffectivePriority } from "./priority-order.ts";

/** What a listing of one partition found, before it is put to use. */
export interface PartitionListing<Marker extends { id: string }> {
  /** The due markers, in key order, not skipped or running when listed. */
  found: Marker[];
  /** Whether it stopped at the page limit (the next listing resumes after `last`). */
  capped: boolean;
  /** The last key read. */
  last?: string;
  /** The due time of the first marker not yet due, when one was reached (server ms). */
  nextDueMs?: number;
  /** When the listing's last page came in, local ms. */
  endedAt: number;
}

/** Lists a worker's partitions, and keeps where each deep one's next listing resumes. */
export class PartitionLister {
  readonly #queue: QueueInternals;
  readonly #o: PollerOptions;
  readonly #dueSoon: DueSoon;
  /** Per partition, where its next listing continues when the last stopped at its page limit. */
  readonly #resumeAfter = new Map<string, string>();
  #lastListingMs = 0;

  constructor(queue: QueueInternals, options: PollerOptions, dueSoon: DueSoon) {
    this.#queue = queue;
    this.#o = options;
    this.#dueSoon = dueSoon;
  }

  /** How long the last listing of a partition took, local ms. */
  get lastListingMs(): number {
    return this.#lastListingMs;
  }

  /** Where the next listing of `partition` resumes, when the last stopped at its page limit. */
  resumeAfter(partition: string): string | undefined {
    return this.#resumeAfter.get(partition);
  }

  /** List the due markers of one partition this worker may act on (`PAGES_PER_POLL` pages). */
  async list(partition: string): Promise<PartitionListing<Candidate>> {
    const { monitor, running } = this.#o;
    const q = this.#queue;
    const now = q.now();
    const startedAt = q.clock.localNow();
    const found: Candidate[] = [];
    const progress: { capped: boolean; nextDueMs?: number } = { capped: false };
    const resume = this.#resumeAfter.get(partition);
    let last: string | undefined;
    for await (const marker of q.markers({
      prefix: partition,
      dueBy: now,
      maxPages: PAGES_PER_POLL,
      progress,
      stopAtPause: true,
      ...(resume === undefined ? {} : { startAfter: resume }),
      onMalformed: monitor.malformed(now),
    })) {
      last = marker.key;
      if (this.#o.skip.skipped(marker.key, startedAt) || running.has(marker.id)) continue;
      found.push(marker);
    }
    const endedAt = q.clock.localNow();
    this.#lastListingMs = endedAt - startedAt;
    const listing: PartitionListing<Candidate> = { found, capped: progress.capped, endedAt };
    if (last !== undefined) listing.last = last;
    if (progress.nextDueMs !== undefined) listing.nextDueMs = progress.nextDueMs;
    return listing;
  }

  /** Put a listing of `partition` to use: the candidates it gives, in the order to take them. */
  use(partition: string, listing: PartitionListing<Candidate>): Candidate[] {
    const q = this.#queue;
    // A marker past our lower bound of server time that may be due all the same (a submit a
    // moment ago, stamped by a clock ahead of this one's lower bound).
    const { nextDueMs, last } = listing;
    if (nextDueMs !== undefined && nextDueMs <= q.clock.bounds().upper)
      this.#dueSoon.listedPast(nextDueMs - q.clock.offsetMs());
    if (listing.capped && last !== undefined) this.#resumeAfter.set(partition, last);
    else this.#resumeAfter.delete(partition);
    // A listing made ahead may show tasks that started here since.
    return byEffectivePriority(listing.found.filter((m) => !this.#o.running.has(m.id)));
  }
}
