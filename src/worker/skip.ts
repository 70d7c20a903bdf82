/**
 * The worker's skip list: ready markers not worth reading again until a local time (a task not
 * yet due, a live lease, a marker that may still become stale). Shared by the poller, which
 * consults it, and the monitor and attempts, which add to it.
 *
 * @module
 */
import type { ServerClock } from "../clock.ts";

/** Marker key → local time until which it is not worth reading its task again. */
export class SkipList {
  readonly #clock: ServerClock;
  readonly #until = new Map<string, number>();

  constructor(clock: ServerClock) {
    this.#clock = clock;
  }

  /** Skip `key` until local time `localMs`. */
  set(key: string, localMs: number): void {
    this.#until.set(key, localMs);
  }

  /** Skip `key` until server time `serverMs` (at least 200 ms from now); returns that local time. */
  untilServer(key: string, serverMs: number): number {
    const local = Math.max(serverMs - this.#clock.offsetMs(), this.#clock.localNow() + 200);
    this.#until.set(key, local);
    return local;
  }

  /** True while `key` is skipped at local time `localMs`. */
  skipped(key: string, localMs: number): boolean {
    return (this.#until.get(key) ?? 0) > localMs;
  }

  /** Forget `key` (its marker is gone). */
  delete(key: string): void {
    this.#until.delete(key);
  }

  /** Forget every entry whose time is over at local time `localMs`. */
  prune(localMs: number): void {
    for (const [key, until] of this.#until) if (until <= localMs) this.#until.delete(key);
  }

  /** How many keys are skipped (for tests). */
  get size(): number {
    return this.#until.size;
  }
}
