/**
 * The schemas of the options people pass in: one task-options schema shared by `submit`,
 * schedules and `connect({ defaults })`, and the schemas of worker and list options. Every
 * option is checked here, at the boundary, and bounded so that nothing that passes can be
 * stored in a form the record schemas (src/task/record.ts, src/schedule/record.ts) would reject: numbers are
 * finite (JSON turns `Infinity` and `NaN` into `null`) and durations stay within
 * {@link MAX_DURATION_SECONDS}, so every time computed from them is a valid date.
 *
 * @module
 */
import { type Type, type } from "arktype";
import { MAX_DURATION_SECONDS } from "./duration.ts";
import { secondsOption } from "./duration-option.ts";
import { ValidationError } from "./errors.ts";
import { PRIORITY_MAX, PRIORITY_MIN } from "./task/priority.ts";

// Durations: a number of seconds or a duration string ("30m"), normalized to seconds here.
const seconds = secondsOption(
  type(`0 <= number <= ${MAX_DURATION_SECONDS}`),
  "from 0 to 100 years",
);
const positiveSeconds = secondsOption(
  type(`0 < number <= ${MAX_DURATION_SECONDS}`),
  "> 0, at most 100 years",
);
const leaseSeconds = secondsOption(type("1 <= number <= 604800"), "from 1 to 604800 (7 days)");
const retries = type(`0 <= number.integer <= ${Number.MAX_SAFE_INTEGER}`).describe(
  "a whole number >= 0",
);

/** Backoff options; each part may be left out to keep the default. */
export const backoffOptionsSchema = type({
  "initialSeconds?": seconds,
  "maxSeconds?": seconds,
  "factor?": type("1 <= number <= 100").describe("a number from 1 to 100"),
});

/** Options of one task: shared by `submit`, schedules and `connect({ defaults })`. */
export const taskOptionsSchema = type({
  /** Retries after the first run. */
  "maxRetries?": retries,
  /** Per-attempt time limit in seconds. */
  "timeoutSeconds?": positiveSeconds,
  /** Expire if not started within this many seconds after it becomes available. */
  "ttlSeconds?": positiveSeconds,
  /** Backoff between attempts. */
  "backoff?": backoffOptionsSchema,
  /** Higher runs first among due tasks (docs/protocol.md, "Priorities"). */
  "priority?": type(`${PRIORITY_MIN} <= number.integer <= ${PRIORITY_MAX}`).describe(
    `a whole number from ${PRIORITY_MIN} to ${PRIORITY_MAX}`,
  ),
});

/** Defaults a queue applies to tasks submitted without their own values. */
export const taskDefaultsSchema = taskOptionsSchema.omit("ttlSeconds");

/** The task options a schedule stores for the tasks it submits. */
export const scheduleTaskOptionsSchema = taskOptionsSchema.pick(
  "maxRetries",
  "timeoutSeconds",
  "ttlSeconds",
  "priority",
);

const when = type("Date | number | string").describe(
  "a Date, epoch milliseconds or an ISO 8601 date-time with a timezone",
);

/**
 * Options of `Queue.submit`: the task options plus when it runs and its idempotency key. Dates
 * and durations are checked further by `parseDate` and `parseDuration`.
 */
export const submitOptionsSchema = taskOptionsSchema.and({
  "scheduleAt?": when,
  "delay?": type("number | string").describe("a number of seconds or a duration like 1h30m"),
  "expiresAt?": when,
  "idempotencyKey?": type("0 < string <= 512").describe(
    "a non-empty string of at most 512 characters",
  ),
  "idempotencyWindow?": type("number | string").describe(
    "a number of seconds or a duration like 24h",
  ),
});

const ms = (min: number, max: number, what: string) =>
  type(`${min} <= number <= ${max}`).describe(what);

/** Tasks a worker runs at once (all types, or one type's own limit). */
const workerConcurrency = type("1 <= number.integer <= 1000").describe(
  "a whole number from 1 to 1000",
);

/**
 * Options of `Worker`. Poll intervals have a floor: a worker polling with no pause would LIST
 * hundreds of times a second while idle, which bills per request.
 */
