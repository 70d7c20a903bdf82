/**
 * Listing a partition again before the listing in use goes stale (issue 15). A busy worker reuses
 * a listing for `listReuseMs` (2 s), then lists again, and that listing (then up to three pages,
 * read one after another; one page now) used to hold up its claims: four one-slot workers
 * draining a 2,000-task backlog claimed nothing for 0.3-0.7 s every 2.5 s while MinIO answered
 * their 1,000-key pages. So a busy worker with quick handlers starts the next listing of the
 * partition it would list next a little before its listing goes stale, beside its claims, and
 * the relist takes it.
 *
 * A listing made ahead is used only for the partition it was made for and only while it is no
 * older than `listReuseMs` (so it is never staler than the listing it replaces); the tasks this
 * worker claimed meanwhile are left out of it, as a fresh listing leaves out running ones. One
 * not used (a local submit's wake listed another partition first, the worker went quiet) is
 * dropped: at most one LIST more per busy spell.
 *
 * @module
 */
import type { PartitionListing } from "./partition-lister.ts";

/** A listing ahead never starts earlier than this before its predecessor goes stale, ms. */
export const LIST_AHEAD_MIN_MS = 50;

/**
 * How long before the listing in use goes stale to start the next: one and a half times as
 * long as the last listing took, at least {@link LIST_AHEAD_MIN_MS}, at most half of
 * `listReuseMs` (so a worker still lists at most twice per `listReuseMs`).
 */
export function listAheadLeadMs(lastListingMs: number, listReuseMs: number): number {
  return Math.min(listReuseMs / 2, Math.max(LIST_AHEAD_MIN_MS, lastListingMs * 1.5));
}

interface Held<Marker extends { id: string }> {
  partition: string;
  at: number;
  listing: Promise<PartitionListing<Marker> | undefined>;
  /** Tasks this worker claimed since the listing started. */
  claimed: Set<string>;
}

/** The one listing a poller keeps ahead of its next relist. */
export class ListingAhead<Marker extends { id: string }> {
  #held: Held<Marker> | undefined;
  /** Listings started and not settled yet, taken or not. */
  readonly #inFlight = new Set<Promise<unknown>>();

  /** Whether a listing is held (in flight or done, not yet taken). */
  get held(): boolean {
    return this.#held !== undefined;
  }

  /** Start `list` for `partition` at local time `at`, in place of any listing held before. */
  start(partition: string, at: number, list: () => Promise<PartitionListing<Marker>>): void {
    // A failed listing ahead is nobody's: the relist lists again, and reports its own failure.
    const listing = list().catch(() => undefined);
    this.#inFlight.add(listing);
    void listing.then(() => this.#inFlight.delete(listing));
    this.#held = { partition, at, listing, claimed: new Set() };
  }

  /** This worker claimed task `id`: a listing held leaves it out. */
  claimed(id: string): void {
    this.#held?.claimed.add(id);
  }

  /**
   * The listing held for `partition`, when it started within `maxAgeMs` of local time `now`,
   * without the tasks claimed since it started; undefined when there is none to use (list now).
   * A listing held for another partition stays held.
   */
  async take(
    partition: string,
    now: number,
    maxAgeMs: number,
  ): Promise<PartitionListing<Marker> | undefined> {
    const held = this.#held;
    if (held === undefined || held.partition !== partition) return undefined;
    this.#held = undefined;
    if (now - held.at > maxAgeMs) return undefined;
    const listing = await held.listing;
    if (listing === undefined || held.claimed.size === 0) return listing;
    return { ...listing, found: listing.found.filter((m) => !held.claimed.has(m.id)) };
  }

  /** Drop the listing held, if any (a relist of every partition is asked for). */
  drop(): void {
    this.#held = undefined;
  }

  /** Resolves once no listing started here is in flight: no request outlives its worker. */
  async settled(): Promise<void> {
    await Promise.all(this.#inFlight);
  }
}
