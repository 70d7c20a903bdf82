/**
 * The monitor's pruning: in each monitor round, the finished-journal partitions
 * (`done/{type}/{status}/`) in this worker's share whose retention may have passed get a step
 * each, a few journals per step (docs/protocol.md, "Retention"). A partition is listed again
 * only once something in it can be past retention: after a look that found its oldest journal
 * at time T, not before T + retention (as set when the round starts); so a queue with a week's retention lists each partition
 * about once a week, and an idle queue with no journals costs one LIST per round. A pass over a
 * partition's journals goes on, step after step, from the last journal handled, so journals left
 * in place (malformed ones, for an operator) are read once a pass, never again at every step.
 *
 * The journal misses the tasks a worker finished and had not journaled yet when it was killed
 * (its journal is flushed every few seconds). So the monitor whose share holds `tasks/` also
 * walks `tasks/`, up to {@link SCAN_PAGES_PER_ROUND} pages of 1,000 keys a round, picking up
 * where the last round stopped, and reads only the objects written longer ago than the shortest
 * retention plus two rounds (by then the journal has pruned the tasks it names): the finished
 * ones past retention are deleted. A walk starts at most once per shortest retention (at most
 * an hour, at least a round), so a small queue pays one LIST an hour for it; when every status
 * is kept forever it lists nothing.
 *
 * @module
 */
import type { FinishedStatus } from "../keys.ts";
import type { QueueInternals } from "../queue/internals.ts";
import { PruneRun } from "../queue/prune.ts";
import { FINISHED_STATUSES, retentionMs, shortestRetentionMs } from "../queue/retention.ts";

/** Journals one monitor step prunes at most (each up to 1,000 tasks). */
export const PRUNE_JOURNALS_PER_STEP = 16;

/**
 * Pages of `tasks/` the monitor's scan lists per round at most (a walk of a million tasks takes
 * 100 rounds, under a day at the default round).
 */
export const SCAN_PAGES_PER_ROUND = 10;

/** A new walk of `tasks/` starts at least this often (sooner when the retention is shorter). */
const WALK_EVERY_MAX_MS = 60 * 60_000;

/**
 * Requests the monitor's pruning keeps in flight at most: it shares the worker's connections
 * with the work, so it reads a few at a time rather than in a burst that opens a socket each.
 */
const PRUNE_IN_FLIGHT = 4;

/** A step of the monitor's round: one request or a small bounded batch. */
export type Step = () => Promise<void>;

/** The pruning part of one worker's monitor. */
export class Pruner {
  readonly #queue: QueueInternals;
  readonly #owns: (partition: string) => boolean;
  /** Per partition prefix: the time of its oldest journal at the last look (or of that look). */
  readonly #oldest = new Map<string, number>();
  /**
   * Per partition prefix: the key of the last journal its steps handled in a pass not yet at
   * the partition's end (deleted, or left in place on purpose). Steps list from after it, so
   * more than {@link PRUNE_JOURNALS_PER_STEP} journals left in place never hold up the ones
   * behind them, nor make every poll list and read the same journals again. A pass that reached
   * the end forgets it, so the partition's next pass, a round later at the soonest ({@link start}
   * queues partitions only then), starts from the oldest: journals left in place that became
   * prunable since (or written late, behind the position) are reached then. A pass cut short by
   * an error goes on from it in the next round.
   */
  readonly #after = new Map<string, string>();
  /** The monitor's round length, ms: the scan reads objects two rounds past retention. */
  readonly #roundMs: number;
  /** Where the walk of `tasks/` goes on next round (undefined: from the start). */
  #scanFrom: string | undefined;
  /** When the last walk of `tasks/` started, local ms. */
  #walkAt = Number.NEGATIVE_INFINITY;

  constructor(queue: QueueInternals, owns: (partition: string) => boolean, roundMs: number) {
    this.#queue = queue;
    this.#owns = owns;
    this.#roundMs = roundMs;
  }

  /**
   * The first step of a round's pruning: list the types with journals (one delimiter LIST per
   * 1,000 types) and queue, through `push`, a step for each partition in this worker's share
   * that may hold journals past retention.
   */
  start(push: (step: Step) => void): Step {
    return async () => {
      const q = this.#queue;
      const now = q.now();
      const { retention } = await q.manifest.load();
      for (const type of await q.journal.types()) {
        for (const status of FINISHED_STATUSES) {
          const partition = q.keys.journals(type, status);
          if (!this.#owns(partition)) {
            this.#after.delete(partition); // if it comes back to this worker, from the oldest
            continue;
          }
          const oldest = this.#oldest.get(partition) ?? Number.NEGATIVE_INFINITY;
          if (oldest + retentionMs(retention, type, status) > now) continue;
          push(this.#step(type, status, push));
        }
      }
      if (this.#owns(q.keys.tasks) && this.#walkDue(shortestRetentionMs(retention)))
        push(this.#scan(SCAN_PAGES_PER_ROUND, push));
    };
  }

  /** Whether the walk of `tasks/` goes on this round (one under way, or a new one due). */
  #walkDue(shortest: number): boolean {
    if (this.#scanFrom !== undefined) return true;
    if (shortest === Number.POSITIVE_INFINITY) return false;
    const local = this.#queue.clock.localNow();
    const every = Math.max(this.#roundMs, Math.min(WALK_EVERY_MAX_MS, shortest));
    if (local - this.#walkAt < every) return false;
    this.#walkAt = local;
    return true;
  }

  /** One page of the walk of `tasks/`; the next page is another step, `pages` at most. */
  #scan(pages: number, push: (step: Step) => void): Step {
    return async () => {
      const q = this.#queue;
      const { retention } = await q.manifest.load();
      const run = new PruneRun(q, retention ?? {}, { inFlight: PRUNE_IN_FLIGHT });
      const from = this.#scanFrom;
      this.#scanFrom = undefined; // a failed page starts the walk over next round
      const page = await run.scanPage(undefined, FINISHED_STATUSES, from, 2 * this.#roundMs);
      const { deleted } = run.result();
      if (deleted > 0)
        q.logger.info(`pruned ${deleted} finished tasks past retention no journal named`);
      this.#scanFrom = page?.next;
      if (page?.next !== undefined && pages > 1) push(this.#scan(pages - 1, push));
    };
  }

  #step(type: string, status: FinishedStatus, push: (step: Step) => void): Step {
    return async () => {
      const q = this.#queue;
      const { retention } = await q.manifest.load();
      const run = new PruneRun(q, retention ?? {}, { inFlight: PRUNE_IN_FLIGHT });
      const partition = q.keys.journals(type, status);
      const from = this.#after.get(partition);
      const done = await run.partition(type, status, PRUNE_JOURNALS_PER_STEP, from);
      this.#oldest.set(partition, done.oldestMs);
      // The next step goes on after the last journal handled: one left in place (malformed, or
      // with entries not yet due or not task ids) must not be read again at every step. At the
      // end of the partition the next round, not the next step, starts from the oldest again.
      if (!done.more) this.#after.delete(partition);
      else if (done.last !== undefined) this.#after.set(partition, done.last);
      const { deleted, skipped } = run.result();
      if (deleted > 0 || skipped > 0)
        q.logger.info(
          `pruned ${deleted} ${status} ${type} tasks past retention${skipped > 0 ? ` (${skipped} not as their journal says, left)` : ""}`,
        );
      if (done.more) push(this.#step(type, status, push));
    };
  }
}
