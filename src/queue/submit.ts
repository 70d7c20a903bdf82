/**
 * Submitting tasks: options to times, ids from idempotency keys, and the record created.
 *
 * @module
 */
import { parseDate, parseDuration } from "../duration.ts";
import { ValidationError } from "../errors.ts";
import { checkTaskType } from "../keys.ts";
import { checkOptions, submitOptionsSchema } from "../options.ts";
import type { Backoff, TaskRecord } from "../task/record.ts";
import { createTask } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import { iso } from "../util/format.ts";
import { idempotentId, submitIdempotent } from "./idempotency.ts";
import type { QueueInternals } from "./internals.ts";
import type { SubmitOptions, SubmitResult } from "./types.ts";

/**
 * Submit a task. Returns the stored record (for an idempotency key seen before: the first
 * task, unchanged).
 */
export async function submitTask(
  q: QueueInternals,
  type: string,
  input: unknown,
  given: SubmitOptions,
): Promise<TaskRecord> {
  return (await submitTaskResult(q, type, input, given)).task;
}

/**
 * Submit a task and say whether this call created it or found the one its idempotency key
 * names (`src/queue/idempotency.ts`).
 */
export async function submitTaskResult(
  q: QueueInternals,
  type: string,
  input: unknown,
  given: SubmitOptions,
): Promise<SubmitResult> {
  checkTaskType(type);
  const options = checkOptions(submitOptionsSchema, given, "submit options");
  const inputValue = q.checkInput(type, input);
  const now = q.now();
  const availableAt = availableAtOf(options, now);
  const expiresAt = expiresAtOf(options, now, availableAt);
  const idempotencyKey = options.idempotencyKey ?? null;
  const windowMs = windowMsOf(options);
  const id = idempotencyKey === null ? q.randomHex(32) : await idempotentId(idempotencyKey);
  const backoff: Backoff = { ...q.defaults.backoff, ...options.backoff };
  const build = async () => {
    await q.manifest.load();
    return createTask(
      {
        id,
        type,
        input: inputValue,
        maxRetries: options.maxRetries ?? q.defaults.maxRetries,
        backoff,
        timeoutSeconds: options.timeoutSeconds ?? q.defaults.timeoutSeconds,
        availableAt,
        expiresAt,
        idempotencyKey,
        marker: q.newMarker(
          { type, id, status: "pending", expiresAt: expiresAt === null ? null : iso(expiresAt) },
          availableAt,
        ),
      },
      now,
    );
  };
  if (idempotencyKey === null) return { task: await q.tasks.create(await build()), created: true };
  return submitIdempotent(q, { key: idempotencyKey, windowMs, type, input: inputValue }, build);
}

/** Submit several tasks (bounded parallelism), all validated before anything is written. */
export async function submitTasks(
  q: QueueInternals,
  tasks: readonly { type: string; input?: unknown; options?: SubmitOptions }[],
  concurrency: number,
): Promise<TaskRecord[]> {
  for (const [i, t] of tasks.entries()) {
    try {
      checkTaskType(t.type);
      q.checkInput(t.type, t.input);
      checkOptions(submitOptionsSchema, t.options, "submit options");
    } catch (error) {
      if (error instanceof ValidationError)
        throw new ValidationError(`Task #${i}: ${error.message}`);
      throw error;
    }
  }
  return mapLimit(tasks, concurrency, (t) => submitTask(q, t.type, t.input, t.options ?? {}));
}

function windowMsOf(options: SubmitOptions): number | undefined {
  if (options.idempotencyWindow === undefined) return undefined;
  if (options.idempotencyKey === undefined)
    throw new ValidationError(
      "idempotencyWindow needs an idempotencyKey: give the key the window applies to.",
    );
  return parseDuration(options.idempotencyWindow, "idempotencyWindow");
}

function availableAtOf(options: SubmitOptions, now: number): number {
  if (options.scheduleAt !== undefined && options.delay !== undefined) {
    throw new ValidationError("Give either scheduleAt or delay, not both.");
  }
  if (options.scheduleAt !== undefined) return parseDate(options.scheduleAt, "scheduleAt");
  if (options.delay !== undefined) return now + parseDuration(options.delay, "delay");
  return now;
}

function expiresAtOf(options: SubmitOptions, now: number, availableAt: number): number | null {
  if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) {
    throw new ValidationError("Give either ttlSeconds or expiresAt, not both.");
  }
  if (options.ttlSeconds !== undefined) {
    return Math.max(now, availableAt) + options.ttlSeconds * 1000;
  }
  if (options.expiresAt !== undefined) return parseDate(options.expiresAt, "expiresAt");
  return null;
}
