/**
 * What a task write means for the metrics: which counters it moves and which durations it
 * measures, read from the records before and after (their `event`, status and times, all by the
 * storage server's clock). The task store reports every write it won here, so each transition
 * is counted exactly once, by the process that wrote it, whichever code path made it.
 *
 * @module
 */
import { eventLog } from "../task/event-log.ts";
import type { TaskHistoryEntry, TaskRecord } from "../task/record.ts";
import { isTerminal, ms } from "../task/transitions.ts";
import type { TaskCounterKey } from "./definitions.ts";

/** How an attempt ended, for the run time histogram. */
export type AttemptOutcome = "completed" | "retried" | "failed" | "cancelled";

/** What one task write contributes to the metrics. */
export interface TaskObservation {
  /** Counters to add one to. */
  counters: TaskCounterKey[];
  /** The attempt that ended, when one did: its run time in seconds and how it ended. */
  run?: { seconds: number; outcome: AttemptOutcome };
  /** Seconds a due task waited for its claim, when this write claimed it. */
  waitSeconds?: number;
}

/**
 * The observation of the write that turned `before` into `after` (`before` null for a new task).
 * A write that is no transition (repair re-indexing a task keeps its `event` and its event log)
 * observes nothing: a transition appends its own entry to the event log, at the new `updatedAt`
 * (possibly the same millisecond as the transition before it).
 */
export function observeTaskWrite(before: TaskRecord | null, after: TaskRecord): TaskObservation {
  if (before === null) return { counters: after.event === "submitted" ? ["submitted"] : [] };
  const last = after.history.at(-1);
  if (last === undefined || last.event !== after.event || last.at !== after.updatedAt)
    return { counters: [] };
  if (sameEntry(last, eventLog(before).at(-1))) return { counters: [] };
  // A finished task replaced under its idempotency key after the key's window: a new task.
  if (after.event === "submitted") return { counters: ["submitted"] };
  const seen: TaskObservation = { counters: [] };
  if (after.event === "claimed") {
    seen.counters.push("claimed");
    // A takeover of a lapsed lease waited for that lease, not in the queue.
    if (before.status === "pending")
      seen.waitSeconds = seconds(ms(after.startedAt!) - ms(before.availableAt));
  }
  if (after.event === "retry-scheduled") seen.counters.push("retried");
  if (after.event === "lease-expired") seen.counters.push("leaseExpired");
  if (isTerminal(after.status) && !isTerminal(before.status))
    seen.counters.push(after.status as TaskCounterKey);
  const outcome = attemptOutcome(before, after);
  if (outcome !== undefined && before.startedAt !== null)
    seen.run = { seconds: seconds(ms(after.updatedAt) - ms(before.startedAt)), outcome };
  return seen;
}

/**
 * How the attempt `before` was running ended, when its worker ended it. A monitor's recovery of
 * a lapsed lease (a new `LeaseExpired` error) measures no run: when the attempt stopped is unknown.
 */
function attemptOutcome(before: TaskRecord, after: TaskRecord): AttemptOutcome | undefined {
  if (before.status !== "running" || before.lease === null || after.lease !== null) return;
  // The error this very write recorded carries its time; an earlier takeover's does not.
  const error = after.lastError;
  if (error?.name === "LeaseExpired" && error.at === after.updatedAt) return;
  if (after.event === "retry-scheduled") return "retried";
  if (after.status === "completed" || after.status === "failed" || after.status === "cancelled")
    return after.status;
  return undefined;
}

function sameEntry(a: TaskHistoryEntry, b: TaskHistoryEntry | undefined): boolean {
  return (
    b !== undefined &&
    a.event === b.event &&
    a.at === b.at &&
    a.worker === b.worker &&
    a.attempt === b.attempt &&
    a.error === b.error
  );
}

function seconds(durationMs: number): number {
  return Math.max(0, durationMs) / 1000;
}
