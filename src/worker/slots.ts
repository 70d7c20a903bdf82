/**
 * A worker's handler slots (issue 15). At most `concurrency` handlers run at once. An attempt
 * whose handler has returned gives its slot up while its outcome is written, so the next claim
 * overlaps the write; at most `concurrency` such writes are under way, and an attempt that
 * returns while they are waits for a place, keeping its slot until one frees. Every attempt
 * stays here (its task is not claimed again) until its write has ended.
 *
 * @module
 */

/** What the slots need to know of an attempt. */
interface SlotAttempt {
  readonly id: string;
  readonly type: string;
}

/** The attempts of one worker: handlers running, and outcomes being written. */
export class Slots<Attempt extends SlotAttempt> {
  /** Every attempt not freed yet, by task id. */
  readonly attempts = new Map<string, Attempt>();
  readonly #concurrency: number;
  /** Attempts whose outcome is being written, with their slot given up. */
  readonly #completing = new Set<Attempt>();
  /**
   * Attempts whose handler returned while `concurrency` writes were under way: the oldest gets
   * the place of the first write that ends. Without this, such an attempt kept its slot until
   * its own write ended, so a 1-slot worker claimed nothing during a write whenever the write
   * before it had outlasted the next claim (over a third of the tasks of 4 workers draining on
   * MinIO).
   */
  readonly #waiting = new Set<Attempt>();

  constructor(concurrency: number) {
    this.#concurrency = concurrency;
  }

  /** Slots taken: attempts whose handler runs, or returned and waits for a write place. */
  get size(): number {
    return this.attempts.size - this.#completing.size;
  }

  /** Whether the task `id` has an attempt here (running, or its outcome being written). */
  has(id: string): boolean {
    return this.attempts.has(id);
  }

  /** Slots taken by attempts of `type`. */
  takenBy(type: string): number {
    let n = 0;
    for (const a of this.attempts.values()) if (a.type === type && !this.#completing.has(a)) n++;
    return n;
  }

  /** A claimed attempt starts: it takes a slot. */
  add(attempt: Attempt): void {
    this.attempts.set(attempt.id, attempt);
  }

  /** `attempt`'s handler returned and only its outcome write is left. True when its slot freed. */
  handled(attempt: Attempt): boolean {
    if (this.#completing.size >= this.#concurrency) {
      this.#waiting.add(attempt);
      return false;
    }
    this.#completing.add(attempt);
    return true;
  }

  /** `attempt` is over (its write ended, or it gave up): its place goes to the oldest waiting. */
  freed(attempt: Attempt): void {
    // The same task may run here again (a later attempt) once this one is gone.
    if (this.attempts.get(attempt.id) === attempt) this.attempts.delete(attempt.id);
    this.#completing.delete(attempt);
    this.#waiting.delete(attempt);
    if (this.#completing.size >= this.#concurrency) return;
    for (const next of this.#waiting) {
      this.#waiting.delete(next);
      this.#completing.add(next);
      return;
    }
  }
}
