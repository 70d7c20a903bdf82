/**
 * What a worker does with a task its listing found, decided from the record alone: a pure
 * function, so the poller only carries the decision out.
 *
 * @module
 */
import type { TaskRecord } from "../task/record.ts";
import {
  canRetry,
  expireLease,
  expireTask,
  isExpired,
  isLeaseExpired,
  leaseTakeoverAt,
  ms,
  requestCancel,
} from "../task/transitions.ts";
import { UNHANDLED_RECHECK_MS } from "./poller-settings.ts";

/** A monitor's transition of a task, at server time `now` (`random` in [0, 1) for jitter). */
export type MonitorChange = (task: TaskRecord, now: number, random: number) => TaskRecord;

/** The decision of {@link nextStep}. */
export type NextStep =
  /** Claim it (a due pending task, or a takeover of an expired lease). */
  | { kind: "claim" }
  /**
   * Write a monitor's `change`, counted as `as`: the TTL of a pending task ran out (expired), a
   * pending task carries a cancel request (only a record written by hand does: no claim could
   * start it), or a lease ran out that no claim may take (no handler, retries spent, cancel).
   */
  | { kind: "monitor"; change: MonitorChange; as: "expired" | "recovered" }
  /** Not due before `at` (server ms). */
  | { kind: "not-due"; at: number }
  /** Its lease lives until it may be taken over at `at` (server ms): another worker runs it. */
  | { kind: "lease-live"; at: number }
  /** A type this worker does not run: look again at `at`, after saying `warning` (if any) once. */
  | { kind: "unhandled"; at: number; warning?: string }
  /** Nothing for this worker to do (a monitor's work, and it has none). */
  | { kind: "leave" };

/** What {@link nextStep} needs to know besides the task. */
export interface StepContext {
  /** Server time now, ms: the earliest it may be (`ServerClock.now`). */
  now: number;
  /** The latest the server's time may be now, ms (`ServerClock.bounds().upper`). */
  latest: number;
  /** Whether this worker runs the task's type. */
  handled: boolean;
  /** Whether this worker also does a monitor's work (expiry, lease recovery) for any type. */
  monitor: boolean;
  /** The type the task's marker is indexed under. */
  listedAs: string;
}

/** What to do with a pending or running `task` (anything else: `leave`). */
export function nextStep(task: TaskRecord, c: StepContext): NextStep {
  const acts = c.monitor || c.handled;
  const monitor = (change: MonitorChange, as: "expired" | "recovered"): NextStep =>
    acts ? { kind: "monitor", change, as } : { kind: "leave" };
  if (task.status === "running") {
    if (!isLeaseExpired(task, c.now)) return { kind: "lease-live", at: leaseTakeoverAt(task) };
    if (c.handled && task.cancel === null && canRetry(task)) return { kind: "claim" };
    return monitor((t, now, random) => expireLease(t, now, random), "recovered");
  }
  if (task.status !== "pending") return { kind: "leave" };
  if (isExpired(task, c.now)) return monitor((t, now) => expireTask(t, now), "expired");
  if (task.cancel !== null && acts)
    return monitor((t, now) => requestCancel(t, t.cancel?.reason ?? null, now), "recovered");
  if (ms(task.availableAt) > c.now) return { kind: "not-due", at: ms(task.availableAt) };
  // Its TTL may have run out by the server's latest time now: a start could be late, which the
  // TTL promises never to be. Left until it surely has run out, and then expired.
  if (c.handled && task.expiresAt !== null && ms(task.expiresAt) <= c.latest)
    return { kind: "not-due", at: ms(task.expiresAt) };
  if (c.handled) return { kind: "claim" };
  const ttl = task.expiresAt === null ? Number.POSITIVE_INFINITY : ms(task.expiresAt);
  const at = Math.min(ttl, c.now + UNHANDLED_RECHECK_MS);
  if (task.type === c.listedAs) return { kind: "unhandled", at };
  const warning = `task ${task.id} is of type ${task.type} but indexed under ${c.listedAs}: no worker of either type will run it until \`oq repair\` indexes it again`;
  return { kind: "unhandled", at, warning };
}
