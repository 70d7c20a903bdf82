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
import * as v from "valibot";
import { MAX_DURATION_SECONDS, MIN_POSITIVE_DURATION_SECONDS } from "./duration.ts";
import { secondsOption } from "./duration-option.ts";
import { ValidationError } from "./errors.ts";
import { PRIORITY_MAX, PRIORITY_MIN } from "./task/priority.ts";
import { validate } from "./util/schema.ts";

// Every object schema here is strict: a key it does not name is refused ("maxRetry must be
// removed (not a known key)"), so a misspelt option fails the call instead of being dropped in
// silence, leaving its default in force. Handler options alone let other keys through.

/** A number from `min` to `max` (whole if `whole`); `what` says so in every message about it. */
function numberIn(min: number, max: number, what: string, whole = false) {
  return v.pipe(
    v.number(what),
    v.check((n) => n >= min && n <= max && (!whole || Number.isInteger(n)), what),
  );
}

/** The range of a number, for {@link secondsOption}'s check (its messages are its own). */
const within = (min: number, max: number) =>
  v.pipe(
    v.number(),
    v.check((n) => n >= min && n <= max),
  );

// Durations: a number of seconds or a duration string ("30m"), normalized to seconds here.
const seconds = secondsOption(within(0, MAX_DURATION_SECONDS), "from 0 to 100 years");
// At least 1 ms: a positive timeout shorter than that is zero to every timer (src/duration.ts).
const positiveSeconds = secondsOption(
  within(MIN_POSITIVE_DURATION_SECONDS, MAX_DURATION_SECONDS),
  "from 0.001 (1 ms) to 100 years",
);
/**
 * The longest lease an attempt may hold, in seconds (7 days): `leaseSeconds` and
 * `ctx.extendLease` stay within it, so a slot holder of a fleet limit dated further ahead was
 * written by no worker (src/queue/limits.ts).
 */
export const MAX_LEASE_SECONDS = 604_800;

const leaseSeconds = secondsOption(
  within(1, MAX_LEASE_SECONDS),
  `from 1 to ${MAX_LEASE_SECONDS} (7 days)`,
);
const retries = numberIn(0, Number.MAX_SAFE_INTEGER, "a whole number >= 0", true);

/** Backoff options; each part may be left out to keep the default. */
export const backoffOptionsSchema = v.pipe(
  v.strictObject({
    initialSeconds: v.optional(seconds),
    maxSeconds: v.optional(seconds),
    factor: v.optional(numberIn(1, 100, "a number from 1 to 100")),
  }),
  // A first delay above the cap is a slip (the cap wins, so the first delay never happens).
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const o = dataset.value;
    if (o.initialSeconds === undefined || o.maxSeconds === undefined) return;
    if (o.initialSeconds <= o.maxSeconds) return;
    addIssue({
      message: `at least initialSeconds (${o.initialSeconds})`,
      input: o.maxSeconds,
      path: [{ type: "object", origin: "value", input: o, key: "maxSeconds", value: o.maxSeconds }],
    });
  }),
);

/** Options of one task: shared by `submit`, schedules and `connect({ defaults })`. */
export const taskOptionsSchema = v.strictObject({
  /** Retries after the first run. */
  maxRetries: v.optional(retries),
  /** Per-attempt time limit in seconds. */
  timeoutSeconds: v.optional(positiveSeconds),
  /** Expire if not started within this many seconds after it becomes available. */
  ttlSeconds: v.optional(positiveSeconds),
  /** Backoff between attempts. */
  backoff: v.optional(backoffOptionsSchema),
  /** Higher runs first among due tasks (docs/protocol.md, "Priorities"). */
  priority: v.optional(
    numberIn(
      PRIORITY_MIN,
      PRIORITY_MAX,
      `a whole number from ${PRIORITY_MIN} to ${PRIORITY_MAX}`,
      true,
    ),
  ),
});

/** Defaults a queue applies to tasks submitted without their own values. */
export const taskDefaultsSchema = v.omit(taskOptionsSchema, ["ttlSeconds"]);

/** The task options a schedule stores for the tasks it submits. */
export const scheduleTaskOptionsSchema = v.pick(taskOptionsSchema, [
  "maxRetries",
  "timeoutSeconds",
  "ttlSeconds",
  "priority",
]);

const when = v.union(
  [v.date(), v.number(), v.string()],
  "a Date, epoch milliseconds or an ISO 8601 date-time with a timezone",
);

/** The longest idempotency key, in characters (the key is stored in the task record). */
export const MAX_IDEMPOTENCY_KEY_CHARS = 512;

/**
 * An idempotency key of at most `max` characters. A key of only whitespace is refused: it is
 * an unset variable or a template that rendered nothing, and every such submit would share it.
 */
export function idempotencyKeySchema(max: number, note = "") {
  const what = `a string of 1 to ${max} characters${note}, not only whitespace`;
  return v.pipe(
    v.string(what),
    v.check((key) => key.trim().length > 0, what),
    v.maxLength(max, what),
  );
}

