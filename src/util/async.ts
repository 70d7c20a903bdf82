/**
 * Small async helpers shared by the core, the storages and the CLI. Web-standard timers only.
 *
 * @module
 */

/** Sleep, ending early (without error) when `signal` aborts. */
export function sleep(msToWait: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, msToWait);
    function done() {
      clearTimeout(timer);
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
