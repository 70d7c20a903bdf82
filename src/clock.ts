/**
 * Time as the storage server sees it. Leases, delays and TTLs are judged by the server's clock,
 * estimated from the `Date` header of responses the queue makes anyway, so a worker whose local
 * clock is minutes off neither starts delayed tasks early nor steals live leases.
 *
 * @module
 */
import type { ServerTimeSample, Storage } from "./storage/storage.ts";

/** A source of the current time in epoch milliseconds. Injectable for tests. */
export type Now = () => number;

/**
 * How fast the local clock may run against the server's between two samples, as a fraction:
 * 500 ppm is the most an NTP daemon slews a clock; quartz alone is within 100 ppm.
 */
export const MAX_DRIFT = 500e-6;

/** Lower and upper bound of the server's time now, epoch ms. */
export interface ServerTimeBounds {
  /** The server's time is at least this. */
  lower: number;
  /** The server's time is at most this. */
  upper: number;
}

/**
 * The server clock seen through a storage, tracked as an interval.
 *
 * Each response bounds the offset between server and local time: the server stamped its time
 * (in `[serverMs, serverMs + resolutionMs)`, an HTTP `Date` is truncated to the second) at some
 * local moment between the request's send and its response's arrival, so the offset lies in
 * `[serverMs − arrived, serverMs + resolutionMs − sent]`. The clock intersects these bounds
 * (widened by {@link MAX_DRIFT} for the time between samples), which narrows to about a round
 * trip once responses have straddled a second boundary.
 *
 * A sample outside the interval cannot be a true reading of a steady local clock: the local
 * clock stepped (NTP, a suspended VM, an operator). The clock then starts again from that sample
 * alone (a re-anchor) instead of keeping an estimate that runs ahead of or behind the server.
 * A step smaller than one sample's width may go unnoticed for a while; it shifts the estimate by
 * at most that width (about a second plus a round trip), which the lease margins cover
 * (docs/protocol.md, "Leases and time").
 *
 * {@link ServerClock.now} is the lower bound: a task is judged due, or a lease expired, only
 * once it surely is. A lease holder stops by {@link ServerClock.bounds}' upper bound.
 */
export class ServerClock {
  readonly #storage: Storage;
  readonly #local: Now;
  /** Bounds of (server − local) as of local time `#at`. */
  #lo: number | undefined;
  #hi = 0;
  #at = 0;
  #last: ServerTimeSample | undefined;
  /** Set by a sample that contradicts itself: the next one re-anchors. */
  #distrust = false;
  #reanchors = 0;

  /**
   * @param storage whose responses carry the server's time.
   * @param local the local clock (default `Date.now`); only its rate is trusted, not its value,
   *   and not even that across a step (see the class doc).
   */
  constructor(storage: Storage, local: Now = Date.now) {
    this.#storage = storage;
    this.#local = local;
  }

  /**
   * Milliseconds to add to the local clock to get the lower bound of server time: the low end
   * of the interval, so server time never jumps back between responses (unless the local clock
   * stepped, which a re-anchor corrects).
   */
  offsetMs(): number {
    this.#observe();
    return this.#lo ?? 0;
  }

  /** The current server time in epoch milliseconds: the lower bound (see the class doc). */
  now(): number {
    return this.bounds().lower;
  }

  /**
   * Both bounds of the server's time now. Before any response there is no evidence, and both
   * are the local time.
   */
  bounds(): ServerTimeBounds {
    this.#observe();
    const local = this.#local();
    if (this.#lo === undefined) return { lower: local, upper: local };
    const drift = MAX_DRIFT * Math.abs(local - this.#at);
    return { lower: local + this.#lo - drift, upper: local + this.#hi + drift };
  }

  /** The local clock this server clock corrects. */
  localNow(): number {
    return this.#local();
  }

  /** How many times a contradicting sample made the clock start again (the local clock stepped). */
  get reanchors(): number {
    this.#observe();
    return this.#reanchors;
  }

  /** Fold the storage's latest sample, if new, into the interval. */
  #observe(): void {
    const seen = this.#storage.serverTime();
    const last = this.#last;
    if (
      seen === undefined ||
      (last !== undefined &&
        seen.serverMs === last.serverMs &&
        seen.sentMs === last.sentMs &&
        seen.localMs === last.localMs)
    )
      return;
    this.#last = { ...seen };
    const lo = seen.serverMs - seen.localMs;
    const hi = seen.serverMs + seen.resolutionMs - seen.sentMs;
    if (!(lo <= hi)) {
      // Arrived before it was sent: the local clock stepped back while it was in flight, so the
      // sample says nothing reliable and what we hold may be stale too.
      this.#distrust = true;
      return;
    }
    if (this.#lo === undefined) {
      this.#anchor(lo, hi, seen.localMs);
      return;
    }
    const drift = MAX_DRIFT * Math.abs(seen.localMs - this.#at);
    const oldLo = this.#lo - drift;
    const oldHi = this.#hi + drift;
    if (this.#distrust || lo > oldHi || hi < oldLo) {
      this.#reanchors++;
      this.#anchor(lo, hi, seen.localMs);
      return;
    }
    this.#lo = Math.max(oldLo, lo);
    this.#hi = Math.min(oldHi, hi);
    this.#at = seen.localMs;
  }

  #anchor(lo: number, hi: number, at: number): void {
    this.#lo = lo;
    this.#hi = hi;
    this.#at = at;
    this.#distrust = false;
  }
}
