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
import { iso, toHex } from "../util/format.ts";
import type { QueueInternals } from "./internals.ts";
import type { SubmitOptions } from "./types.ts";

const encoder = new TextEncoder();

async function sha256Hex(text: string): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text))));
}

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
  checkTaskType(type);
  const options = checkOptions(submitOptionsSchema, given, "submit options");
  const inputValue = q.checkInput(type, input);
  const now = q.now();
  const availableAt = availableAtOf(options, now);
  const expiresAt = expiresAtOf(options, now, availableAt);
  const idempotencyKey = options.idempotencyKey ?? null;
  const id =
    idempotencyKey === null
      ? q.randomHex(32)
      : (await sha256Hex(`oq-idempotency:${idempotencyKey}`)).slice(0, 32);
  if (idempotencyKey !== null) {
    const existing = await q.read(id);
    if (existing !== undefined) return existing.task;
  }
  await q.manifest.load();
  const backoff: Backoff = { ...q.defaults.backoff, ...options.backoff };
  const task = createTask(
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
  return q.tasks.create(task);
}

/** Submit options once checked: the durations as numbers of seconds. */
type CheckedSubmitOptions = typeof submitOptionsSchema.infer;

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

function availableAtOf(options: CheckedSubmitOptions, now: number): number {
  if (options.scheduleAt !== undefined && options.delay !== undefined) {
    throw new ValidationError("Give either scheduleAt or delay, not both.");
  }
  if (options.scheduleAt !== undefined) return parseDate(options.scheduleAt, "scheduleAt");
  if (options.delay !== undefined) return now + parseDuration(options.delay, "delay");
  return now;
}

function expiresAtOf(
  options: CheckedSubmitOptions,
  now: number,
  availableAt: number,
): number | null {
  if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) {
    throw new ValidationError("Give either ttlSeconds or expiresAt, not both.");
  }
  if (options.ttlSeconds !== undefined) {
    return Math.max(now, availableAt) + options.ttlSeconds * 1000;
  }
  if (options.expiresAt !== undefined) return parseDate(options.expiresAt, "expiresAt");
  return null;
}
