/**
 * What ends a poller's pause: a freed slot or a stop ({@link Wakes.wake}), and a task submitted
 * through the worker's own queue object ({@link Wakes.submitted}, `../queue/local-wake.ts`).
 *
 * A local submit's wake is taken when the poller is in an idle pause: its next listing comes at
 * once (paced by `minPollMs`), starts at the task's partition, and takes no monitor step first.
 * When a pass is under way instead, the wake is declined, so that an idle worker of the process
 * may take it, but kept as missed: the pass may have listed before the task landed, so no idle
 * pause may follow it, and its next listing must reach that partition.
 *
 * @module
 */

/** The wakes a listing starting now answers (see {@link Wakes.take}). */
export interface TakenWakes {
  /** The partition a taken wake named: listed first, with no monitor step before it. */
  woken: string | undefined;
  /** The partition a missed wake named: listed first, though a monitor step may come before. */
  missed: string | undefined;
}

/** A poller's wake-ups (one per poller). */
export class Wakes {
  readonly #isRunning: () => boolean;
  #controller = new AbortController();
  /** Whether the loop is in an idle pause (its last pass found nothing). */
  #idle = false;
  #woken: string | undefined;
  #missed: string | undefined;

  /** @param isRunning whether the worker runs (a stopped worker's signal stays aborted). */
  constructor(isRunning: () => boolean) {
    this.#isRunning = isRunning;
  }

  /** Aborted by the next wake: ends the loop's pause. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** End the loop's pause now (a slot freed, or the worker stops). */
  wake(): void {
    // A reason nobody reads: without one, each wake (two per task) built a DOMException's stack.
    this.#controller.abort("woken");
    if (this.#isRunning()) this.#controller = new AbortController();
  }

  /** Mark the loop as in an idle pause (`true`) or out of it. */
  idle(pausing: boolean): void {
    this.#idle = pausing;
  }

  /**
   * A task due now was submitted locally for `partition`, one the poller lists. True when the
   * wake is taken (the loop was in an idle pause, now ended); false when one is already taken,
   * or when a pass is under way (the wake is then kept as missed).
   */
  submitted(partition: string): boolean {
    if (this.#woken !== undefined) return false;
    if (!this.#idle) {
      this.#missed ??= partition;
      return false;
    }
    this.#woken = partition;
    this.wake();
    return true;
  }

  /** Whether a wake waits for a listing: the next pass must list, not reuse the last listing. */
  get waiting(): boolean {
    return this.#woken !== undefined || this.#missed !== undefined;
  }

  /** Whether a missed wake waits: the loop lists again after `minPollMs`, not an idle pause. */
  get missed(): boolean {
    return this.#missed !== undefined;
  }

  /** Whether a taken wake waits. */
  get woken(): boolean {
    return this.#woken !== undefined;
  }

  /** Hand the waiting wakes to a listing that starts now, and forget them. */
  take(): TakenWakes {
    const taken = { woken: this.#woken, missed: this.#missed };
    this.#woken = this.#missed = undefined;
    return taken;
  }
}
