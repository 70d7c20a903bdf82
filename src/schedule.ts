/**
 * Recurring schedules: cron expressions (parsed by croner) that submit a task at each slot,
 * exactly once per slot however many schedulers run and however they crash.
 *
 * One object per schedule at `{prefix}schedules/{id}.json`. It records the cron expression, the
 * task to submit and `doneThrough`: every slot at or before that time is settled (fired, or
 * skipped by the catch-up policy, by creation or while disabled). A scheduler's tick, for each
 * schedule with due slots:
 *
 * 1. submits a task for every slot it decides to fire, with the idempotency key
 *    `schedule:<id>:<slot ISO>`, so a second submit of the same slot returns the first task;
 * 2. only then advances `doneThrough` with a compare-and-swap (`If-Match`) on the schedule.
 *
 * A crash between 1 and 2 leaves `doneThrough` behind, so the next tick submits the same keys
 * again: no duplicate (the key dedupes) and no loss (the slot is never marked done before its
 * task exists). Several schedulers racing on one slot all submit the same key and one of them
 * wins the CAS; the others re-read and find nothing left to do.
 *
 * Catch-up, when a tick finds several slots due at once (after downtime):
 * - `latest` (default): fire only the most recent due slot; the older ones are skipped.
 * - `all`: fire every due slot, oldest first, at most {@link SchedulerOptions.maxCatchUp} (100);
 *   older ones beyond that bound are skipped.
 * - `none`: fire the most recent due slot only if it is at most
 *   {@link SchedulerOptions.missedAfterMs} late; anything later is skipped.
 *
 * Time is the queue's server time (`queue.now()`), never the local clock. Cron expressions are
 * evaluated in an explicit IANA timezone (`UTC` unless given), so schedulers on machines with
 * different local zones agree on every slot; DST follows croner (see docs/schedules.md).
 *
 * @module
 */
import { type } from "arktype";
import { Cron } from "croner";
import {
  MalformedObjectError,
  NotFoundError,
  PreconditionFailedError,
  ValidationError,
} from "./errors.ts";
import { checkScheduleId, checkTaskType } from "./keys.ts";
import type { Logger } from "./logger.ts";
import { checkOptions, scheduleTaskOptionsSchema } from "./options.ts";
import { internals } from "./queue/internals.ts";
import type { Queue } from "./queue/queue.ts";
import type { SubmitOptions } from "./queue/types.ts";
import { sameEtag } from "./storage/storage.ts";
import { DocumentStore, MAX_CAS_ROUNDS, type VersionedDocument } from "./store/documents.ts";
import type { TaskRecord } from "./task/record.ts";
import { mapLimit, sleep } from "./util/async.ts";

/** What a scheduler does with slots that came due while no scheduler ran. */
export type CatchUpPolicy = "latest" | "all" | "none";

/** Every {@link CatchUpPolicy}, for validation and help texts. */
export const CATCH_UP_POLICIES: readonly CatchUpPolicy[] = ["latest", "all", "none"];

/** The timezone of a schedule created without one. Never the machine's zone: see the module doc. */
export const DEFAULT_TIMEZONE = "UTC";

/** Options of the tasks a schedule submits; `null` means the queue's default. */
export interface ScheduleTaskOptions {
  /** Per-attempt time limit in seconds. */
  timeoutSeconds: number | null;
  /** Retries after the first run. */
  maxRetries: number | null;
  /** The task expires if not started within this many seconds of its submission. */
  ttlSeconds: number | null;
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

/** What {@link Scheduler.create} needs. */
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
  /** Per-attempt time limit of the tasks, in seconds. */
  timeoutSeconds?: number;
  /** Retries after the first run of each task. */
  maxRetries?: number;
  /** Each task expires if not started within this many seconds of submission. */
  ttlSeconds?: number;
  /** Create it disabled. Default true (enabled). */
  enabled?: boolean;
}

