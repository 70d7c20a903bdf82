/**
 * Small async helpers shared by the core, the storages and the CLI. Web-standard timers only.
 *
 * @module
 */

/**
 * The longest delay a timer takes as given: 2^31 − 1 ms, about 24.8 days. Every runtime stores
 * the delay in 32 bits and fires a longer one almost at once (Node says so in a warning).
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer started by {@link startTimer}. */
export interface Timer {
  /** Stop it: `fn` will not run. */
  clear(): void;
}

/**
 * Run `fn` once after `msToWait` ms, however long that is: a delay beyond {@link MAX_TIMER_MS}
 * is waited in parts (a task's 30-day timeout must not fire at once).
 */
export function startTimer(fn: () => void, msToWait: number): Timer {
  let timer: ReturnType<typeof setTimeout>;
  const arm = (left: number): void => {
    const part = Math.min(Math.max(0, left), MAX_TIMER_MS);
    timer = setTimeout(() => (left > part ? arm(left - part) : fn()), part);
  };
  arm(msToWait);
  return { clear: () => clearTimeout(timer) };
}

/**
 * Run `fn` with a signal that aborts once `ms` have passed, with a `TimeoutError` as
 * `AbortSignal.timeout`'s does; the timer is cleared as soon as `fn` settles. Why not
 * `AbortSignal.timeout`: its timer stays pending for the whole `ms` after the work is done, and
 * holds its signal meanwhile (about 1.1 kB of heap each on Node 20): a drain of 900 requests a
 * second with the S3 driver's 30 s request timeout kept some 27,000 of them, about 30 MB.
 */
export async function withDeadline<T>(
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = new AbortController();
  const timer = startTimer(
    () => deadline.abort(new DOMException(`Timed out after ${ms} ms.`, "TimeoutError")),
    ms,
  );
  try {
    return await fn(deadline.signal);
  } finally {
    timer.clear();
  }
}

/** Sleep (any length: see {@link startTimer}), ending early (without error) when `signal` aborts. */
export function sleep(msToWait: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = startTimer(done, msToWait);
    function done() {
      timer.clear();
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Run `fn` over `items` with at most `limit` in flight; results in input order. A `limit` that
 * is not a whole number >= 1 throws `RangeError`: below 1 nothing would run, and the call would
 * return holes for results, dropping the work in silence.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(Number.isInteger(limit) && limit >= 1))
    throw new RangeError(`mapLimit: limit must be a whole number >= 1 (was ${limit}).`);
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}
