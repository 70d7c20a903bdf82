/**
 * The stored schedule: its record format (`{prefix}schedules/{id}.json`), parsing and encoding,
 * and the checks a new schedule's fields go through.
 *
 * @module
 */
import * as v from "valibot";
import { MalformedObjectError, ValidationError } from "../errors.ts";
import {
  checkOptions,
  MAX_IDEMPOTENCY_KEY_CHARS,
  scheduleTaskOptionsSchema,
  triggerOptionsSchema,
} from "../options.ts";
import type { QueueInternals } from "../queue/internals.ts";
import type { SubmitOptions } from "../queue/types.ts";
import { MAX_PAYLOAD_THRESHOLD_BYTES } from "../store/bounds.ts";
import { validate } from "../util/schema.ts";
import { count, jsonValue, positiveSeconds, priority, storedDate } from "../util/stored-values.ts";

/**
 * The input of a new schedule of `type`, as it will be stored: the queue's own check (so a
 * schedule accepts exactly the inputs its tasks can be given), and at most
 * `MAX_PAYLOAD_THRESHOLD_BYTES` of JSON, since the schedule object keeps it inline and every
 * reader bounds a schedule object's size. Throws `ValidationError` saying what to fix.
 */
export function scheduleInput(queue: QueueInternals, type: string, input: unknown): unknown {
  const { value, bytes } = queue.encodeInput(type, input);
  if (bytes.length > MAX_PAYLOAD_THRESHOLD_BYTES)
    throw new ValidationError(
      `Input of the ${type} schedule is ${bytes.length} bytes of JSON; a schedule keeps its input inside its own object, so the limit is ${MAX_PAYLOAD_THRESHOLD_BYTES} (MAX_PAYLOAD_THRESHOLD_BYTES). Store large data in its own object and pass its key.`,
    );
  return value;
}

/** What a scheduler does with slots that came due while no scheduler ran. */
export type CatchUpPolicy = "latest" | "all" | "none";

/** Every {@link CatchUpPolicy}, for validation and help texts. */
export const CATCH_UP_POLICIES: readonly CatchUpPolicy[] = ["latest", "all", "none"];

/**
 * The timezone of a schedule created without one. Never the machine's zone, so schedulers on
 * machines with different local zones agree on every slot.
 */
export const DEFAULT_TIMEZONE = "UTC";

/** Options of the tasks a schedule submits; `null` means the queue's default. */
export interface ScheduleTaskOptions {
  /** Per-attempt time limit in seconds. */
  timeoutSeconds: number | null;
  /** Retries after the first run. */
  maxRetries: number | null;
  /** The task expires if not started within this many seconds of its submission. */
  ttlSeconds: number | null;
  /** The tasks' priority; absent in schedules written before priorities (the queue's default). */
  priority?: number;
}

/** The stored schedule. Times are ISO 8601 strings so the object reads well in `aws s3 cp`. */
export interface ScheduleRecord {
  /** Record format version. */
  oq: 1;
  /** Schedule id (also the key name). */
  id: string;
  /** Type of the tasks it submits. */
  type: string;
  /** Input of the tasks it submits (any JSON value). */
  input: unknown;
  /** Cron expression in croner syntax (5, 6 or 7 fields, seconds first when 6 or 7). */
  cron: string;
  /** IANA timezone the expression is evaluated in. */
  timezone: string;
  /** What to do with slots missed while no scheduler ran. */
  catchUp: CatchUpPolicy;
  /** Options of the submitted tasks. */
  task: ScheduleTaskOptions;
  /** False while disabled: no slot fires, and slots that fall meanwhile never will. */
  enabled: boolean;
  /** When the schedule was created. Only slots strictly after it fire. */
  createdAt: string;
  /** When this version was written. */
  updatedAt: string;
  /**
   * Every slot at or before this time is settled: fired, or skipped (by the catch-up policy,
   * because it preceded creation, or because the schedule was disabled).
   */
  doneThrough: string;
  /** The most recent slot fired, or null before the first. */
  lastSlot: string | null;
  /** The task submitted for {@link ScheduleRecord.lastSlot}. */
  lastTaskId: string | null;
}

/** What `Scheduler.create` (src/schedule/scheduler.ts) needs. */
export interface NewSchedule {
  /** Schedule id: 1-128 characters from A-Z a-z 0-9 . _ : - */
  id: string;
  /** Type of the tasks to submit. */
  type: string;
  /** Input of the tasks (any JSON value; default null). */
  input?: unknown;
  /** Cron expression (croner syntax; `0 9 * * *`, `*\/10 * * * * *`, `@hourly`). */
  cron: string;
  /** IANA timezone, e.g. `Europe/Paris`. Default `UTC`. */
  timezone?: string;
  /** Catch-up policy. Default `latest`. */
  catchUp?: CatchUpPolicy;
  /** Per-attempt time limit of the tasks: seconds or a duration string like `"30m"`. */
  timeoutSeconds?: number | string;
  /** Retries after the first run of each task. */
  maxRetries?: number;
  /**
   * Each task expires if not started within this long of submission: seconds or a duration
   * string like `"30m"`.
   */
  ttlSeconds?: number | string;
  /** Priority of each task, -10 to 10 (higher runs first). Default: the queue's default. */
  priority?: number;
  /** Create it disabled. Default true (enabled). */
  enabled?: boolean;
}

