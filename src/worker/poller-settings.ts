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

/**
 * Pages of the ready index one poll reads at most (a page is up to 1,000 markers). One: a busy
 * worker lists again every `listReuseMs` anyway, and takes a share of what it listed. Three pages
 * (the old bound) made four workers draining a 2,000-task backlog list 13-30 markers per task
 * where one page lists about 10; MinIO spends about 0.04 ms of CPU per marker listed (a GET is
 * about 0.8 ms), so the extra pages cost 5-10% of the throughput of a CPU-bound storage.
 */
export const PAGES_PER_POLL = 1;

/** Reads in a row that found a task taken since the listing, after which a worker lists again. */
export const WASTED_READS_BEFORE_RELIST = 1;
