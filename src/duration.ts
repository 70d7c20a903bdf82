/**
 * Parsing durations and dates given by people (`--delay 1h30m`, `--at 2026-12-01T09:00:00Z`).
 *
 * @module
 */
import { ValidationError } from "./errors.ts";

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const DURATION_FORMS =
  "a number of seconds (90), or amounts with units ms, s, m, h, d, w (1h30m, 45s, 2d)";

/**
 * Parse a duration into milliseconds. Accepts a plain number of seconds (`"90"`, `90`) or a
 * sequence of amounts with units: `ms`, `s`, `m`, `h`, `d`, `w` (`"1h30m"`, `"1.5s"`).
 * Throws `ValidationError` naming the accepted forms.
 */
export function parseDuration(value: string | number, what = "duration"): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) {
      throw new ValidationError(`Invalid ${what} ${value}: expected ${DURATION_FORMS}.`);
    }
    return Math.round(value * 1000);
  }
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
  let total = 0;
  let index = 0;
  while (index < text.length) {
    part.lastIndex = index;
    const match = part.exec(text);
    if (match === null) break;
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
    index = part.lastIndex;
  }
  if (text.length === 0 || index !== text.length) {
    throw new ValidationError(`Invalid ${what} "${value}": expected ${DURATION_FORMS}.`);
  }
  return Math.round(total);
}

const DATE_FORMS =
  "an ISO 8601 date-time with a timezone (2026-12-01T09:00:00Z, 2026-12-01T10:00:00+01:00) or epoch milliseconds";

/**
 * Parse an absolute time into epoch milliseconds. Accepts a `Date`, epoch milliseconds, or an
 * ISO 8601 date-time that names its timezone (a time without one would silently depend on the
 * machine's zone, so it is rejected).
 */
export function parseDate(value: string | number | Date, what = "date"): number {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new ValidationError(`Invalid ${what}: the Date is invalid.`);
    return ms;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value))
      throw new ValidationError(`Invalid ${what} ${value}: expected ${DATE_FORMS}.`);
    return value;
  }
  const text = value.trim();
  if (/^\d{10,}$/.test(text)) return Number(text);
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;
  const ms = Date.parse(text);
  if (!iso.test(text) || Number.isNaN(ms)) {
    throw new ValidationError(`Invalid ${what} "${value}": expected ${DATE_FORMS}.`);
  }
  return ms;
}

/** Format milliseconds as a short human duration (`1h 2m`, `3.2s`, `450ms`). */
export function formatDuration(ms: number): string {
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${Math.round(rest)}ms`;
  if (rest < 60_000) return `${sign}${(rest / 1000).toFixed(rest < 10_000 ? 1 : 0)}s`;
  const parts: string[] = [];
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return sign + parts.join(" ");
}