export const workerOptionsSchema = type({
  "id?": "string",
  "concurrency?": workerConcurrency,
  "leaseSeconds?": leaseSeconds,
  "timeoutSeconds?": positiveSeconds,
  "minPollMs?": ms(10, 3_600_000, "a number of ms from 10 to 3600000 (1 hour)"),
  "maxPollMs?": ms(10, 3_600_000, "a number of ms from 10 to 3600000 (1 hour)"),
  "monitor?": "boolean",
  "monitorRoundSeconds?": secondsOption(type("1 <= number <= 86400"), "from 1 to 86400 (1 day)"),
  "progressSeconds?": secondsOption(type("1 <= number <= 86400"), "from 1 to 86400 (1 day)"),
  "heartbeatSeconds?": secondsOption(
    type("0 | 1 <= number <= 86400"),
    "from 1 to 86400 (1 day) or 0 (no heartbeats)",
  ),
  // Timers longer than 2^31 - 1 ms fire at once.
  "shutdownGraceMs?": ms(0, 2_147_483_647, "a number of ms from 0 to 2147483647 (24.8 days)"),
  "signalGraceMs?": ms(0, 2_147_483_647, "a number of ms from 0 to 2147483647 (24.8 days)"),
  "listReuseMs?": ms(0, 3_600_000, "a number of ms from 0 to 3600000 (1 hour)"),
  "onEvent?": type("Function").describe("a function"),
  "skipDoctor?": "boolean",
  "logScan?": type("boolean").or({
    "pageSize?": type("1 <= number.integer <= 1000").describe("a whole number from 1 to 1000"),
    "intervalMs?": ms(10, 3_600_000, "a number of ms from 10 to 3600000 (1 hour)"),
  }),
}).narrow(
  (o, ctx) =>
    o.minPollMs === undefined ||
    o.maxPollMs === undefined ||
    o.minPollMs <= o.maxPollMs ||
    ctx.reject({ path: ["maxPollMs"], expected: "at least minPollMs", actual: `${o.maxPollMs}` }),
);

/** Per-type options of `Worker.task` (other keys pass through unchecked). */
export const handlerOptionsSchema = type({
  "leaseSeconds?": leaseSeconds,
  "timeoutSeconds?": positiveSeconds,
  // A type's own concurrency follows the worker's rule.
  "concurrency?": workerConcurrency,
});

/** The states a task can be in, as `list` filters take them. */
const status = type(
  "'pending' | 'running' | 'completed' | 'failed' | 'cancelled' | 'expired'",
).describe("one of pending, running, completed, failed, cancelled, expired");

/** Options of `Queue.list` (the type is checked by `checkTaskType`, dates by `parseDate`). */
export const listOptionsSchema = type({
  "status?": status
    .or(status.array())
    .describe(
      "one of pending, running, completed, failed, cancelled, expired (or an array of them)",
    ),
  "type?": "string",
  "limit?": type("1 <= number.integer <= 10000").describe("a whole number from 1 to 10000"),
  "cursor?": "string",
  "since?": when,
  "until?": when,
});

/** Options of `Queue.repair` (`onProgress` is passed through as given). */
export const repairOptionsSchema = type({
  "startAfter?": "string",
  "limit?": type("number.integer >= 1").describe("a whole number >= 1"),
  "dryRun?": "boolean",
  "concurrency?": type("1 <= number.integer <= 100").describe("a whole number from 1 to 100"),
  "pageSize?": type("1 <= number.integer <= 1000").describe("a whole number from 1 to 1000"),
  "checkMarkers?": "boolean",
  "onProgress?": type("Function").describe("a function"),
});

/** A copy of `value` without the keys set to `undefined` (which mean "not given"), recursively. */
function withoutUndefined(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  if (value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v !== undefined) out[k] = withoutUndefined(v);
  }
  return out;
}

/**
 * Check options against `schema`. Keys set to `undefined` count as not given. Throws
 * `ValidationError` naming each bad option and what to use, e.g. `Invalid submit options:
 * backoff.maxSeconds must be a number of seconds from 0 to 100 years (was Infinity)`.
 */
export function checkOptions<S extends Type<unknown>>(
  schema: S,
  value: unknown,
  what: string,
): S["infer"] {
  if (value !== undefined && (typeof value !== "object" || value === null)) {
    throw new ValidationError(`Invalid ${what}: expected an object, got ${String(value)}.`);
  }
  const result = schema(withoutUndefined(value ?? {}));
  if (result instanceof type.errors) {
    throw new ValidationError(`Invalid ${what}: ${result.summary.replaceAll("\n", "; ")}.`);
  }
  return result as S["infer"];
}
