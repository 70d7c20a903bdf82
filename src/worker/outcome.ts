/**
 * What a finished attempt writes and reports: the transition for its result (completed, a
 * retry, failed, or cancelled when a cancel was requested) and the event and counter for it.
 *
 * @module
 */
import type { QueueInternals } from "../queue/internals.ts";
import type { PayloadRef, TaskRecord } from "../task/record.ts";
import { completeTask, type Failure, failAttempt, finishCancelled } from "../task/transitions.ts";
import type { Emit, WorkerEvent, WorkerStats } from "./events.ts";
import { PermanentError } from "./options.ts";

/** A thrown value as the attempt's failure (a {@link PermanentError} skips the retries). */
export function toFailure(error: unknown): Failure {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, permanent: error instanceof PermanentError };
  }
  return { name: "Error", message: String(error) };
}

/**
 * The transition recording an attempt's result with lease `token`: a failure ends the task
 * `cancelled` when a cancel was requested, else counts as a failed attempt; an output completes
 * it (`storeOutput` has checked it: a bad one arrives here as a failure).
 */
export function finishChange(
  q: QueueInternals,
  token: string,
  result: { output?: unknown; outputRef?: PayloadRef; failure?: Failure },
): (t: TaskRecord) => TaskRecord {
  if (result.failure !== undefined) {
    const failure = result.failure;
    return (t) =>
      t.cancel !== null
        ? finishCancelled(t, token, q.now())
        : failAttempt(t, token, failure, q.now(), q.random());
  }
  return (t) => completeTask(t, token, result.output, q.now(), result.outputRef);
}

/**
 * Count and report the outcome `t` (as written) of an attempt that ran `durationMs`; returns the
 * event reported, for the log line.
 */
export function recordOutcome(
  t: TaskRecord,
  durationMs: number,
  stats: WorkerStats,
  emit: Emit,
): WorkerEvent {
  const kind =
    t.status === "completed"
      ? "completed"
      : t.status === "pending"
        ? "retry-scheduled"
        : t.status === "cancelled"
          ? "cancelled"
          : "failed";
  if (kind === "completed") stats.completed++;
  else if (kind === "retry-scheduled") stats.retried++;
  else if (kind === "cancelled") stats.cancelled++;
  else stats.failed++;
  const event: WorkerEvent = {
    kind,
    id: t.id,
    type: t.type,
    attempt: t.attempt,
    durationMs,
    ...(kind === "completed" || t.lastError === null ? {} : { error: t.lastError.message }),
  };
  emit(event);
  return event;
}
