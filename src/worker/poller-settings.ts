/**
 * The poller's fixed settings (src/worker/poller.ts): when it steals, re-reads and relists, and
 * how deep one poll reads.
 *
 * @module
 */
/**
 * A pending task of a type this worker cannot run (found under its own type's partition, so a
 * task written by hand with a wrong type) is read again after this long, or at its TTL.
 */
export const UNHANDLED_RECHECK_MS = 10 * 60_000;

/** A task outside this worker's share is taken once it has been due this long. */
export const STEAL_AFTER_MS = 3000;

/**
 * For this long after a read that won nothing (a task running elsewhere or just finished, a lost
 * claim), a worker that sees no peers yet takes its candidates from a random point on.
 */
export const CONTENDED_MS = 10_000;

/** Pages of the ready index one poll reads at most. */
export const PAGES_PER_POLL = 3;

/** Reads in a row that found a task taken since the listing, after which a worker lists again. */
export const WASTED_READS_BEFORE_RELIST = 1;