/**
 * Options of `Queue.submit`: the task options plus when it runs and its idempotency key. Dates
 * and durations are checked further by `parseDate` and `parseDuration`.
 */
export const submitOptionsSchema = v.strictObject({
  ...taskOptionsSchema.entries,
  scheduleAt: v.optional(when),
  delay: v.optional(
    v.union([v.number(), v.string()], "a number of seconds or a duration like 1h30m"),
  ),
  expiresAt: v.optional(when),
  idempotencyKey: v.optional(idempotencyKeySchema(MAX_IDEMPOTENCY_KEY_CHARS)),
  idempotencyWindow: v.optional(
    v.union([v.number(), v.string()], "a number of seconds or a duration like 24h"),
  ),
});

/**
 * Options of `Scheduler.trigger`. The caller's key is namespaced after the check (a trigger key
 * never equals a slot's), so `maxKeyChars` is what the namespace leaves of the limit.
 */
export const triggerOptionsSchema = (maxKeyChars: number) =>
  v.strictObject({
    idempotencyKey: v.optional(
      idempotencyKeySchema(
        maxKeyChars,
        ` (${MAX_IDEMPOTENCY_KEY_CHARS} less the schedule's prefix)`,
      ),
    ),
  });

/** Options of `Scheduler` (the logger is taken as given). */
export const schedulerOptionsSchema = v.strictObject({
  logger: v.optional(v.unknown()),
  maxCatchUp: v.optional(numberIn(1, 100_000, "a whole number from 1 to 100000", true)),
  missedAfterMs: v.optional(
    numberIn(0, 2_147_483_647, "a number of ms from 0 to 2147483647 (24.8 days)"),
  ),
  concurrency: v.optional(numberIn(1, 100, "a whole number from 1 to 100", true)),
});

/** Options of `Queue.submitMany`. */
export const submitManyOptionsSchema = v.strictObject({
  concurrency: v.optional(numberIn(1, 1000, "a whole number from 1 to 1000", true)),
});

const ms = (min: number, max: number, what: string) => v.optional(numberIn(min, max, what));

/** The longest interval between a worker's heartbeats, seconds; readers hold heartbeats to it. */
export const MAX_HEARTBEAT_SECONDS = 86_400;

/** Tasks a worker runs at once (all types, or one type's own limit). */
const workerConcurrency = numberIn(1, 1000, "a whole number from 1 to 1000", true);

const pollMs = () => ms(10, 3_600_000, "a number of ms from 10 to 3600000 (1 hour)");
const graceMs = () => ms(0, 2_147_483_647, "a number of ms from 0 to 2147483647 (24.8 days)");
const aFunction = v.function("a function");

/**
 * Options of `Worker`. Poll intervals have a floor: a worker polling with no pause would LIST
 * hundreds of times a second while idle, which bills per request.
 */
export const workerOptionsSchema = v.pipe(
  v.strictObject({
    id: v.optional(v.string()),
    concurrency: v.optional(workerConcurrency),
    leaseSeconds: v.optional(leaseSeconds),
    timeoutSeconds: v.optional(positiveSeconds),
    minPollMs: pollMs(),
    maxPollMs: pollMs(),
    monitor: v.optional(v.boolean()),
    monitorRoundSeconds: v.optional(secondsOption(within(1, 86400), "from 1 to 86400 (1 day)")),
    progressSeconds: v.optional(secondsOption(within(1, 86400), "from 1 to 86400 (1 day)")),
    heartbeatSeconds: v.optional(
      secondsOption(
        v.pipe(
          v.number(),
          v.check((n) => n === 0 || (n >= 1 && n <= MAX_HEARTBEAT_SECONDS)),
        ),
        "from 1 to 86400 (1 day) or 0 (no heartbeats)",
      ),
    ),
    // Timers longer than 2^31 - 1 ms fire at once.
    shutdownGraceMs: graceMs(),
    signalGraceMs: graceMs(),
    listReuseMs: ms(0, 3_600_000, "a number of ms from 0 to 3600000 (1 hour)"),
    onEvent: v.optional(aFunction),
    skipDoctor: v.optional(v.boolean()),
    logScan: v.optional(
      v.union([
        v.boolean(),
        v.strictObject({
          pageSize: v.optional(numberIn(1, 1000, "a whole number from 1 to 1000", true)),
          intervalMs: pollMs(),
        }),
      ]),
    ),
  }),
  // Runs only once every option above passed (the pipe stops at the first failing step).
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const o = dataset.value;
    if (o.minPollMs === undefined || o.maxPollMs === undefined || o.minPollMs <= o.maxPollMs)
      return;
    addIssue({
      message: "at least minPollMs",
      input: o.maxPollMs,
      path: [{ type: "object", origin: "value", input: o, key: "maxPollMs", value: o.maxPollMs }],
    });
  }),
);

/** Per-type options of `Worker.task` (other keys pass through unchecked). */
export const handlerOptionsSchema = v.looseObject({
  leaseSeconds: v.optional(leaseSeconds),
  timeoutSeconds: v.optional(positiveSeconds),
  // A type's own concurrency follows the worker's rule.
  concurrency: v.optional(workerConcurrency),
});

