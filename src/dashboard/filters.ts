/**
 * The task list's filters, read from the query string and checked before anything is listed: a
 * bad value becomes a 400 page that says what to fix ({@link FilterError}).
 *
 * @module
 */
import { parseDate, parseDuration } from "../duration.ts";
import { ValidationError } from "../errors.ts";
import { checkTaskType } from "../keys.ts";
import type { ListTasksOptions } from "../queue/types.ts";
import type { TaskStatus } from "../task/record.ts";
import { TERMINAL_STATUSES } from "../task/transitions.ts";

/** Every status a task can have, in the filter's order. */
export const STATUSES: readonly TaskStatus[] = ["pending", "running", ...TERMINAL_STATUSES];

/** How far back the list looks for completed tasks when no `since` is given, as `oq list` does. */
export const DEFAULT_SINCE = "24h";

/** A filter value that cannot be used; `field` names the query parameter. */
export class FilterError extends ValidationError {
  /** The query parameter at fault. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** The filters as given in the query (empty strings for none). */
export interface Filters {
  status: string;
  type: string;
  since: string;
  until: string;
  cursor: string;
}

/** The filters of `url`'s query. */
export function readFilters(url: URL): Filters {
  const get = (name: string) => (url.searchParams.get(name) ?? "").trim();
  return {
    status: get("status"),
    type: get("type"),
    since: get("since"),
    until: get("until"),
    cursor: get("cursor"),
  };
}

/** A time filter: a duration ago (`24h`, `7d`) or an ISO 8601 date-time with a timezone. */
function timeOf(field: string, value: string, now: number): number {
  try {
    return now - parseDuration(value, field);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
  }
  try {
    return parseDate(value, field);
  } catch {
    throw new FilterError(
      field,
      `Invalid ${field} "${value}": give a duration ago (24h, 7d), an ISO 8601 date-time with a timezone (2026-11-30T12:00:00Z)${field === "since" ? ', or "all"' : ""}.`,
    );
  }
}

/**
 * The `queue.list()` options of the filters at server time `now`. Without `since`, finished
 * tasks of the last {@link DEFAULT_SINCE} are listed when completed ones are; `since=all` lists
 * them all. Throws {@link FilterError}.
 */
export function listOptions(f: Filters, now: number, limit: number): ListTasksOptions {
  const options: ListTasksOptions = { limit };
  if (f.status !== "") {
    if (!(STATUSES as readonly string[]).includes(f.status))
      throw new FilterError(
        "status",
        `Invalid status "${f.status}": use one of ${STATUSES.join(", ")}, or leave it empty for all.`,
      );
    options.status = f.status as TaskStatus;
  }
  if (f.type !== "") {
    try {
      options.type = checkTaskType(f.type);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      throw new FilterError("type", error.message);
    }
  }
  const since =
    f.since === "" && (f.status === "" || f.status === "completed") ? DEFAULT_SINCE : f.since;
  if (since !== "" && since !== "all") options.since = timeOf("since", since, now);
  if (f.until !== "") options.until = timeOf("until", f.until, now);
  if (options.since !== undefined && options.until !== undefined && options.since > options.until)
    throw new FilterError("since", "since is after until: swap them, or clear one.");
  if (f.cursor !== "") options.cursor = f.cursor;
  return options;
}
