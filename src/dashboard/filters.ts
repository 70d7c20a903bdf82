/**
 * The task list's filters, read from the query string and checked before anything is listed: a
 * bad value becomes a 400 page that says what to fix ({@link FilterError}).
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { checkTaskType } from "../keys.ts";
import { DEFAULT_COMPLETED_SINCE, listingSince, timeAgoOrDate } from "../queue/since.ts";
import type { ListTasksOptions } from "../queue/types.ts";
import type { TaskStatus } from "../task/record.ts";
import { TERMINAL_STATUSES } from "../task/transitions.ts";

/** Every status a task can have, in the filter's order. */
export const STATUSES: readonly TaskStatus[] = ["pending", "running", ...TERMINAL_STATUSES];

/** How far back the list looks for completed tasks when no `since` is given, as `oq list` does. */
export const DEFAULT_SINCE = DEFAULT_COMPLETED_SINCE;

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

/** The value `read` returns, its `ValidationError` as a {@link FilterError} of `name`. */
function field<T>(name: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    throw new FilterError(name, error.message);
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
  if (f.type !== "") options.type = field("type", () => checkTaskType(f.type));
  const statuses = options.status === undefined ? undefined : [options.status as TaskStatus];
  const since = field("since", () =>
    listingSince(f.since === "" ? undefined : f.since, statuses, "since", now),
  );
  if (since !== undefined) options.since = since;
  if (f.until !== "") options.until = field("until", () => timeAgoOrDate(f.until, "until", now));
  if (options.since !== undefined && options.until !== undefined && options.since > options.until)
    throw new FilterError("since", "since is after until: swap them, or clear one.");
  if (f.cursor !== "") options.cursor = f.cursor;
  return options;
}
