/**
 * The per-status retention flags `oq retention` and `oq prune` share (`--completed 7d`,
 * `--failed forever`), defined once.
 *
 * @module
 */
import type { FinishedStatus } from "../keys.ts";
import { FINISHED_STATUSES, type RetentionInput } from "../queue/retention.ts";

const flag = (status: FinishedStatus) => ({
  type: "string" as const,
  description: `How long ${status} tasks are kept: a duration (7d, 12h, 90), 0 (nothing), forever`,
  valueHint: "duration",
});

/** The four flags, one per terminal status. */
export const retentionFlags = {
  completed: flag("completed"),
  failed: flag("failed"),
  cancelled: flag("cancelled"),
  expired: flag("expired"),
};

/**
 * The retention the flags give (`default` drops a setting); `undefined` when none was given.
 * Values are checked by the queue, which says what to fix.
 */
export function retentionFromFlags(
  args: Partial<Record<FinishedStatus, string | undefined>>,
): RetentionInput | undefined {
  const given: Record<string, string | null> = {};
  for (const status of FINISHED_STATUSES) {
    const value = args[status];
    if (value === undefined) continue;
    given[status] = value === "default" ? null : value;
  }
  return Object.keys(given).length === 0 ? undefined : (given as RetentionInput);
}