/** A schedule as {@link Scheduler.list} returns it: the record plus its next run. */
export interface ScheduleInfo extends ScheduleRecord {
  /** The next slot after now (and after `doneThrough`), or null when disabled or never again. */
  nextRunAt: string | null;
}

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  /** Where fired slots and errors are reported. Default: the queue's logger. */
  logger?: Logger;
  /** Catch-up `all` fires at most this many missed slots per schedule; older ones are skipped. Default 100. */
  maxCatchUp?: number;
  /** Catch-up `none`: a slot more than this many ms late counts as missed and is skipped. Default 60 000. */
  missedAfterMs?: number;
  /** Schedules processed at once in a tick. Default 8. */
  concurrency?: number;
}

/** One slot a tick submitted a task for. */
export interface FiredSlot {
  /** The schedule. */
  scheduleId: string;
  /** The slot time (ISO 8601). */
  slot: string;
  /** The task submitted for it (the same id for every scheduler that submits this slot). */
  taskId: string;
}

/** Slots a tick skipped for one schedule, and why. */
export interface SkippedSlots {
  /** The schedule. */
  scheduleId: string;
  /** How many slots were skipped (at least; catch-up bounds are not enumerated further). */
  count: number;
  /** The latest slot skipped (ISO 8601). */
  through: string;
  /** `catch-up` (policy latest/all bound) or `missed` (policy none). */
  reason: "catch-up" | "missed";
}

/** What one {@link Scheduler.tick} did. */
export interface TickResult {
  /**
   * Slots this scheduler submitted and recorded as done. Other schedulers may have submitted the
   * same slots (getting the same task), but only the one whose CAS recorded a slot reports it.
   */
  fired: FiredSlot[];
  /** Slots skipped by the catch-up policies. */
  skipped: SkippedSlots[];
  /** Schedules that could not be processed (left for the next tick). */
  errors: { scheduleId: string; error: unknown }[];
  /** The earliest future slot over every enabled schedule (epoch ms), if any. */
  nextDueMs: number | undefined;
}

/** Options of {@link Scheduler.run}. */
export interface RunOptions {
  /**
   * Longest pause between ticks, in ms (a tick lists the schedules, so this bounds how late a
   * new or changed schedule is noticed). The loop also wakes at each schedule's next slot.
   * Default 60 000.
   */
  intervalMs?: number;
  /** Stops the loop; the tick in progress completes first. */
  signal?: AbortSignal;
}

/** The handle {@link startScheduler} returns. */
export interface SchedulerHandle {
  /** The scheduler running in the background. */
  readonly scheduler: Scheduler;
  /** Stop the loop and wait for the tick in progress. */
  stop(): Promise<void>;
}

const isoString = type("string").narrow(
  (s, ctx) => !Number.isNaN(Date.parse(s)) || ctx.mustBe("an ISO 8601 date"),
);

