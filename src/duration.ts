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
 * The longest duration accepted anywhere (100 years, in ms). Bounding durations keeps every
 * time computed from them (`now + delay`, a TTL, a backoff) a valid date, so no option that
 * passes validation can make a task unwritable or unreadable.
 */
export const MAX_DURATION_MS = 100 * 365.25 * 86_400_000;

/** The same bound in seconds, for the `*Seconds` options. */
export const MAX_DURATION_SECONDS = MAX_DURATION_MS / 1000;

/**
 * The shortest duration that must be longer than zero (a timeout, a TTL), in ms. Durations are
 * kept in whole milliseconds (the timers that enforce them count nothing shorter), so a positive
 * value below 1 ms, such as 0.0001 s, would be a limit of zero.
 */
export const MIN_POSITIVE_DURATION_MS = 1;

/** The same bound in seconds, for the `*Seconds` options. */
export const MIN_POSITIVE_DURATION_SECONDS = MIN_POSITIVE_DURATION_MS / 1000;

function checkDurationMs(ms: number, value: string | number, what: string): number {
  if (!(ms <= MAX_DURATION_MS)) {
    throw new ValidationError(
      `Invalid ${what} ${typeof value === "string" ? `"${value}"` : value}: it is longer than the limit of 100 years (36525d).`,
    );
  }
  return ms;
}

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
    return checkDurationMs(Math.round(value * 1000), value, what);
  }
  const ms = durationTextMs(value);
  if (ms === undefined) {
    throw new ValidationError(`Invalid ${what} "${value}": expected ${DURATION_FORMS}.`);
  }
  return checkDurationMs(ms, value, what);
}

/**
 * The milliseconds a duration text stands for (`"90"` is seconds; `"1h30m"`, `"1.5s"`), or
 * `undefined` when it is not a duration. Not bounded: callers check the range they accept.
 */
export function durationTextMs(value: string): number | undefined {
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
  if (text.length === 0 || index !== text.length) return undefined;
  return Math.round(total);
}

const DATE_FORMS =
  "an ISO 8601 date-time with a timezone (2026-12-01T09:00:00Z, 2026-12-01T10:00:00+01:00) or epoch milliseconds";

/**
 * The earliest time a number is taken as epoch milliseconds: 2000-01-01T00:00:00Z. Why: epoch
 * seconds of any date this century (1798761600 is 2027) read as milliseconds land in January
 * 1970, so a task "scheduled" with them ran at once. No queue has tasks from before 2000; a date
 * that early can still be written as an ISO 8601 date-time.
 */
export const MIN_EPOCH_MS = Date.UTC(2000, 0, 1);

/** The earliest time accepted as a date: 0000-01-01T00:00:00Z (epoch ms). */
export const MIN_DATE_MS = Date.parse("0000-01-01T00:00:00Z");

/** The latest time accepted as a date: 9999-12-31T23:59:59.999Z (epoch ms). */
export const MAX_DATE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const ISO_DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-](\d{2}):?(\d{2}))$/i;

/** Days in `month` (1-12) of `year`, by the proleptic Gregorian calendar. */
function daysInMonth(year: number, month: number): number {
  // Day 0 of the next month is the last day of this one; setUTCFullYear keeps years < 100.
  const date = new Date(0);
  date.setUTCFullYear(year, month, 0);
  return date.getUTCDate();
}

/**
 * True when every field of an ISO date-time is in range. `Date.parse` rolls impossible dates
 * over (`2026-02-30` becomes March 2), which would silently run a task on the wrong day.
 */
function fieldsInRange(match: RegExpExecArray): boolean {
  const [, y, mo, d, h, mi, sec, , , oh, om] = match;
  const month = Number(mo);
  return (
    month >= 1 &&
    month <= 12 &&
    Number(d) >= 1 &&
    Number(d) <= daysInMonth(Number(y), month) &&
    Number(h) <= 23 &&
    Number(mi) <= 59 &&
    (sec === undefined || Number(sec) <= 59) &&
    (oh === undefined || Number(oh) <= 23) &&
    (om === undefined || Number(om) <= 59)
  );
}

function checkDateMs(ms: number, value: unknown, what: string): number {
  if (!(ms >= MIN_DATE_MS && ms <= MAX_DATE_MS)) {
    throw new ValidationError(
      `Invalid ${what} ${typeof value === "string" ? `"${value}"` : String(value)}: it is outside the years 0000 to 9999; expected ${DATE_FORMS}.`,
    );
  }
  return ms;
}

/**
 * A number given as a date: epoch milliseconds from {@link MIN_EPOCH_MS}. A number below that
 * which would be a date as seconds is named as such, with the value to use instead. A fraction
 * of a millisecond is kept, not refused: `queue.now()` has one, and `queue.now() + 60_000` is a
 * natural `scheduleAt`.
 */
function epochMs(ms: number, value: number | string, what: string): number {
  const shown = typeof value === "string" ? `"${value}"` : String(value);
  if (!Number.isFinite(ms))
    throw new ValidationError(`Invalid ${what} ${shown}: expected ${DATE_FORMS}.`);
  if (ms < MIN_EPOCH_MS) {
    const asSeconds = ms * 1000;
    throw new ValidationError(
      asSeconds >= MIN_EPOCH_MS && asSeconds <= MAX_DATE_MS
        ? `Invalid ${what} ${shown}: it looks like epoch seconds (${new Date(asSeconds).toISOString()}); epoch milliseconds are expected, so multiply by 1000: ${asSeconds}.`
        : `Invalid ${what} ${shown}: as epoch milliseconds it is before 2000-01-01; expected ${DATE_FORMS}.`,
    );
  }
  return checkDateMs(ms, value, what);
}

/**
 * Parse an absolute time into epoch milliseconds. Accepts a `Date`, epoch milliseconds, or an
 * ISO 8601 date-time that names its timezone (a time without one would silently depend on the
 * machine's zone, so it is rejected). Impossible calendar dates (February 30) and times outside
 * the years 0000 to 9999 are rejected too, and so is a number (or string of digits) before
 * 2000-01-01 as epoch milliseconds ({@link MIN_EPOCH_MS}), negative ones included: epoch
 * seconds, taken as milliseconds, would be a time in 1970.
 */
export function parseDate(value: string | number | Date, what = "date"): number {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new ValidationError(`Invalid ${what}: the Date is invalid.`);
    return checkDateMs(ms, value.toISOString(), what);
  }
  if (typeof value === "number") return epochMs(value, value, what);
  if (typeof value !== "string") {
    throw new ValidationError(`Invalid ${what} ${String(value)}: expected ${DATE_FORMS}.`);
  }
  const text = value.trim();
  if (/^\d+$/.test(text)) return epochMs(Number(text), value, what);
  const match = ISO_DATE_TIME.exec(text);
  const ms = Date.parse(text);
  if (match === null || Number.isNaN(ms)) {
    throw new ValidationError(`Invalid ${what} "${value}": expected ${DATE_FORMS}.`);
  }
  if (!fieldsInRange(match)) {
    throw new ValidationError(
      `Invalid ${what} "${value}": no such date or time; check the day of the month (February has 28 or 29 days), hours 00-23 and minutes and seconds 00-59.`,
    );
  }
  return checkDateMs(ms, value, what);
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
