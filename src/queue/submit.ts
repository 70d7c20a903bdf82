/**
 * Submitting tasks: options to times, ids from idempotency keys, and the record created.
 *
 * @module
 */
import type { InferOutput } from "valibot";
import { parseDate, parseDuration } from "../duration.ts";
import { ValidationError } from "../errors.ts";
import { checkTaskType } from "../keys.ts";
import { checkOptions, submitManyOptionsSchema, submitOptionsSchema } from "../options.ts";
import {
  type AnyTaskDefinition,
  checkStoredInput,
  isTaskDefinition,
  validateSubmitted,
  withDefaults,
} from "../task/definition.ts";
import type { Backoff, TaskRecord } from "../task/record.ts";
import { createTask } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import { iso } from "../util/format.ts";
import { kindOf } from "../util/schema.ts";
import { inDateRange } from "../util/stored-values.ts";
import { idempotentId, submitIdempotent } from "./idempotency.ts";
import type { QueueInternals } from "./internals.ts";
import type { SubmitOptions, SubmitResult } from "./types.ts";

/** One task of `submitMany`: its type (or definition), input and options. */
export interface SubmitEntry {
  type: string | AnyTaskDefinition;
  input?: unknown;
  options?: SubmitOptions;
}

/**
 * Submit a task. Returns the stored record (for an idempotency key seen before: the first
 * task, unchanged).
 */
export async function submitTask(
  q: QueueInternals,
  typeOrDefinition: string | AnyTaskDefinition,
  input: unknown,
  given: SubmitOptions,
): Promise<TaskRecord> {
  return (await submitTaskResult(q, typeOrDefinition, input, given)).task;
}

/**
 * Submit a task and say whether this call created it or found the one its idempotency key
 * names (`src/queue/idempotency.ts`).
 */
export async function submitTaskResult(
  q: QueueInternals,
  typeOrDefinition: string | AnyTaskDefinition,
  input: unknown,
  given: SubmitOptions,
): Promise<SubmitResult> {
  const definition = isTaskDefinition(typeOrDefinition) ? typeOrDefinition : undefined;
  const type = definition?.type ?? (typeOrDefinition as string);
  checkTaskType(type);
  const options = checkOptions(
    submitOptionsSchema,
    definition === undefined ? given : withDefaults(definition, given),
    "submit options",
  );
  const encoded = await storedInput(q, type, definition, input);
  const now = q.now();
  const availableAt = availableAtOf(options, now);
  const expiresAt = expiresAtOf(options, now, availableAt);
  const idempotencyKey = options.idempotencyKey ?? null;
  const windowMs = windowMsOf(options);
  const id = idempotencyKey === null ? q.randomHex(32) : await idempotentId(idempotencyKey);
  const build = () =>
    newTask(q, { id, type, encoded, options, availableAt, expiresAt, idempotencyKey, now });
  const result =
    idempotencyKey === null
      ? { task: await q.tasks.create(await build()), created: true }
      : await submitIdempotent(
          q,
          { key: idempotencyKey, windowMs, type, input: encoded.value, bytes: encoded.bytes },
          build,
        );
  if (result.created) wakeLocal(q, result.task, now);
  return result;
}

/** Wake an idle worker on this queue object for a task due now (`./local-wake.ts`). */
function wakeLocal(q: QueueInternals, task: TaskRecord, now: number): void {
  const key = task.marker === null ? undefined : q.keys.full(task.marker);
  const marker = key === undefined ? undefined : q.keys.parseReadyMarker(key);
  if (key === undefined || marker === undefined || Date.parse(task.availableAt) > now) return;
  q.wake.submitted(q.keys.partition(marker.type, marker.part), key);
}

/** Submit options once checked: the durations as numbers of seconds. */
type CheckedSubmitOptions = InferOutput<typeof submitOptionsSchema>;

/** What {@link newTask} builds a pending record from: the submit, decided. */
interface NewTask {
  id: string;
  type: string;
  encoded: { value: unknown; bytes: Uint8Array };
  options: CheckedSubmitOptions;
  availableAt: number;
  expiresAt: number | null;
  idempotencyKey: string | null;
  now: number;
}

/**
 * A new pending record (with a fresh marker), its large input stored first: a task never names
 * a missing payload (docs/protocol.md, "Large inputs and outputs").
 */