const scheduleSchema = type({
  oq: "1",
  id: "string",
  type: "string",
  input: "unknown",
  cron: "string",
  timezone: "string",
  catchUp: "'latest' | 'all' | 'none'",
  task: {
    timeoutSeconds: "number > 0 | null",
    maxRetries: "number.integer >= 0 | null",
    ttlSeconds: "number > 0 | null",
  },
  enabled: "boolean",
  createdAt: isoString,
  updatedAt: isoString,
  doneThrough: isoString,
  lastSlot: isoString.or("null"),
  lastTaskId: "string | null",
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const iso = (ms: number): string => new Date(ms).toISOString();

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
  const result = scheduleSchema(value);
  if (result instanceof type.errors) {
    throw new MalformedObjectError(`Object ${key} is not a valid schedule: ${result.summary}`, {
      key,
    });
  }
  return result as ScheduleRecord;
}

/** Serialize a schedule for storage. */
export function encodeSchedule(schedule: ScheduleRecord): Uint8Array {
  return encoder.encode(`${JSON.stringify(schedule, null, 1)}\n`);
}

/** The idempotency key of a slot: the same for every scheduler, so a slot makes one task. */
export function slotIdempotencyKey(scheduleId: string, slotMs: number): string {
  return `schedule:${scheduleId}:${iso(slotMs)}`;
}

const cronCache = new Map<string, Cron>();

/**
 * A croner job (without a function: it never runs timers) for an expression and timezone.
 * Throws `ValidationError` with croner's reason when either is invalid, when the expression is a
 * one-off date rather than a recurring pattern, or when it never fires.
 */
export function cronFor(expression: string, timezone: string = DEFAULT_TIMEZONE): Cron {
  const cacheKey = `${timezone}\u0000${expression}`;
  const cached = cronCache.get(cacheKey);
  if (cached !== undefined) return cached;
  if (typeof expression !== "string" || expression.trim() === "") {
    throw new ValidationError(
      'Invalid cron expression "": give 5 to 7 fields, e.g. "0 9 * * *" (09:00 daily) or "*/10 * * * * *" (every 10 s).',
    );
  }
  // croner reads an empty timezone as "the machine's zone", which schedulers would disagree on.
  if (typeof timezone !== "string" || timezone.trim() === "") {
    throw new ValidationError(
      'Invalid timezone "": give an IANA name such as "UTC" or "Europe/Paris".',
    );
  }
  let cron: Cron;
  let first: Date | null;
  try {
    cron = new Cron(expression, { timezone });
    // croner checks the timezone only when it computes a time.
    first = cron.nextRun(new Date(0));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const timezoneError = /timezone/i.test(reason);
    throw new ValidationError(
      timezoneError
        ? `Invalid timezone "${timezone}": ${reason}`
        : `Invalid cron expression "${expression}": ${reason}. Use 5 to 7 fields (seconds first when 6 or 7), e.g. "0 9 * * *".`,
    );
  }
  if (cron.getPattern() === undefined) {
    throw new ValidationError(
      `Invalid cron expression "${expression}": croner reads it as a one-off date; a schedule needs a recurring pattern such as "0 9 * * *". Submit a single task with a scheduled time instead.`,
    );
  }
  if (first === null) {
    throw new ValidationError(
      `Invalid cron expression "${expression}": it never fires (e.g. February 30th). Check the day and month fields.`,
    );
  }
  cronCache.set(cacheKey, cron);
  return cron;
}

/** The next `count` slots of a schedule strictly after `afterMs`. */
export function nextSlots(
  schedule: Pick<ScheduleRecord, "cron" | "timezone">,
  afterMs: number,
  count = 1,
): number[] {
  return cronFor(schedule.cron, schedule.timezone)
    .nextRuns(count, new Date(afterMs))
    .map((d) => d.getTime());
}

/** The decision of a tick for one schedule. */
export interface SlotPlan {
  /** Slots to submit, oldest first. */
  fire: number[];
  /** Slots skipped by the policy (at least this many). */
  skipped: number;
  /** The latest skipped slot. */
  skippedThrough: number | undefined;
  /** The new `doneThrough`, or undefined when nothing is due. */
  doneThrough: number | undefined;
}

/**
 * Decide which due slots of a schedule fire at `now` under its catch-up policy. Pure: the tick
 * uses it, and tests check the policies with it directly.
 */
export function planSlots(
  schedule: Pick<ScheduleRecord, "cron" | "timezone" | "catchUp" | "doneThrough" | "enabled">,
  now: number,
  options: { maxCatchUp?: number; missedAfterMs?: number } = {},
): SlotPlan {
  const none: SlotPlan = {
    fire: [],
    skipped: 0,
    skippedThrough: undefined,
    doneThrough: undefined,
  };
  if (!schedule.enabled) return none;
  const after = Date.parse(schedule.doneThrough);
  const cron = cronFor(schedule.cron, schedule.timezone);
  const maxCatchUp = Math.max(1, options.maxCatchUp ?? 100);
  const want = schedule.catchUp === "all" ? maxCatchUp + 1 : 2;
  // Usually zero or one slot is due: walk forward from doneThrough. Only after a long outage
  // (more than `want` slots) ask croner for the latest `want` slots before now instead.
  let due: number[] = [];
  for (let t = after; due.length < want; ) {
    const next = cron.nextRun(new Date(t))?.getTime();
    if (next === undefined || next > now) break;
    due.push(next);
    t = next;
  }
  if (due.length === want) {
    // croner includes a slot earlier in the reference's second, so +1 makes `now` itself count.
    due = cron
      .previousRuns(want, new Date(now + 1))
      .map((d) => d.getTime())
      .filter((t) => t > after && t <= now)
      .reverse();
  }
  if (due.length === 0) return none;
  const latest = due[due.length - 1]!;
  let fire: number[];
  if (schedule.catchUp === "all") fire = due.slice(-maxCatchUp);
  else if (schedule.catchUp === "latest") fire = [latest];
  else fire = now - latest <= (options.missedAfterMs ?? 60_000) ? [latest] : [];
  // `due` was cut at `want`, so when it is full there may be more skipped slots than it shows.
  const skipped = due.length - fire.length;
  const skippedThrough = skipped > 0 ? due[skipped - 1] : undefined;
  return { fire, skipped, skippedThrough, doneThrough: latest };
}

function skipReason(policy: CatchUpPolicy): "catch-up" | "missed" {
  return policy === "none" ? "missed" : "catch-up";
}

function checkPolicy(value: unknown): CatchUpPolicy {
  if (typeof value === "string" && (CATCH_UP_POLICIES as readonly string[]).includes(value)) {
    return value as CatchUpPolicy;
  }
  throw new ValidationError(
    `Invalid catch-up policy ${JSON.stringify(value)}: use latest (run the latest missed slot once), all (every missed slot, at most 100) or none (skip missed slots).`,
  );
}

function checkTaskOptions(spec: NewSchedule): ScheduleTaskOptions {
  const task = checkOptions(
    scheduleTaskOptionsSchema,
    {
      maxRetries: spec.maxRetries,
      timeoutSeconds: spec.timeoutSeconds,
      ttlSeconds: spec.ttlSeconds,
    },
    "schedule task options",
  );
  return {
    timeoutSeconds: task.timeoutSeconds ?? null,
    maxRetries: task.maxRetries ?? null,
    ttlSeconds: task.ttlSeconds ?? null,
  };
}

function submitOptions(schedule: ScheduleRecord, idempotencyKey: string): SubmitOptions {
  const out: SubmitOptions = { idempotencyKey };
  if (schedule.task.timeoutSeconds !== null) out.timeoutSeconds = schedule.task.timeoutSeconds;
  if (schedule.task.maxRetries !== null) out.maxRetries = schedule.task.maxRetries;
  if (schedule.task.ttlSeconds !== null) out.ttlSeconds = schedule.task.ttlSeconds;
  return out;
}

/** A schedule with the ETag of the version read. */
type VersionedSchedule = VersionedDocument<ScheduleRecord>;

/** The shortest pause of the run loop, so a failing tick cannot spin. */
const MIN_PAUSE_MS = 100;

/**
 * Schedules over one queue: creating, reading and changing them, and the tick that fires due
 * slots. Any number of schedulers may run at once (in workers and in `oq schedule run`).
 */
export class Scheduler {
  /** The queue tasks are submitted to and schedules are stored in. */
  readonly queue: Queue;
  readonly #logger: Logger;
  readonly #maxCatchUp: number;
  readonly #missedAfterMs: number;
  readonly #concurrency: number;
  /** Schedules as last read, by key: a tick GETs only those whose ETag changed since. */
  readonly #cache = new Map<string, VersionedSchedule>();
  /** Key → ETag of schedule objects found malformed, so they are not re-read every tick. */
  readonly #malformed = new Map<string, string>();
  /** Where schedule objects are read and conditionally written. */
  readonly #documents: DocumentStore<ScheduleRecord>;

  constructor(queue: Queue, options: SchedulerOptions = {}) {
    this.queue = queue;
    this.#documents = new DocumentStore(queue.storage, {
      parse: parseSchedule,
      encode: encodeSchedule,
    });
    this.#logger = options.logger ?? queue.logger;
    this.#maxCatchUp = options.maxCatchUp ?? 100;
    this.#missedAfterMs = options.missedAfterMs ?? 60_000;
    this.#concurrency = options.concurrency ?? 8;
    if (!(Number.isInteger(this.#maxCatchUp) && this.#maxCatchUp >= 1)) {
      throw new ValidationError(`Invalid maxCatchUp ${this.#maxCatchUp}: use a whole number >= 1.`);
    }
  }

  // ---- managing ---------------------------------------------------------------------------

  /**
   * Create a schedule (create-if-absent: an existing id is rejected, never overwritten). The
   * expression and timezone are checked with croner; its reason is in the `ValidationError`.
   * Only slots strictly after now fire.
   */
  async create(spec: NewSchedule): Promise<ScheduleRecord> {
    const id = checkScheduleId(spec.id);
    checkTaskType(spec.type);
    const timezone = spec.timezone ?? DEFAULT_TIMEZONE;
    const now = this.queue.now();
    if (cronFor(spec.cron, timezone).nextRun(new Date(now)) === null) {
      throw new ValidationError(
        `Invalid cron expression "${spec.cron}": it has no slot after now (${iso(now)}); a year field in the past?`,
      );
    }
    const catchUp = checkPolicy(spec.catchUp ?? "latest");
    // The queue's own check, so a schedule accepts exactly the inputs its tasks can be given.
    const input = internals(this.queue).checkInput(spec.type, spec.input);
    const task = checkTaskOptions(spec);
    if (spec.enabled !== undefined && typeof spec.enabled !== "boolean") {
      throw new ValidationError("Invalid enabled: use true or false.");
    }
    const schedule: ScheduleRecord = {
      oq: 1,
      id,
      type: spec.type,
      input,
      cron: spec.cron,
      timezone,
      catchUp,
      task,
      enabled: spec.enabled ?? true,
      createdAt: iso(now),
      updatedAt: iso(now),
      doneThrough: iso(now),
      lastSlot: null,
      lastTaskId: null,
    };
    const key = this.queue.keys.schedule(id);
    const created = await this.#documents.write(key, null, schedule);
    if (created.won) return schedule;
    // 412: the id is taken. After an ambiguous answer (the store read it back) or a 409 (nothing
    // was written) it is taken only if an object is there now; otherwise the error stands.
    if (!(created.error instanceof PreconditionFailedError)) {
      const seen =
        created.readBack !== undefined ? created.readBack : await this.#documents.read(key);
      if (seen === null || seen === undefined) throw created.error;
    }
    throw new ValidationError(
      `Schedule ${id} already exists: delete it first (oq schedule delete ${id}) or choose another id.`,
      { key },
    );
  }

  /** Read a schedule with its ETag; `undefined` when it does not exist. */
  async read(id: string): Promise<{ schedule: ScheduleRecord; etag: string } | undefined> {
    const found = await this.#documents.read(this.queue.keys.schedule(checkScheduleId(id)));
    return found === undefined ? undefined : { schedule: found.value, etag: found.etag };
  }

  /** Read a schedule. Throws `NotFoundError` when it does not exist. */
  async get(id: string): Promise<ScheduleRecord> {
    const found = await this.read(id);
    if (found === undefined) throw this.#notFound(id);
    return found.schedule;
  }

  /**
   * Every schedule, in id order, with its next run time. Malformed objects are skipped with a
   * warning. Costs one LIST per 1000 schedules and one GET per schedule.
   */
  async list(): Promise<ScheduleInfo[]> {
    const all = await this.#readAll(false);
    const now = this.queue.now();
    return all.map(({ value: schedule }) => ({
      ...schedule,
      nextRunAt: this.#nextRunAt(schedule, now),
    }));
  }

  /** The next `count` slots of a schedule from now (for `show`). */
  upcoming(schedule: ScheduleRecord, count = 5): string[] {
    if (!schedule.enabled) return [];
    const from = Math.max(this.queue.now(), Date.parse(schedule.doneThrough));
    return nextSlots(schedule, from, count).map(iso);
  }

  /**
   * Enable a schedule. Slots that fell while it was disabled never fire (disabled time is not
   * downtime to catch up on): `doneThrough` moves to now. Enabling an enabled schedule changes
   * nothing.
   */
  async enable(id: string): Promise<ScheduleRecord> {
    return this.#update(id, (s, now) =>
      s.enabled
        ? undefined
        : {
            ...s,
            enabled: true,
            // Server time estimates can step back up to a second between calls (Date headers
            // are truncated): never let doneThrough fall before the moment it was disabled.
            doneThrough: iso(Math.max(now, Date.parse(s.doneThrough), Date.parse(s.updatedAt))),
            updatedAt: iso(now),
          },
    );
  }

  /** Disable a schedule: no slot fires until it is enabled again. */
  async disable(id: string): Promise<ScheduleRecord> {
    return this.#update(id, (s, now) =>
      s.enabled ? { ...s, enabled: false, updatedAt: iso(now) } : undefined,
    );
  }

  /**
   * Delete a schedule. Tasks it already submitted are left alone. Throws `NotFoundError` when it
   * does not exist.
   */
  async delete(id: string): Promise<void> {
    const key = this.queue.keys.schedule(checkScheduleId(id));
    try {
      await this.queue.storage.head(key);
    } catch (error) {
      if (error instanceof NotFoundError) throw this.#notFound(id);
      throw error;
    }
    await this.queue.storage.delete(key);
    this.#cache.delete(key);
  }

  /**
   * Submit the schedule's task now, outside its cron slots (also when disabled). Its idempotency
   * key is `schedule:<id>:manual:<key>`, with `<key>` the given one or `<time>:<random>`, so it
   * never collides with a slot, and retrying a call with the same key makes no second task. The
   * schedule object is not changed.
   */
  async trigger(id: string, options: { idempotencyKey?: string } = {}): Promise<TaskRecord> {
    const schedule = await this.get(id);
    // Namespaced, so a trigger key can never equal a slot's key or another schedule's.
    const key = `schedule:${schedule.id}:manual:${
      options.idempotencyKey ?? `${iso(this.queue.now())}:${internals(this.queue).randomHex(8)}`
    }`;
    return this.queue.submit(schedule.type, schedule.input, submitOptions(schedule, key));
  }

  // ---- firing -----------------------------------------------------------------------------

  /**
   * One pass over every schedule: submit the due slots (task first), then record them done (CAS).
   * Errors of one schedule are logged and returned; the others still run. A listing failure
   * throws.
   */
  async tick(): Promise<TickResult> {
    const result: TickResult = { fired: [], skipped: [], errors: [], nextDueMs: undefined };
    const all = await this.#readAll(true);
    await mapLimit(all, this.#concurrency, async (found) => {
      try {
        await this.#fire(found, result);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.#logger.error(
          `schedule ${found.value.id}: ${message} (its due slots are retried next tick)`,
        );
        result.errors.push({ scheduleId: found.value.id, error });
      }
    });
    const now = this.queue.now();
    for (const { value: schedule } of this.#cache.values()) {
      if (!schedule.enabled) continue;
      const next = this.#nextRunMs(schedule, now);
      if (next !== undefined && (result.nextDueMs === undefined || next < result.nextDueMs)) {
        result.nextDueMs = next;
      }
    }
    return result;
  }

  /**
   * Tick until `signal` aborts: at each schedule's next slot, and at least every `intervalMs`.
   * A failing tick is logged and retried; it never ends the loop.
   */
  async run(options: RunOptions = {}): Promise<void> {
    const intervalMs = options.intervalMs ?? 60_000;
    if (!(intervalMs > 0)) {
      throw new ValidationError(`Invalid intervalMs ${intervalMs}: use a number of ms > 0.`);
    }
    const signal = options.signal;
    while (!signal?.aborted) {
      let nextDueMs: number | undefined;
      let failed = false;
      try {
        nextDueMs = (await this.tick()).nextDueMs;
      } catch (error) {
        failed = true;
        this.#logger.error(
          `scheduler tick failed: ${error instanceof Error ? error.message : error} (retrying in ${intervalMs} ms)`,
        );
      }
      if (signal?.aborted) break;
      let pause = intervalMs;
      if (!failed && nextDueMs !== undefined) {
        // Server time can read up to a second low (Date headers are truncated): aim just past it.
        pause = Math.min(intervalMs, Math.max(MIN_PAUSE_MS, nextDueMs - this.queue.now() + 20));
      }
      await sleep(pause, signal);
    }
  }

  async #fire(found: VersionedSchedule, result: TickResult): Promise<void> {
    const key = this.queue.keys.schedule(found.value.id);
    // What the round whose write landed decided; reset by every round, so a round that finds
    // nothing left to do (another scheduler recorded the slots) reports nothing.
    const landed: { round?: { schedule: ScheduleRecord; plan: SlotPlan; fired: FiredSlot[] } } = {};
    // A lost race (another scheduler recorded these slots, or the schedule was changed) re-reads
    // and decides again. Re-submitting a slot is harmless: its key dedupes.
    const stored = await this.#documents.update(
      key,
      async ({ value: schedule }) => {
        landed.round = undefined;
        const now = this.queue.now();
        const plan = planSlots(schedule, now, {
          maxCatchUp: this.#maxCatchUp,
          missedAfterMs: this.#missedAfterMs,
        });
        if (plan.doneThrough === undefined) return undefined;
        // 1. Submit first. A crash after this and before the CAS re-submits the same keys later.
        const fired: FiredSlot[] = [];
        let lastTaskId = schedule.lastTaskId;
        for (const slot of plan.fire) {
          const task = await this.queue.submit(
            schedule.type,
            schedule.input,
            submitOptions(schedule, slotIdempotencyKey(schedule.id, slot)),
          );
          lastTaskId = task.id;
          fired.push({ scheduleId: schedule.id, slot: iso(slot), taskId: task.id });
        }
        // 2. Then record the slots as done, only if nobody changed the schedule meanwhile.
        landed.round = { schedule, plan, fired };
        const lastFired = plan.fire.at(-1);
        return {
          ...schedule,
          doneThrough: iso(plan.doneThrough),
          lastSlot: lastFired === undefined ? schedule.lastSlot : iso(lastFired),
          lastTaskId,
          updatedAt: iso(now),
        };
      },
      {
        known: found,
        conflictMessage: `Schedule ${found.value.id} kept changing under ${MAX_CAS_ROUNDS} attempts to record its slots; the next tick retries.`,
      },
    );
    this.#remember(key, stored);
    if (stored === undefined || landed.round === undefined) return;
    const { schedule, plan, fired } = landed.round;
    result.fired.push(...fired);
    for (const f of fired) {
      this.#logger.info(`schedule ${f.scheduleId}: slot ${f.slot} -> task ${f.taskId}`);
    }
    if (plan.skipped > 0 && plan.skippedThrough !== undefined) {
      const reason = skipReason(schedule.catchUp);
      result.skipped.push({
        scheduleId: schedule.id,
        count: plan.skipped,
        through: iso(plan.skippedThrough),
        reason,
      });
      this.#logger.warn(
        `schedule ${schedule.id}: skipped ${plan.skipped} missed slot(s) through ${iso(plan.skippedThrough)} (catch-up ${schedule.catchUp})`,
      );
    }
  }

  // ---- storage ----------------------------------------------------------------------------

  async #update(
    id: string,
    change: (current: ScheduleRecord, now: number) => ScheduleRecord | undefined,
  ): Promise<ScheduleRecord> {
    const key = this.queue.keys.schedule(checkScheduleId(id));
    const stored = await this.#documents.update(
      key,
      (current) => change(current.value, this.queue.now()),
      {
        conflictMessage: `Schedule ${id} kept changing under ${MAX_CAS_ROUNDS} attempts to update it; try again.`,
      },
    );
    this.#remember(key, stored);
    if (stored === undefined) throw this.#notFound(id);
    return stored.value;
  }

  async #readKey(key: string): Promise<VersionedSchedule | undefined> {
    const found = await this.#documents.read(key);
    this.#remember(key, found);
    return found;
  }

  /** Cache the version just read or written (`undefined`: the schedule is gone). */
  #remember(key: string, found: VersionedSchedule | undefined): void {
    if (found === undefined) this.#cache.delete(key);
    else this.#cache.set(key, found);
  }

  /**
   * Every schedule object under the prefix. With `useCache`, a schedule whose listed ETag is the
   * one last read is not read again, so an idle tick costs one LIST.
   */
  async #readAll(useCache: boolean): Promise<VersionedSchedule[]> {
    const prefix = this.queue.keys.schedules;
    const listed: { key: string; etag: string }[] = [];
    let continuationToken: string | undefined;
    for (;;) {
      const page = await this.queue.storage.list({
        prefix,
        ...(continuationToken === undefined ? {} : { continuationToken }),
      });
      for (const o of page.objects) {
        const name = o.key.slice(prefix.length);
        if (!name.endsWith(".json") || name.includes("/")) continue;
        listed.push({ key: o.key, etag: o.etag });
      }
      if (!page.isTruncated) break;
      continuationToken = page.nextContinuationToken;
    }
    const seen = new Set(listed.map((l) => l.key));
    for (const key of this.#cache.keys()) if (!seen.has(key)) this.#cache.delete(key);
    for (const key of this.#malformed.keys()) if (!seen.has(key)) this.#malformed.delete(key);
    const read = await mapLimit(listed, 16, async ({ key, etag }) => {
      const cached = this.#cache.get(key);
      if (useCache && cached !== undefined && sameEtag(cached.etag, etag)) return cached;
      // A malformed object is read and reported once per version, not on every tick.
      if (sameEtag(this.#malformed.get(key), etag)) return undefined;
      try {
        return await this.#readKey(key);
      } catch (error) {
        if (error instanceof MalformedObjectError) {
          this.#malformed.set(key, etag);
          this.#logger.warn(`skipping ${key}: ${error.message}`);
          return undefined;
        }
        throw error;
      }
    });
    return read.filter((r): r is VersionedSchedule => r !== undefined);
  }

  #nextRunMs(schedule: ScheduleRecord, now: number): number | undefined {
    if (!schedule.enabled) return undefined;
    try {
      return nextSlots(schedule, Math.max(now, Date.parse(schedule.doneThrough)), 1)[0];
    } catch {
      return undefined; // an expression croner no longer accepts; reported by the tick
    }
  }

  #nextRunAt(schedule: ScheduleRecord, now: number): string | null {
    const next = this.#nextRunMs(schedule, now);
    return next === undefined ? null : iso(next);
  }

  #notFound(id: string): NotFoundError {
    return new NotFoundError(
      `Schedule ${id} not found (oq schedule list shows the existing ones).`,
      {
        key: this.queue.keys.schedule(id),
      },
    );
  }
}

/**
 * Run a scheduler in the background of this process (e.g. inside a worker: `oq worker
 * --scheduler`). Returns a handle whose `stop()` ends the loop after the tick in progress.
 */
export function startScheduler(
  queue: Queue,
  options: SchedulerOptions & { intervalMs?: number } = {},
): SchedulerHandle {
  const intervalMs = options.intervalMs ?? 60_000;
  // Checked here, not only in run(): a rejected background loop would go unnoticed until stop().
  if (!(intervalMs > 0)) {
    throw new ValidationError(`Invalid intervalMs ${intervalMs}: use a number of ms > 0.`);
  }
  const scheduler = new Scheduler(queue, options);
  const controller = new AbortController();
  const logger = options.logger ?? queue.logger;
  const done = scheduler.run({ signal: controller.signal, intervalMs }).catch((error: unknown) => {
    logger.error(`scheduler stopped: ${error instanceof Error ? error.message : error}`);
  });
  return {
    scheduler,
    async stop() {
      controller.abort();
      await done;
    },
  };
}
