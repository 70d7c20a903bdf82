/**
 * Virtual time for the scale model: a thousand workers' timers on one simulated clock.
 *
 * On a 2-core machine a thousand real-time workers would starve each other of CPU, and every
 * measured rate would be a rate of this machine, not of the fleet. Instead the global timers
 * (`setTimeout`, `setInterval` and their `clear…`) are replaced by a queue of events on a
 * virtual clock, and the clock jumps to the next event only once every promise chain has
 * settled (checked with the real `setImmediate`, which runs after the microtask queue drains).
 * CPU time spent by the simulation itself therefore costs no simulated time: each worker
 * behaves as if it had a machine of its own, and only latencies, handler durations and the
 * oq code's own pauses move the clock.
 *
 * The queue's clocks are injected (`QueueOptions.now`, `MemoryStorageOptions.now`); `Date` is
 * left alone, so nothing outside the model sees virtual time.
 *
 * @module
 */

interface Timer {
  id: number;
  at: number;
  seq: number;
  callback: (...args: unknown[]) => void;
  args: unknown[];
  /** Repeat period for intervals, else undefined. */
  every: number | undefined;
}

/** The handle a patched timer function returns (Node-shaped, so `unref()` works). */
export interface VirtualTimerHandle {
  readonly id: number;
  unref(): VirtualTimerHandle;
  ref(): VirtualTimerHandle;
  hasRef(): boolean;
  [Symbol.toPrimitive](): number;
}

const realSetImmediate = globalThis.setImmediate;

/** Resolves after every microtask queued so far (and those they queue) has run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => realSetImmediate(resolve));
}

/** A virtual clock and timer queue (see the module doc). */
export class VirtualTime {
  #now: number;
  #seq = 0;
  #nextId = 1;
  /** Binary min-heap by (at, seq). */
  readonly #heap: Timer[] = [];
  /** Live timers by id, for clearing; a cleared timer stays in the heap and is skipped. */
  readonly #live = new Map<number, Timer>();
  #restore: (() => void) | undefined;
  /** Timers fired so far (for the report: how much work the model did). */
  fired = 0;

  /** Start the clock at `startMs` (epoch ms). */
  constructor(startMs: number) {
    this.#now = startMs;
  }

  /** The virtual time in epoch ms, whole milliseconds like `Date.now()`. */
  readonly now = (): number => Math.floor(this.#now);

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.#live.size;
  }

  /** Schedule `callback` after `ms` of virtual time (`every`: repeat with that period). */
  schedule(
    callback: (...args: unknown[]) => void,
    ms: number | undefined,
    args: unknown[] = [],
    every?: number,
  ): VirtualTimerHandle {
    const delay = Number.isFinite(ms) && (ms as number) > 0 ? (ms as number) : 0;
    const timer: Timer = {
      id: this.#nextId++,
      at: this.#now + delay,
      seq: this.#seq++,
      callback,
      args,
      every,
    };
    this.#live.set(timer.id, timer);
    this.#push(timer);
    return handle(timer.id);
  }

  /** Cancel a timer by its handle (or id); unknown handles are ignored, as `clearTimeout` does. */
  cancel(h: unknown): void {
    if (h === undefined || h === null) return;
    const id = typeof h === "number" ? h : (h as { id?: unknown }).id;
    if (typeof id === "number") this.#live.delete(id);
  }

  /** A promise resolved after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.schedule(() => resolve(), ms));
  }

  /** Replace the global timer functions with this clock's; returns the function that undoes it. */
  install(): () => void {
    const g = globalThis as unknown as Record<string, unknown>;
    const saved = {
      setTimeout: g.setTimeout,
      clearTimeout: g.clearTimeout,
      setInterval: g.setInterval,
      clearInterval: g.clearInterval,
    };
    g.setTimeout = (cb: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) =>
      this.schedule(cb, ms, args);
    g.setInterval = (cb: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) =>
      this.schedule(cb, ms, args, Math.max(1, ms ?? 1));
    g.clearTimeout = (h: unknown) => this.cancel(h);
    g.clearInterval = (h: unknown) => this.cancel(h);
    this.#restore = () => Object.assign(g, saved);
    return this.#restore;
  }

  /** Undo {@link VirtualTime.install}. */
  uninstall(): void {
    this.#restore?.();
    this.#restore = undefined;
  }

  /**
   * Run events until virtual time `untilMs` (or until `stop()` returns true, checked after each
   * millisecond of events), letting every promise chain settle between milliseconds. Events in
   * the same millisecond run back to back in (time, creation) order.
   */
  async runUntil(untilMs: number, stop?: () => boolean): Promise<void> {
    for (;;) {
      await settle();
      if (stop?.()) return;
      const next = this.#peekLive();
      if (next === undefined || next.at > untilMs) {
        this.#now = Math.max(this.#now, untilMs);
        await settle();
        return;
      }
      const horizon = Math.floor(next.at) + 1;
      for (let t = this.#peekLive(); t !== undefined && t.at < horizon; t = this.#peekLive()) {
        this.#pop();
        this.#now = Math.max(this.#now, t.at);
        if (t.every === undefined) this.#live.delete(t.id);
        else {
          t.at += t.every;
          t.seq = this.#seq++;
          this.#push(t);
        }
        this.fired++;
        t.callback(...t.args);
      }
    }
  }

  #peekLive(): Timer | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#live.get(top.id) === top) return top;
      this.#pop();
    }
    return undefined;
  }

  #push(t: Timer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function handle(id: number): VirtualTimerHandle {
  const h: VirtualTimerHandle = {
    id,
    unref: () => h,
    ref: () => h,
    hasRef: () => true,
    [Symbol.toPrimitive]: () => id,
  };
  return h;
}