/** A schedule as `Scheduler.list` returns it: the record plus its next run. */
export interface ScheduleInfo extends ScheduleRecord {
  /** The next slot after now (and after `doneThrough`), or null when disabled or never again. */
  nextRunAt: string | null;
}

const positive = v.nullable(positiveSeconds);

// Loose objects: keys written by a newer oq are kept when this one writes the schedule back.
// Numbers, durations and dates are held to what the schedule's options accept
// (../util/stored-values.ts), so a hand-edited value is reported as malformed rather than
// failing every tick in croner or at submit.
const scheduleSchema = v.looseObject({
  oq: v.literal(1),
  id: v.string(),
  type: v.string(),
  input: jsonValue,
  cron: v.string(),
  timezone: v.string(),
  catchUp: v.picklist(["latest", "all", "none"]),
  task: v.looseObject({
    timeoutSeconds: positive,
    maxRetries: v.nullable(count),
    ttlSeconds: positive,
    priority: v.exactOptional(priority),
  }),
  enabled: v.boolean(),
  createdAt: storedDate,
  updatedAt: storedDate,
  doneThrough: storedDate,
  lastSlot: v.nullable(storedDate),
  lastTaskId: v.nullable(v.string()),
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Parse a stored schedule. A malformed or foreign object raises `MalformedObjectError` saying what is
 * wrong, so a tick can report it and go on with the other schedules.
 */
export function parseSchedule(body: Uint8Array | string, key: string): ScheduleRecord {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === "string" ? body : decoder.decode(body));
  } catch {
    throw new MalformedObjectError(`Object ${key} is not a schedule: its body is not JSON.`, {
      key,
    });
  }
  const result = validate(scheduleSchema, value);
  if (!result.ok) {
    throw new MalformedObjectError(`Object ${key} is not a valid schedule: ${result.summary}`, {
      key,
    });
  }
  return result.value as ScheduleRecord;
}

/** Serialize a schedule for storage. */
export function encodeSchedule(schedule: ScheduleRecord): Uint8Array {
  return encoder.encode(`${JSON.stringify(schedule, null, 1)}\n`);
}

/**
 * Check a catch-up policy given by a caller. Throws `ValidationError` naming the policies.
 */
export function checkPolicy(value: unknown): CatchUpPolicy {
  if (typeof value === "string" && (CATCH_UP_POLICIES as readonly string[]).includes(value)) {
    return value as CatchUpPolicy;
  }
  throw new ValidationError(
    `Invalid catch-up policy ${JSON.stringify(value)}: use latest (run the latest missed slot once), all (every missed slot, at most 100) or none (skip missed slots).`,
  );
}

/** Check the task options of a new schedule; unset options are stored as `null`. */
export function checkTaskOptions(spec: NewSchedule): ScheduleTaskOptions {
  const task = checkOptions(
    scheduleTaskOptionsSchema,
    {
      maxRetries: spec.maxRetries,
      timeoutSeconds: spec.timeoutSeconds,
      ttlSeconds: spec.ttlSeconds,
      priority: spec.priority,
    },
    "schedule task options",
  );
  return {
    timeoutSeconds: task.timeoutSeconds ?? null,
    maxRetries: task.maxRetries ?? null,
    ttlSeconds: task.ttlSeconds ?? null,
    ...(task.priority === undefined ? {} : { priority: task.priority }),
  };
}

/** The options a schedule's task is submitted with, under the given idempotency key. */
export function submitOptions(schedule: ScheduleRecord, idempotencyKey: string): SubmitOptions {
  const out: SubmitOptions = { idempotencyKey };
  if (schedule.task.timeoutSeconds !== null) out.timeoutSeconds = schedule.task.timeoutSeconds;
  if (schedule.task.maxRetries !== null) out.maxRetries = schedule.task.maxRetries;
  if (schedule.task.ttlSeconds !== null) out.ttlSeconds = schedule.task.ttlSeconds;
  if (schedule.task.priority !== undefined) out.priority = schedule.task.priority;
  return out;
}

/**
 * The idempotency key of a manual trigger of schedule `id`: `schedule:<id>:manual:<key>`, with
 * `<key>` the caller's or `fallback()`, namespaced so it never equals a slot's key or another
 * schedule's. Throws `ValidationError` for bad options.
 */
export function triggerKey(id: string, options: unknown, fallback: () => string): string {
  const prefix = `schedule:${id}:manual:`;
  // The caller's key is checked itself, against what the namespace leaves of the limit: the
  // check of the namespaced key named a key and a limit the caller never gave.
  const max = MAX_IDEMPOTENCY_KEY_CHARS - prefix.length;
  const given = checkOptions(triggerOptionsSchema(max), options, `trigger options of ${id}`);
  return `${prefix}${given.idempotencyKey ?? fallback()}`;
}
