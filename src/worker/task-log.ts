/**
 * The log entries of a task's life in a worker: one line per start and outcome, with the
 * fields a log pipeline filters on ({@link LogFields}: task id, type, attempt, duration, worker).
 * The message says the same for people, so a logger that drops fields loses nothing essential.
 *
 * @module
 */
import { formatDuration } from "../duration.ts";
import type { LogFields, Logger } from "../logger.ts";
import type { WorkerEvent } from "./events.ts";

/** The fields of an entry about task `task` in worker `worker`, plus `extra`. */
export function taskFields(
  task: { id: string; type?: string | undefined; attempt?: number | undefined },
  worker: string,
  extra: LogFields = {},
): LogFields {
  const fields: LogFields = { taskId: task.id };
  if (task.type !== undefined) fields.type = task.type;
  if (task.attempt !== undefined) fields.attempt = task.attempt;
  return { ...fields, worker, ...extra };
}

/**
 * Log a task's start or outcome (`started`, `completed`, `retry-scheduled`, `failed`,
 * `cancelled`, `released` by a stopping worker) as `worker` reported it. `error` is the failure
 * the outcome recorded (`{name, message}`), when it has one. Other kinds are logged where they
 * happen, with what only that place knows.
 */
export function logTaskEvent(
  logger: Logger,
  worker: string,
  event: WorkerEvent,
  error?: { name: string; message: string } | null,
): void {
  const fields: LogFields = { taskId: event.id };
  if (event.type !== undefined) fields.type = event.type;
  if (event.attempt !== undefined) fields.attempt = event.attempt;
  if (event.durationMs !== undefined) fields.durationMs = event.durationMs;
  fields.worker = worker;
  fields.event = event.kind;
  // A completed task keeps the error of an earlier attempt: it is not this outcome's.
  if (error !== undefined && error !== null && event.kind !== "completed") fields.error = error;
  const reason = event.error ?? error?.message ?? "";
  const line = lineOf(event, `${event.type ?? "task"} ${event.id}`, reason);
  if (line !== undefined) logger[line.level](line.message, fields);
}

/** The level and message of a task event's log line, or none for kinds logged elsewhere. */
function lineOf(
  event: WorkerEvent,
  what: string,
  reason: string,
): { level: "info" | "warn" | "error"; message: string } | undefined {
  const took = event.durationMs === undefined ? "" : ` in ${formatDuration(event.durationMs)}`;
  switch (event.kind) {
    case "started":
      return { level: "info", message: `${what} started (attempt ${event.attempt})` };
    case "completed":
      return { level: "info", message: `${what} completed${took}` };
    case "retry-scheduled":
      return {
        level: "warn",
        message: `${what} attempt ${event.attempt} failed${took}, will retry: ${reason}`,
      };
    case "failed":
      return {
        level: "error",
        message: `${what} failed${took} after attempt ${event.attempt}: ${reason}`,
      };
    case "cancelled":
      return { level: "warn", message: `${what} cancelled${took}` };
    case "released":
      return { level: "info", message: `${what} handed back unfinished (pending again)` };
    default:
      return undefined;
  }
}

/**
 * True for an entry about a handler's attempt that failed or was cancelled (`retry-scheduled`,
 * `failed`, `cancelled`): the application's outcome, not trouble of the worker or the storage.
 * Tools that count a worker's warnings (the simulator, the soak and chaos runs) leave them out.
 */
export function isTaskOutcome(fields: LogFields | undefined): boolean {
  const event = fields?.event;
  return event === "retry-scheduled" || event === "failed" || event === "cancelled";
}
