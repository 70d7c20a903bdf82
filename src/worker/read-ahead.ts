/**
 * Reading the next task beside this claim (issue 15). A worker whose claim takes its last free
 * slot would otherwise, once the handler returns, read the next candidate and then claim it: two
 * round trips in a row per task, which held 4 one-slot workers to about half of what storage
 * allows. So the claim that fills the last slot starts the read of the next candidate beside
 * its own write, and the next claim needs only its write.
 *
 * The read is used only for the marker it was made for (listed before the read started, like
 * any read after a listing) and only while it is fresh; a stale read costs at worst a claim
 * refused by its condition, as any read that raced another worker. Slow handlers make every
 * read-ahead stale before its use, so none is made after a handler that took longer than
 * {@link QUICK_HANDLER_MS}: the requests per task stay what they were.
 *
 * @module
 */
import type { Versioned } from "../queue/types.ts";

/** A read-ahead older than this when its marker's turn comes is not used, ms. */
export const READ_AHEAD_FRESH_MS = 1000;

/** A handler that returned within this long lets the next claim read ahead, ms. */
export const QUICK_HANDLER_MS = 250;

/** One read of a task started ahead of its claim. */
interface Held {
  /** The full key of the marker it was read for. */
  markerKey: string;
  /** When the read started, local ms. */
  at: number;
  read: Promise<Versioned | undefined>;
}

/** The one read a poller keeps ahead of its next claim. */
export class ReadAhead {
  readonly #localNow: () => number;
  #held: Held | undefined;

  constructor(localNow: () => number) {
    this.#localNow = localNow;
  }

  /** The marker key of the read held, if any: its candidate is tried first. */
  get heldKey(): string | undefined {
    return this.#held?.markerKey;
  }

  /** Start `read` for the marker `markerKey`, in place of any read held before. */
  start(markerKey: string, read: () => Promise<Versioned | undefined>): void {
    const pending = read();
    // Dropped unused, its failure is nobody's: the marker's own turn reads again.
    pending.catch(() => {});
    this.#held = { markerKey, at: this.#localNow(), read: pending };
  }

  /**
   * The held read for `markerKey` when it is fresh (it is given up either way), or undefined:
   * read the task now.
   */
  take(markerKey: string): Promise<Versioned | undefined> | undefined {
    const held = this.#held;
    if (held === undefined || held.markerKey !== markerKey) return undefined;
    this.#held = undefined;
    return this.#localNow() - held.at <= READ_AHEAD_FRESH_MS ? held.read : undefined;
  }
}