/** The states a task can be in, as `list` filters take them. */
const status = v.picklist(
  ["pending", "running", "completed", "failed", "cancelled", "expired"],
  "one of pending, running, completed, failed, cancelled, expired",
);

/** Options of `Queue.list` (the type is checked by `checkTaskType`, dates by `parseDate`). */
export const listOptionsSchema = v.strictObject({
  status: v.optional(
    v.union(
      [status, v.array(status)],
      "one of pending, running, completed, failed, cancelled, expired (or an array of them)",
    ),
  ),
  type: v.optional(v.string()),
  limit: v.optional(numberIn(1, 10000, "a whole number from 1 to 10000", true)),
  cursor: v.optional(v.string()),
  since: v.optional(when),
  until: v.optional(when),
});

/** Options of `Queue.stats` (each type is checked by `checkTaskType`). */
export const statsOptionsSchema = v.strictObject({
  // An array, not one type: `types: "email"` was mapped over as a string and threw a TypeError.
  types: v.optional(v.array(v.string(), "an array of task types")),
  maxPagesPerType: v.optional(numberIn(1, 1_000_000, "a whole number from 1 to 1000000", true)),
  throughputMinutes: v.optional(numberIn(1, 60, "a whole number from 1 to 60", true)),
  series: v.optional(v.boolean()),
});

/** Options of `Metrics` (the meter provider is taken as given). */
export const metricsOptionsSchema = v.strictObject({
  meterProvider: v.optional(v.unknown()),
  depthIntervalSeconds: v.optional(
    numberIn(0, MAX_DURATION_SECONDS, "a number of seconds from 0 to 100 years"),
  ),
});

/** Options of `Queue.repair` (`onProgress` is passed through as given). */
export const repairOptionsSchema = v.strictObject({
  startAfter: v.optional(v.string()),
  limit: v.optional(numberIn(1, Number.POSITIVE_INFINITY, "a whole number >= 1", true)),
  dryRun: v.optional(v.boolean()),
  concurrency: v.optional(numberIn(1, 100, "a whole number from 1 to 100", true)),
  pageSize: v.optional(numberIn(1, 1000, "a whole number from 1 to 1000", true)),
  checkMarkers: v.optional(v.boolean()),
  onProgress: v.optional(aFunction),
});

/**
 * The longest cancel reason, in characters. The reason rides in the task record, which every
 * later write rewrites and every listing reads: a sentence, not a document.
 */
export const MAX_CANCEL_REASON_CHARS = 1000;

const reason = `a string of at most ${MAX_CANCEL_REASON_CHARS} characters`;

/**
 * Options of `Queue.cancel`. The reason is checked before anything is written: the record
 * schema reads it as a string or null, so any other value stored there made the task
 * unreadable for good.
 */
export const cancelOptionsSchema = v.strictObject({
  reason: v.optional(v.pipe(v.string(reason), v.maxLength(MAX_CANCEL_REASON_CHARS, reason))),
});

/** Options of `Queue.cancelMany` and `Queue.cancelByType` (`onProgress` is called as given). */
export const bulkCancelOptionsSchema = v.strictObject({
  ...cancelOptionsSchema.entries,
  onProgress: v.optional(aFunction),
});

/**
 * Options of `Queue.wait` (the timeout is read by `parseDuration`, the signal used as given). A
 * misspelt `timout` used to leave the default in force: waiting forever.
 */
export const waitOptionsSchema = v.strictObject({
  timeout: v.optional(
    v.union([v.number(), v.string()], "a number of seconds or a duration like 30s"),
  ),
  signal: v.optional(v.unknown()),
});

/** Options of `Queue.setRetention` (the type is checked by `checkTaskType`). */
export const retentionOptionsSchema = v.strictObject({
  // `typ: "email"` changed the queue-wide default instead of one type's.
  type: v.optional(v.string()),
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
export function checkOptions<S extends v.GenericSchema>(
  schema: S,
  value: unknown,
  what: string,
): v.InferOutput<S> {
  if (value !== undefined && (typeof value !== "object" || value === null)) {
    throw new ValidationError(`Invalid ${what}: expected an object, got ${String(value)}.`);
  }
  const result = validate(schema, withoutUndefined(value ?? {}));
  if (!result.ok) throw new ValidationError(`Invalid ${what}: ${result.summary}.`);
  return result.value;
}

/**
 * Refuse the keys of an options object that `known` does not name, in the words of the schemas
 * above (`prefx must be removed (not a known key)`), for options checked by hand rather than by
 * a schema. A key set to `undefined` counts as not given.
 */
export function checkKnownKeys(value: object, known: Record<string, true>, what: string): void {
  const unknown = Object.entries(value)
    .filter(([key, given]) => given !== undefined && !Object.hasOwn(known, key))
    .map(([key]) => `${key} must be removed (not a known key)`);
  if (unknown.length > 0) throw new ValidationError(`Invalid ${what}: ${unknown.join("; ")}.`);
}
