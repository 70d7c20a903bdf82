/**
 * The one retry rule of oq: a few tries with exponential backoff and full jitter, and one answer
 * to "is this failure worth another try?" ({@link isTransient}).
 *
 * Callers that know more than the error type (the S3 driver knows whether a request may have
 * committed) pass their own `retryable`; everyone else uses {@link isTransient}. Web-standard
 * only, so it runs wherever the core runs.
 *
 * @module
 */
import { OqError } from "./errors.ts";
import { sleep } from "./util/async.ts";

/** How often and how patiently to try: exponential backoff with full jitter. */
export interface RetryPolicy {
  /** Total tries, including the first. `1` means no retries. */
  attempts: number;
  /** Cap of the wait before the first retry; doubled for each further retry. */
  baseDelayMs: number;
  /** Upper bound of any single wait. */
  maxDelayMs: number;
  /**
   * Source of jitter in [0, 1): the wait is `random() * cap`. Defaults to `Math.random`; inject
   * it for deterministic tests, or pass `() => 1` for plain exponential backoff without jitter.
   */
  random?: () => number;
  /** Waits between tries. Defaults to a `setTimeout` sleep; inject it for fast tests. */
  sleep?: (ms: number) => Promise<void>;
}

/** A {@link RetryPolicy} plus what decides, per failure, whether and how long to wait. */
export interface RetryOptions extends RetryPolicy {
  /** Whether a failure may be tried again. Defaults to {@link isTransient}. */
  retryable?: (error: unknown) => boolean;
  /** A wait the server asked for (such as `Retry-After`), in ms, honoured up to `maxDelayMs`. */
  retryAfterMs?: (error: unknown) => number | undefined;
}

/**
 * True for failures that say nothing about the request itself and may pass on another try:
 * the storage was unreachable, throttled us, failed with a 5xx (or no status at all), could not
 * say whether a write landed, or saw a concurrent operation interfere. Callers that retry a
 * write must re-read and decide again rather than re-send it blindly (see docs/protocol.md).
 */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof OqError)) return false;
  if (error.code === "STORAGE") return error.status === undefined || error.status >= 500;
  return ["THROTTLED", "UNAVAILABLE", "AMBIGUOUS_WRITE", "CONFLICT"].includes(error.code);
}

/**
 * The wait before retry number `retry` (1 for the first): a random share of
 * `min(maxDelayMs, baseDelayMs * 2^(retry - 1))`, raised to `retryAfterMs` when the server asked
 * for longer, and never above `maxDelayMs`.
 */
export function backoffDelay(policy: RetryPolicy, retry: number, retryAfterMs?: number): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  let delay = (policy.random ?? Math.random)() * cap;
  if (retryAfterMs !== undefined) {
    delay = Math.min(policy.maxDelayMs, Math.max(delay, retryAfterMs));
  }
  return delay;
}

/**
 * Run `tryOnce` until it resolves, a failure is not retryable, or `attempts` tries were made;
 * then rethrow the last failure unchanged. `tryOnce` gets the try number, starting at 1.
 */
export async function retry<T>(
  tryOnce: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const retryable = options.retryable ?? isTransient;
  const wait = options.sleep ?? ((ms: number) => sleep(ms));
  for (let attempt = 1; ; attempt++) {
    try {
      return await tryOnce(attempt);
    } catch (error) {
      if (attempt >= options.attempts || !retryable(error)) throw error;
      await wait(backoffDelay(options, attempt, options.retryAfterMs?.(error)));
    }
  }
}
