/**
 * Time as the storage server sees it. Leases, delays and TTLs are judged by the server's clock,
 * estimated from the `Date` header of responses the queue makes anyway, so a worker whose local
 * clock is minutes off neither starts delayed tasks early nor steals live leases.
 *
 * @module
 */
import type { Storage } from "./storage/storage.ts";

/** A source of the current time in epoch milliseconds. Injectable for tests. */
export type Now = () => number;

/**
 * The server clock seen through a storage. `Date` headers have one-second resolution and are
 * truncated, so the true server time at arrival lies in `[serverMs, serverMs + 1000)`, minus the
 * response's travel time. {@link ServerClock.now} returns the low end of that range: a task is
 * judged due, or a lease expired, only once it surely is.
 */
export class ServerClock {
  readonly #storage: Storage;
  readonly #local: Now;
  #best: number | undefined;
  #lastSampleAt: number | undefined;

  /**
   * @param storage whose responses carry the server's time.
   * @param local the local clock (default `Date.now`); only its rate is trusted, not its value.
   */
  constructor(storage: Storage, local: Now = Date.now) {
    this.#storage = storage;
    this.#local = local;
  }

  /**
   * Milliseconds to add to the local clock to get the (low estimate of) server time.
   *
   * Each response gives a lower bound of the true offset (its `Date` was truncated and stamped
   * before the response travelled), so the largest bound seen is the best estimate; taking the
   * latest instead would make server time jump back by up to a second between responses. A
   * sample far below the best means the local clock itself jumped forward: start again from it.
   */
  offsetMs(): number {
    const seen = this.#storage.serverTime();
    if (seen !== undefined && seen.localMs !== this.#lastSampleAt) {
      this.#lastSampleAt = seen.localMs;
      const sample = seen.serverMs - seen.localMs;
      if (this.#best === undefined || sample > this.#best || this.#best - sample > 5000)
        this.#best = sample;
    }
    return this.#best ?? 0;
  }

  /** The current server time in epoch milliseconds (a low estimate; see the class doc). */
  now(): number {
    return this.#local() + this.offsetMs();
  }

  /** The local clock this server clock corrects. */
  localNow(): number {
    return this.#local();
  }
}
