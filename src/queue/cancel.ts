/**
 * Cancelling tasks: one, many (each outcome reported), or every live task of a type.
 *
 * @module
 */
import { InvalidStateError, NotFoundError, ValidationError } from "../errors.ts";
import { checkTaskId, checkTaskType } from "../keys.ts";
import { bulkCancelOptionsSchema, cancelOptionsSchema, checkOptions } from "../options.ts";
import type { TaskRecord } from "../task/record.ts";
import { requestCancel } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import { kindOf } from "../util/schema.ts";
import type { QueueInternals } from "./internals.ts";
import type { CancelOutcome } from "./types.ts";

/** Options of the bulk cancels. */
export interface BulkCancelOptions {
  /** Stored with each task's cancel request: a string of at most 1,000 characters. */
  reason?: string;
  /** Called after each task with the count done so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Options of `Queue.cancel`. */
export interface CancelOptions {
  /** Stored with the cancel request: a string of at most 1,000 characters. */
  reason?: string;
}

/** Cancel a task (see `Queue.cancel`); a task cancelled at once is in the journal on return. */
export async function cancelTask(
  q: QueueInternals,
  id: string,
  given: CancelOptions,
): Promise<TaskRecord> {
  const options = checkOptions(cancelOptionsSchema, given, "cancel options");
  const task = await requestCancellation(q, id, options.reason ?? null);
  await q.journal.flush();
  return task;
}

/** Cancel a task, leaving its journal entry buffered (a bulk cancel writes them together). */
async function requestCancellation(
  q: QueueInternals,
  id: string,
  reason: string | null,
): Promise<TaskRecord> {
  const done = await q.update(id, (task) => {
    const next = requestCancel(task, reason, q.now());
    return next === task ? undefined : next;
  });
  return done.task;
}

/** Cancel several tasks; reports for each id what happened and why. */
export async function cancelTasks(
  q: QueueInternals,
  ids: readonly string[],
  given: BulkCancelOptions,
): Promise<CancelOutcome[]> {
  // A string is iterable: cancelMany("abc") cancelled the ids "a", "b" and "c".
  if (!Array.isArray(ids))
    throw new ValidationError(`cancelMany takes an array of task ids (was ${kindOf(ids)}).`);
  return cancelAll(q, ids, checkBulkOptions(given));
}

function checkBulkOptions(given: BulkCancelOptions): BulkCancelOptions {
  const options = checkOptions(bulkCancelOptionsSchema, given, "cancel options");
  return { ...options, ...(given.onProgress ? { onProgress: given.onProgress } : {}) };
}

async function cancelAll(
  q: QueueInternals,
  ids: readonly string[],
  options: BulkCancelOptions,
): Promise<CancelOutcome[]> {
  let done = 0;
  try {
    return await mapLimit(ids, 8, async (id): Promise<CancelOutcome> => {
      const outcome = await cancelOne(q, id, options.reason);
      options.onProgress?.(++done, ids.length);
      return outcome;
    });
  } finally {
    await q.journal.flush();
  }
}

async function cancelOne(
  q: QueueInternals,
  id: string,
  reason: string | undefined,
): Promise<CancelOutcome> {
  try {
    checkTaskId(id);
  } catch {
    return { id, ok: false, result: "invalid-id" };
  }
  try {
    const task = await requestCancellation(q, id, reason ?? null);
    return {
      id,
      ok: true,
      result: task.status === "cancelled" ? "cancelled" : "cancel-requested",
      task,
    };
  } catch (error) {
    if (error instanceof NotFoundError) return { id, ok: false, result: "not-found" };
    // A corrupt object is reported and skipped, as list() does: one bad object must not stop
    // a bulk cancel halfway with the remaining tasks untouched and nothing reported.
    if (error instanceof ValidationError) {
      q.logger.warn(`skipping task ${id}: ${error.message}`);
      return { id, ok: false, result: "malformed", message: error.message };
    }
    if (error instanceof InvalidStateError) {
      const task = (await q.read(id))?.task;
      return {
        id,
        ok: false,
        result: `already-${task?.status ?? "gone"}`,
        ...(task ? { task } : {}),
      };
    }
    throw error;
  }
}

/**
 * Cancel every pending or running task of a type. Finds them through the ready index (only
 * non-terminal tasks have markers, and markers name their type), so it reads no finished task.
 */
export async function cancelTasksOfType(
  q: QueueInternals,
  type: string,
  given: BulkCancelOptions,
): Promise<CancelOutcome[]> {
  checkTaskType(type);
  const options = checkBulkOptions(given);
  const ids = new Set<string>();
  // The type's own partitions: no marker of another type is even listed.
  for await (const marker of q.markers({ prefix: q.keys.readyType(type) })) {
    if (marker.type === type) ids.add(marker.id);
  }
  const outcomes = await cancelAll(q, [...ids], options);
  // A marker can outlive its task's last transition; only report tasks that were live.
  return outcomes.filter(
    (o) => o.result !== "not-found" && !(o.result.startsWith("already-") && o.task?.type !== type),
  );
}
