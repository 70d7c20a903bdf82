/**
 * The values the schemas of stored objects are built from (task records, schedules, limit
 * objects, the manifest) and the heartbeat reader checks with: one definition of each, so every
 * object read from the bucket is held to the same bounds as the options that write it
 * (src/options.ts, src/duration.ts).
 *
 * Anyone can write the bucket, so a value oq would never write must be refused on reading, as
 * malformed, naming its key. Otherwise it gets as far as a computation that cannot cope: JSON reads
 * `1e999` as `Infinity` (and writes it back as `null`), a date past the year 9999 makes a ready
 * marker key nobody can parse, and a delay of 1e20 seconds makes `now + delay` an invalid date,
 * so the task can neither be written back nor indexed again.
 *
 * @module
 */
import * as v from "valibot";
import { MAX_DATE_MS, MAX_DURATION_SECONDS, MIN_DATE_MS } from "../duration.ts";
import { PRIORITY_MAX, PRIORITY_MIN } from "../task/priority.ts";

/** A number other than `Infinity` and `-Infinity` (how JSON reads `1e999` and `-1e999`). */
export const finiteNumber = v.pipe(v.number(), v.finite("a finite number"));

/** True for a whole number from 0 to `Number.MAX_SAFE_INTEGER`: a count that adds up exactly. */
export function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** A count (attempts, retries, bytes): a whole number from 0 to `Number.MAX_SAFE_INTEGER`. */
export const count = v.pipe(
  finiteNumber,
  v.integer(),
  v.minValue(0),
  v.maxValue(Number.MAX_SAFE_INTEGER),
);

const DURATION_LIMIT = `at most ${MAX_DURATION_SECONDS} seconds (100 years)`;

/** A duration in seconds from 0 to the longest any option accepts ({@link MAX_DURATION_SECONDS}). */
export const seconds = v.pipe(
  finiteNumber,
  v.minValue(0),
  v.maxValue(MAX_DURATION_SECONDS, DURATION_LIMIT),
);

/** A duration in seconds above 0, at most {@link MAX_DURATION_SECONDS} (a time limit, a TTL). */
export const positiveSeconds = v.pipe(
  finiteNumber,
  v.gtValue(0),
  v.maxValue(MAX_DURATION_SECONDS, DURATION_LIMIT),
);

/** A task priority: a whole number from `PRIORITY_MIN` to `PRIORITY_MAX`, as submit allows. */
export const priority = v.pipe(
  finiteNumber,
  v.integer(),
  v.minValue(PRIORITY_MIN),
  v.maxValue(PRIORITY_MAX),
);

/**
 * True when `ms` lies in the years 0000 to 9999: what `toISOString` writes with four digits, and
 * so what a ready marker's time segment (`timeKey` in src/keys.ts) can hold.
 */
export function inDateRange(ms: number): boolean {
  return ms >= MIN_DATE_MS && ms <= MAX_DATE_MS;
}

/** True for a string that parses as a date in the years 0000 to 9999 ({@link storedDate}). */
export function isStoredDate(value: unknown): value is string {
  return typeof value === "string" && inDateRange(Date.parse(value));
}

/**
 * A stored time: a string `Date.parse` reads (ISO 8601 as oq writes it; hand-written records may
 * be more lenient), in the years 0000 to 9999.
 */
export const storedDate = v.pipe(
  v.string(),
  v.check((s) => !Number.isNaN(Date.parse(s)), "an ISO 8601 date"),
  v.check((s) => inDateRange(Date.parse(s)), "a date in the years 0000 to 9999"),
);

/**
 * How deep arrays and objects may nest in a task's input, output or progress: 128 levels, the
 * recursion limit serde_json (Rust's JSON library) applies by default. Real data nests a few
 * levels; the bound is there because JavaScript serializes JSON recursively. A task whose input
 * nested 5,000 levels could be read but not written back: every claim threw "Maximum call stack
 * size exceeded", so the task stayed pending and each worker read it again at every poll.
 */
export const MAX_JSON_DEPTH = 128;

/**
 * True when the parsed JSON `value` nests arrays and objects at most `max` levels deep (a scalar
 * is 0 levels, `[1]` one). Walks level by level, without recursion, so any depth is measured.
 */
export function withinJsonDepth(value: unknown, max: number = MAX_JSON_DEPTH): boolean {
  let level: unknown[] = [value];
  for (let depth = 0; level.length > 0; depth++) {
    const next: unknown[] = [];
    for (const item of level) {
      if (typeof item !== "object" || item === null) continue;
      if (depth >= max) return false;
      for (const child of Object.values(item)) next.push(child);
    }
    level = next;
  }
  return true;
}

/** A stored JSON value (a task's input, output or progress): any value {@link withinJsonDepth}. */
export const jsonValue = v.pipe(
  v.unknown(),
  v.check(
    (value) => withinJsonDepth(value),
    `arrays and objects nested at most ${MAX_JSON_DEPTH} levels deep`,
  ),
);
