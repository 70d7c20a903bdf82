/**
 * Cron slots: which times a schedule fires at (croner, in the schedule's IANA timezone) and which
 * due slots a tick fires under each catch-up policy. Pure functions, no storage.
 *
 * @module
 */
import { Cron } from "croner";
import { ValidationError } from "../errors.ts";
import { errorMessage } from "../util/errors.ts";
import { iso } from "../util/format.ts";
import { type CatchUpPolicy, DEFAULT_TIMEZONE, type ScheduleRecord } from "./record.ts";

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
    // croner's messages end in a period or not; ours follow them with a sentence of their own.
    const reason = errorMessage(error).replace(/\.+$/, "");
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

/** How a tick reports the slots a catch-up policy skipped. */
export function skipReason(policy: CatchUpPolicy): "catch-up" | "missed" {
  return policy === "none" ? "missed" : "catch-up";
}