async function newTask(q: QueueInternals, t: NewTask): Promise<TaskRecord> {
  const { id, type, encoded, options, availableAt, expiresAt } = t;
  await q.manifest.load();
  const inputRef = q.payloads.storedApart(encoded.bytes.length)
    ? await q.payloads.put(id, "input", encoded.bytes)
    : undefined;
  const backoff: Backoff = { ...q.defaults.backoff, ...options.backoff };
  const priority = options.priority ?? q.defaults.priority;
  const expires = expiresAt === null ? null : iso(expiresAt);
  return createTask(
    {
      id,
      type,
      input: inputRef === undefined ? encoded.value : null,
      ...(inputRef === undefined ? {} : { inputRef }),
      maxRetries: options.maxRetries ?? q.defaults.maxRetries,
      backoff,
      timeoutSeconds: options.timeoutSeconds ?? q.defaults.timeoutSeconds,
      availableAt,
      expiresAt,
      idempotencyKey: t.idempotencyKey,
      priority,
      marker: q.newMarker(
        { type, id, status: "pending", expiresAt: expires, priority },
        availableAt,
      ),
    },
    t.now,
  );
}

/**
 * Tasks `submitMany` writes at once by default: each writes its marker, then its record, so this
 * many requests are in flight; 32 is where one process reaches the storage's own rate of
 * conditional PUTs on MinIO (docs/benchmarks.md, "Submitting"), at 16 it waited on round trips.
 */
export const SUBMIT_CONCURRENCY = 32;

/** The keys of a `submitMany` entry. */
const ENTRY_KEYS: readonly string[] = ["type", "input", "options"];

/** Submit several tasks (bounded parallelism), all validated before anything is written. */
export async function submitTasks(
  q: QueueInternals,
  tasks: readonly SubmitEntry[],
  options: { concurrency?: number } = {},
): Promise<TaskRecord[]> {
  const checked = checkOptions(submitManyOptionsSchema, options, "submitMany options");
  if (!Array.isArray(tasks))
    throw new ValidationError(
      `submitMany takes an array of { type, input?, options? } (was ${kindOf(tasks)}).`,
    );
  for (const [i, t] of tasks.entries()) {
    if (typeof t !== "object" || t === null || Array.isArray(t))
      throw new ValidationError(
        `Task #${i}: expected { type, input?, options? } (was ${kindOf(t)}).`,
      );
    // A misspelt key (`inputs`) would otherwise submit the task without what it names.
    const unknown = Object.keys(t).filter((k) => !ENTRY_KEYS.includes(k));
    if (unknown.length > 0)
      throw new ValidationError(
        `Task #${i}: unknown key ${unknown.map((k) => JSON.stringify(k)).join(", ")}: an entry has type, input and options.`,
      );
    try {
      const definition = isTaskDefinition(t.type) ? t.type : undefined;
      const type = definition?.type ?? (t.type as string);
      checkTaskType(type);
      await storedInput(q, type, definition, t.input);
      const given = definition === undefined ? t.options : withDefaults(definition, t.options);
      checkOptions(submitOptionsSchema, given, "submit options");
    } catch (error) {
      if (error instanceof ValidationError)
        throw new ValidationError(`Task #${i}: ${error.message}`);
      throw error;
    }
  }
  return mapLimit(tasks, checked.concurrency ?? SUBMIT_CONCURRENCY, (t) =>
    submitTask(q, t.type, t.input, t.options ?? {}),
  );
}

/**
 * The input as it will be stored, and its JSON bytes: validated by the definition's schema when
 * there is one (its result, with defaults and transforms), then checked for JSON and size
 * (`ValidationError`).
 */
async function storedInput(
  q: QueueInternals,
  type: string,
  definition: AnyTaskDefinition | undefined,
  input: unknown,
): Promise<{ value: unknown; bytes: Uint8Array }> {
  if (definition === undefined) return q.encodeInput(type, input);
  const stored = q.encodeInput(type, await validateSubmitted(definition, input));
  await checkStoredInput(definition, stored.value);
  return stored;
}

function windowMsOf(options: SubmitOptions): number | undefined {
  if (options.idempotencyWindow === undefined) return undefined;
  if (options.idempotencyKey === undefined)
    throw new ValidationError(
      "idempotencyWindow needs an idempotencyKey: give the key the window applies to.",
    );
  return parseDuration(options.idempotencyWindow, "idempotencyWindow");
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
    const expiresAt = Math.max(now, availableAt) + options.ttlSeconds * 1000;
    // A late scheduleAt plus a long TTL can pass the year 9999, which no record may hold.
    if (!inDateRange(expiresAt))
      throw new ValidationError(
        `Invalid ttlSeconds ${options.ttlSeconds}: the task would expire after the year 9999 (scheduled for ${iso(availableAt)}); give a shorter TTL or an expiresAt.`,
      );
    return expiresAt;
  }
  if (options.expiresAt !== undefined) return parseDate(options.expiresAt, "expiresAt");
  return null;
}
