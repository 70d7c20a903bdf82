/**
 * The time bounds of a task listing as people give them (`oq list --since`, the dashboard's
 * filters): a duration ago or a date, and the default bound on completed tasks, so both read them
 * the same way.
 *
 * @module
 */
import { parseDate, parseDuration } from "../duration.ts";
import { ValidationError } from "../errors.ts";
import type { TaskStatus } from "../task/record.ts";

/** How far back a listing that includes completed tasks looks unless told otherwise. */
export const DEFAULT_COMPLETED_SINCE = "24h";

/**
 * A time given as a duration ago (`24h`, `7d`) or an ISO 8601 date-time with a timezone, in
 * epoch ms at server time `now`. Throws `ValidationError` naming `what` and the accepted forms
 * (and `"all"` when `all` says it is accepted too).
 */
export function timeAgoOrDate(value: string, what: string, now: number, all = false): number {
  try {
    return now - parseDuration(value, what);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
  }
  try {
    return parseDate(value, what);
  } catch {
    throw new ValidationError(
      `Invalid ${what} "${value}": give a duration ago (24h, 7d), an ISO 8601 date-time with a timezone${all ? ', or "all"' : ""}.`,
    );
  }
}

/**
 * The `since` of a listing at server time `now`: `value` as {@link timeAgoOrDate} reads it, or
 * `"all"` for no bound; without a value, the last {@link DEFAULT_COMPLETED_SINCE} when the
 * statuses include completed (all statuses when `undefined`), else no bound. Throws
 * `ValidationError`.
 */
export function listingSince(
  value: string | undefined,
  statuses: readonly TaskStatus[] | undefined,
  what: string,
  now: number,
): number | undefined {
  const includesCompleted = statuses === undefined || statuses.includes("completed");
  const given = value ?? (includesCompleted ? DEFAULT_COMPLETED_SINCE : undefined);
  if (given === undefined || given === "all") return undefined;
  return timeAgoOrDate(given, what, now, true);
}
