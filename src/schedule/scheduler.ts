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
import { NotFoundError, PreconditionFailedError, ValidationError } from "../errors.ts";
import { checkScheduleId, checkTaskType } from "../keys.ts";
import type { Logger } from "../logger.ts";
import { checkKnownKeys, checkOptions, schedulerOptionsSchema } from "../options.ts";
import { internals } from "../queue/internals.ts";
import type { Queue } from "../queue/queue.ts";
import { MAX_CAS_ROUNDS } from "../store/documents.ts";
import type { TaskRecord } from "../task/record.ts";
import { mapLimit, sleep } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import { iso } from "../util/format.ts";
import {
  checkPolicy,
  checkTaskOptions,
  DEFAULT_TIMEZONE,
  type NewSchedule,
  type ScheduleInfo,
  type ScheduleRecord,
  scheduleInput,
  submitOptions,
  triggerKey,
} from "./record.ts";
import {
  cronFor,
  nextSlots,
  planSlots,
  type SlotPlan,
  skipReason,
  slotIdempotencyKey,
} from "./slots.ts";
import { ScheduleStore, type VersionedSchedule } from "./store.ts";

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

/** Every key of {@link NewSchedule} (the type makes the list whole). */
const NEW_SCHEDULE_KEYS: Record<keyof NewSchedule, true> = {
  id: true,
  type: true,
  input: true,
  cron: true,
  timezone: true,
  catchUp: true,
  timeoutSeconds: true,
  maxRetries: true,
  ttlSeconds: true,
  priority: true,
  enabled: true,
};

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

/** What the round of a tick whose write landed decided for one schedule. */
type LandedRound = { schedule: ScheduleRecord; plan: SlotPlan; fired: FiredSlot[] };

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
  /** Where schedule objects are read and conditionally written. */
  readonly #store: ScheduleStore;

  constructor(queue: Queue, given: SchedulerOptions = {}) {
    const options = checkOptions(schedulerOptionsSchema, given, "scheduler options");
    // A ValidationError for anything but a queue, rather than a TypeError reading its logger.
    internals(queue);
    this.queue = queue;
    this.#logger = given.logger ?? queue.logger;
    this.#store = new ScheduleStore(queue.storage, queue.keys.schedules, this.#logger);
    this.#maxCatchUp = options.maxCatchUp ?? 100;
    this.#missedAfterMs = options.missedAfterMs ?? 60_000;
    this.#concurrency = options.concurrency ?? 8;
  }

  // ---- managing ---------------------------------------------------------------------------

  /**
   * Create a schedule (create-if-absent: an existing id is rejected, never overwritten). The
   * expression and timezone are checked with croner; its reason is in the `ValidationError`.
   * Only slots strictly after now fire.
   */
  async create(spec: NewSchedule): Promise<ScheduleRecord> {
    if (typeof spec !== "object" || spec === null)
      throw new ValidationError("A new schedule must be an object: { id, type, cron, ... }.");
    checkKnownKeys(spec, NEW_SCHEDULE_KEYS, "schedule");
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
    const input = scheduleInput(internals(this.queue), spec.type, spec.input);
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
    const created = await this.#store.documents.write(key, null, schedule);
    if (created.won) return schedule;
    // 412: the id is taken. After an ambiguous answer (the store read it back) or a 409 (nothing
    // was written) it is taken only if an object is there now; otherwise the error stands.
    if (!(created.error instanceof PreconditionFailedError)) {
      const seen =
        created.readBack !== undefined ? created.readBack : await this.#store.documents.read(key);
      if (seen === null || seen === undefined) throw created.error;
    }
    throw new ValidationError(
      `Schedule ${id} already exists: delete it first (oq schedule delete ${id}) or choose another id.`,
      { key },
    );
  }

  /** Read a schedule with its ETag; `undefined` when it does not exist. */
  async read(id: string): Promise<{ schedule: ScheduleRecord; etag: string } | undefined> {
    const found = await this.#store.documents.read(this.queue.keys.schedule(checkScheduleId(id)));
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
    const all = await this.#store.readAll(false);
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
    await this.#store.delete(key);
  }

  /**
   * Submit the schedule's task now, outside its cron slots (also when disabled). Its idempotency
   * key is `schedule:<id>:manual:<key>`, with `<key>` the given one or `<time>:<random>`, so it
   * never collides with a slot, and retrying a call with the same key makes no second task. The
   * schedule object is not changed.
   */
  async trigger(id: string, options: { idempotencyKey?: string } = {}): Promise<TaskRecord> {
    const schedule = await this.get(id);
    const key = triggerKey(
      schedule.id,
      options,
      () => `${iso(this.queue.now())}:${internals(this.queue).randomHex(8)}`,
    );
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
    const all = await this.#store.readAll(true);
    await mapLimit(all, this.#concurrency, async (found) => {
      try {
        await this.#fire(found, result);
      } catch (error) {
        this.#logger.error(
          `schedule ${found.value.id}: ${errorMessage(error)} (its due slots are retried next tick)`,
          { schedule: found.value.id, error },
        );
        result.errors.push({ scheduleId: found.value.id, error });
      }
    });
    const now = this.queue.now();
    for (const { value: schedule } of this.#store.cached()) {
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
          `scheduler tick failed: ${errorMessage(error)} (retrying in ${intervalMs} ms)`,
          { error },
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
    const landed: { round?: LandedRound } = {};
    // A lost race (another scheduler recorded these slots, or the schedule was changed) re-reads
    // and decides again. Re-submitting a slot is harmless: its key dedupes.
    const stored = await this.#store.update(
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
    if (stored === undefined || landed.round === undefined) return;
    this.#report(landed.round, result);
  }

  /** Report what a landed round of `#fire` fired and skipped. */
  #report(round: LandedRound, result: TickResult): void {
    const { schedule, plan, fired } = round;
    result.fired.push(...fired);
    for (const f of fired) {
      this.#logger.info(`schedule ${f.scheduleId}: slot ${f.slot} -> task ${f.taskId}`, {
        schedule: f.scheduleId,
        slot: f.slot,
        taskId: f.taskId,
      });
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
    const stored = await this.#store.update(
      key,
      (current) => change(current.value, this.queue.now()),
      {
        conflictMessage: `Schedule ${id} kept changing under ${MAX_CAS_ROUNDS} attempts to update it; try again.`,
      },
    );
    if (stored === undefined) throw this.#notFound(id);
    return stored.value;
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
