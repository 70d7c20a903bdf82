/**
 * The delay between attempts: exponential backoff with equal jitter. Pure.
 *
 * @module
 */
import type { Backoff } from "./record.ts";

/** The default backoff: 1 s doubling up to 5 minutes. */
export const DEFAULT_BACKOFF: Backoff = { initialSeconds: 1, maxSeconds: 300, factor: 2 };

/** The delay before the next attempt after `attempt` runs, with equal jitter (half fixed, half random). */
export function backoffMs(backoff: Backoff, attempt: number, random: number): number {
  // 0 × Infinity is NaN: after enough attempts the power overflows, and a zero initial delay
  // must stay zero rather than turn the next availableAt into an invalid date.
  const exp =
    backoff.initialSeconds === 0
      ? 0
      : backoff.initialSeconds * backoff.factor ** Math.max(0, attempt - 1);
  const capped = Math.min(backoff.maxSeconds, exp) * 1000;
  return Math.round(capped / 2 + (capped / 2) * random);
}
