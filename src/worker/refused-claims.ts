/**
 * Detects a backend that refuses valid conditional writes: claims that keep losing to nobody.
 *
 * A claim is a `PUT` with `If-Match: <the ETag we read>`. Losing it with 412 is normal when
 * another worker wrote the task first, and then the task's ETag has changed. When a re-read shows
 * the very ETag we sent, nobody wrote: the backend (or a gateway on the way) refused a condition
 * that held. On such a backend every claim fails, so workers poll and re-claim forever (measured
 * at about 20 requests/s per worker, no task done, no warning). A few such refusals in a row stop
 * the worker with an {@link UnsafeBackendError} that points to `oq doctor`.
 *
 * Kept apart from the worker so the rule has one home and the worker only reports outcomes.
 *
 * @module
 */
import { UnsafeBackendError } from "../errors.ts";
import { sameEtag } from "../storage/storage.ts";

/** Refusals of a held condition in a row (on any tasks) after which the backend is unsafe. */
export const REFUSED_CLAIMS_LIMIT = 3;

/** Refused claims remembered at most (oldest forgotten first), to bound memory. */
const REMEMBERED = 1000;

/**
 * Counts claims refused with 412 while the task's ETag stayed what the claim sent. It costs no
 * request: a refused claim's ETag is remembered, and the worker's next read of that task (it
 * reads a task before every claim) tells whether anybody wrote in between. A won claim or a real
 * loss (the ETag changed: someone else wrote) resets the count.
 */
export class RefusedClaims {
  readonly #limit: number;
  /** Task key → the ETag a refused claim sent. */
  readonly #refused = new Map<string, string>();
  #streak = 0;

  constructor(limit = REFUSED_CLAIMS_LIMIT) {
    this.#limit = limit;
  }

  /** A claim succeeded: the backend honours `If-Match`. */
  won(): void {
    this.#streak = 0;
  }

  /** A claim on `key` sending `If-Match: sent` was refused with 412. */
  refused(key: string, sent: string): void {
    this.#refused.delete(key);
    this.#refused.set(key, sent);
    if (this.#refused.size > REMEMBERED) {
      this.#refused.delete(this.#refused.keys().next().value as string);
    }
  }

  /**
   * About to claim `key`, read with ETag `current`. When an earlier claim on it was refused with
   * that very ETag, nobody wrote since: the backend refused a condition that held. Returns the
   * error to stop with once that happened `limit` times in a row.
   */
  claiming(key: string, current: string): UnsafeBackendError | undefined {
    const sent = this.#refused.get(key);
    if (sent === undefined) return undefined;
    this.#refused.delete(key);
    if (!sameEtag(sent, current)) {
      this.#streak = 0;
      return undefined;
    }
    this.#streak++;
    if (this.#streak < this.#limit) return undefined;
    return new UnsafeBackendError(
      `The backend refused ${this.#streak} claims in a row with 412 although nobody had changed the task (its ETag was still ${current}): it does not honour If-Match, so no task can be claimed. Run oq doctor to see what it mishandles and what to do; the worker stopped.`,
      { key, status: 412 },
    );
  }
}
