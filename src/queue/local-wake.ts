/**
 * Waking this process's idle workers when this process submits a task they can run.
 *
 * A worker backs off to one listing per `maxPollMs` (6 s) when idle, to keep the bill of an idle
 * fleet small; a task submitted then waits up to that long. A submit made through the same
 * {@link Queue} object as a worker's can tell that worker directly, at no request: the woken
 * worker lists the task's partition at once (one LIST, as its next poll would have). A submit
 * from another process (or another `Queue` object) cannot reach it without a request, so those
 * still wait for the next poll (docs/protocol.md, "Waking local workers").
 *
 * @module
 */

/** A worker that a local submit may wake (the worker's poller). */
export interface WakeListener {
  /**
   * A task of `partition` (ready-index prefix of its type's shard), due now, was just submitted
   * here. True when this listener took the wake (it was idle and will list that partition now);
   * false when it is busy, already polling at its fast cadence, or does not run that partition.
   */
  submitted(partition: string): boolean;
  /**
   * The task of ready marker `marker` (full key) was just written here: a skip this listener
   * set for it (its listing came between the marker's write and the task's, when the task read
   * as missing) is over.
   */
  landed(marker: string): void;
}

/** The workers of one queue object that local submits may wake, woken one per submit. */
export class LocalWake {
  readonly #listeners: WakeListener[] = [];
  /**
   * Where the next submit starts looking: at the worker woken last, so a steady stream keeps
   * waking the same one (the others stay backed off, polling little) and moves on only while
   * that one is busy.
   */
  #next = 0;

  /** Wake `listener` on later submits, until {@link LocalWake.remove}. */
  add(listener: WakeListener): void {
    if (!this.#listeners.includes(listener)) this.#listeners.push(listener);
  }

  /** Stop waking `listener` (its worker stops). */
  remove(listener: WakeListener): void {
    const at = this.#listeners.indexOf(listener);
    if (at >= 0) this.#listeners.splice(at, 1);
  }

  /**
   * A task of `partition`, due now, was submitted (`marker` its ready marker's full key): tell
   * every listener it landed, and wake one idle listener that runs it. One is enough for one
   * task; waking all of them would cost a LIST each for a task only one can take, and leave them
   * all polling at their fast cadence.
   */
  submitted(partition: string, marker: string): void {
    for (const listener of this.#listeners) listener.landed(marker);
    const n = this.#listeners.length;
    for (let i = 0; i < n; i++) {
      const listener = this.#listeners[(this.#next + i) % n]!;
      if (listener.submitted(partition)) {
        this.#next = (this.#next + i) % n;
        return;
      }
    }
  }
}
