/**
 * The stored task record: its schema, its types, and how it is parsed from and encoded to a
 * storage body. The schema decides what a valid record is; the compiler proves each exported type
 * identical to what its schema infers (see `Same` below), so the two cannot drift apart. The
 * state machine over these records is in `./transitions.ts`.
 *
 * @module
 */
import * as v from "valibot";
import { MalformedObjectError } from "../errors.ts";
import { type Declared, validate } from "../util/schema.ts";
import {
  count,
  finiteNumber,
  jsonValue,
  positiveSeconds,
  priority,
  seconds,
  storedDate,
} from "../util/stored-values.ts";

// Objects are loose: keys this version does not know (written by a newer one) are kept, so a
// record read and written back by this version keeps them. Numbers, durations and dates are
// held to what submit accepts (../util/stored-values.ts): a record oq could not have written is
// reported as malformed instead of failing the write after its next attempt.

const statusSchema = v.picklist([
  "pending",
  "running",
  "completed",
  "failed",
  "cancelled",
  "expired",
]);

const eventSchema = v.picklist([
  "submitted",
  "claimed",
  "lease-renewed",
  "completed",
  "retry-scheduled",
  "failed",
  "cancel-requested",
  "cancelled",
  "expired",
  "lease-expired",
  "released",
  "replayed",
]);

const backoffSchema = v.looseObject({
  initialSeconds: seconds,
  maxSeconds: seconds,
  factor: v.pipe(finiteNumber, v.minValue(1)),
});

const leaseSchema = v.looseObject({
  token: v.string(),
  workerId: v.string(),
  expiresAt: storedDate,
});

const taskErrorSchema = v.looseObject({
  message: v.string(),
  name: v.string(),
  attempt: finiteNumber,
  at: v.string(),
  permanent: v.boolean(),
});

const cancelSchema = v.looseObject({
  requestedAt: v.string(),
  reason: v.nullable(v.string()),
});

const historyEntrySchema = v.looseObject({
  event: eventSchema,
  at: storedDate,
  worker: v.nullable(v.string()),
  attempt: count,
  error: v.nullable(v.string()),
});

const payloadRefSchema = v.looseObject({
  key: v.string(),
  bytes: count,
  sha256: v.string(),
});

const taskSchema = v.looseObject({
  oq: v.literal(1),
  id: v.string(),
  type: v.string(),
  status: statusSchema,
  input: jsonValue,
  output: jsonValue,
  // Only on a task whose input or output is stored as its own object (docs/protocol.md,
  // "Large inputs and outputs"); absent otherwise, so small tasks and older records are unchanged.
  inputRef: v.exactOptional(payloadRefSchema),
  outputRef: v.exactOptional(payloadRefSchema),
  attempt: count,
  maxRetries: count,
  backoff: backoffSchema,
  timeoutSeconds: v.nullable(positiveSeconds),
  // Absent in records written before priorities, and in those of priority 0: both read as 0.
  priority: v.exactOptional(priority),
  createdAt: storedDate,
  updatedAt: storedDate,
  availableAt: storedDate,
  expiresAt: v.nullable(storedDate),
  startedAt: v.nullable(storedDate),
  finishedAt: v.nullable(storedDate),
  lease: v.nullable(leaseSchema),
  lastError: v.nullable(taskErrorSchema),
  cancel: v.nullable(cancelSchema),
  idempotencyKey: v.nullable(v.string()),
  event: eventSchema,
  marker: v.nullable(v.string()),
  // Absent on unversioned storage, in records written before it existed, and once terminal.
  markerVersion: v.exactOptional(v.string()),
  // Records written before the log existed have no `history`; they read as an empty log, and
  // their next transition starts it.
  history: v.optional(v.array(historyEntrySchema), () => []),
  // Records written before progress existed have none.
  progress: v.optional(jsonValue, null),
});

/** Every state a task can be in. */
export type TaskStatus = "pending" | "running" | "completed" | "failed" | "cancelled" | "expired";

/** The transition that produced a version of a task; history reads as a list of these. */
export type TaskEvent =
  | "submitted"
  | "claimed"
  | "lease-renewed"
  | "completed"
  | "retry-scheduled"
  | "failed"
  | "cancel-requested"
  | "cancelled"
  | "expired"
  | "lease-expired"
  | "released"
  | "replayed";

/** Exponential backoff with jitter between attempts. */
export interface Backoff {
  /** Delay before the first retry, in seconds. */
  initialSeconds: number;
  /** Upper bound of any delay, in seconds. */
  maxSeconds: number;
  /** Growth per attempt (2 doubles the delay each time). */
  factor: number;
}

/** A running task's claim. */
export interface Lease {
  /** Random token written by the claim; a worker acts on the task only while it is current. */
  token: string;
  /** The worker holding the lease. */
  workerId: string;
  /** When the lease runs out, in server time (ISO 8601). */
  expiresAt: string;
}

/** The last error a task's handler raised (or the reason the runtime gave up on an attempt). */
export interface TaskError {
  /** The error message, cut to `MAX_TASK_ERROR_CHARS` (16,384) characters. */
  message: string;
  /** The error's class name (`TypeError`, `LeaseExpired`, `Timeout`). */
  name: string;
  /** The attempt that failed. */
  attempt: number;
  /** When it failed (ISO 8601). */
  at: string;
  /** True when the error was permanent and retries were skipped. */
  permanent: boolean;
}

/** A cancellation request, kept on the record so a running handler can see it. */
export interface CancelRequest {
  /** When it was requested (ISO 8601). */
  requestedAt: string;
  /** Why, as given by the caller. */
  reason: string | null;
}

/**
 * One transition in a task's own event log ({@link TaskRecord.history}), kept inside the record
 * so that `queue.getHistory()` needs one GET and no bucket versioning.
 */
export interface TaskHistoryEntry {
  /** The transition. */
  event: TaskEvent;
  /** When it happened: the record's `updatedAt` after it (ISO 8601). */
  at: string;
  /**
   * The worker involved: the lease holder, or for the end of an attempt (outcome, release,
   * expired lease) the worker that ran it; null when no worker was involved.
   */
  worker: string | null;
  /** The task's attempt count after the transition. */
  attempt: number;
  /**
   * The error this transition recorded (`Name: message`, cut to `TASK_HISTORY_ERROR_CHARS`
   * characters), or null when it recorded none. The full last error is in `lastError`.
   */
  error: string | null;
}

/**
 * Where a task's input or output is stored when it is too large to keep in the record: an
 * immutable object of its own (docs/protocol.md, "Large inputs and outputs").
 */
export interface PayloadRef {
  /** The object's key, relative to the queue prefix (`payloads/{shard}/{id}/…`). */
  key: string;
  /** Size of the stored JSON text, in bytes. */
  bytes: number;
  /** SHA-256 of the stored bytes, lower-case hex; checked on every read. */
  sha256: string;
}

/** The stored task. Times are ISO 8601 strings so the object reads well in `aws s3 cp`. */
export interface TaskRecord {
  /** Record format version. */
  oq: 1;
  /** Task id. */
  id: string;
  /** Task type: selects the handler. */
  type: string;
  /** Current state. */
  status: TaskStatus;
  /** The handler's input (any JSON value). */
  input: unknown;
  /** The handler's result once completed, else null. */
  output: unknown;
  /**
   * Set when the input is stored as its own object (it was larger than the queue's
   * `payloadThresholdBytes`); `input` is then null in the stored record. `queue.get()` and the
   * worker read it from there.
   */
  inputRef?: PayloadRef;
  /** Set when the output is stored as its own object; `output` is then null in the record. */
  outputRef?: PayloadRef;
  /** How many times the task has been started. */
  attempt: number;
  /** Retries allowed after the first run. */
  maxRetries: number;
  /** Delay policy between attempts. */
  backoff: Backoff;
  /** Per-attempt time limit in seconds, or null for the worker's default. */
  timeoutSeconds: number | null;
  /**
   * Higher runs first among due tasks (`PRIORITY_MIN` to `PRIORITY_MAX`); absent means 0. Also
   * in the marker key, so workers order what they list without reading tasks.
   */
  priority?: number;
  /** When submitted. */
  createdAt: string;
  /** When this version was written. */
  updatedAt: string;
  /** Not claimable before this time. */
  availableAt: string;
  /** A pending task not started by then becomes expired; null: never. */
  expiresAt: string | null;
  /** When the current (or last) attempt started. */
  startedAt: string | null;
  /** When the task reached a terminal state. */
  finishedAt: string | null;
  /** The claim of a running task, else null. */
  lease: Lease | null;
  /** The most recent failure. */
  lastError: TaskError | null;
  /** A pending cancellation request of a running task (kept after it is honoured). */
  cancel: CancelRequest | null;
  /** The idempotency key it was submitted with. */
  idempotencyKey: string | null;
  /** The transition that wrote this version. */
  event: TaskEvent;
  /**
   * The key (relative to the queue prefix) of the task's ready marker while it is not terminal,
   * else null. Each marker key carries a random nonce and is never reused, so a marker that is
   * not the one named here is stale and may be deleted (after a grace period).
   */
  marker: string | null;
  /**
   * The version id the storage gave the object at {@link TaskRecord.marker} when it was put
   * (versioned buckets only), so that its deleter removes that version and leaves no delete
   * marker behind (docs/protocol.md, "Deleting markers"). Absent when the storage gave none,
   * in records written before it existed, and once the task is terminal.
   */
  markerVersion?: string;
  /**
   * The last `TASK_HISTORY_LIMIT` transitions, oldest first; consecutive lease renewals share
   * one entry (the latest). Empty for a record written before the log existed, until its next
   * transition.
   */
  history: TaskHistoryEntry[];
  /**
   * The last value the handler reported with `ctx.progress()` in the current (or last) attempt
   * (any JSON value of at most 4 KiB), or null. A claim clears it; the outcome write keeps the
   * final one. Absent in records written before it existed (read as null).
   */
  progress: unknown;
}

/**
 * True when `A` and `B` are the same type. The record's types are written out (with their docs
 * on every field) rather than inferred, so the package's declarations stay readable and do not
 * reference valibot's; these checks make the compiler reject any difference between a type and
 * its schema's output, so the two cannot drift.
 */
type Same<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

true satisfies Same<Declared<v.InferOutput<typeof statusSchema>>, TaskStatus>;
true satisfies Same<Declared<v.InferOutput<typeof eventSchema>>, TaskEvent>;
true satisfies Same<Declared<v.InferOutput<typeof backoffSchema>>, Backoff>;
true satisfies Same<Declared<v.InferOutput<typeof leaseSchema>>, Lease>;
true satisfies Same<Declared<v.InferOutput<typeof taskErrorSchema>>, TaskError>;
true satisfies Same<Declared<v.InferOutput<typeof cancelSchema>>, CancelRequest>;
true satisfies Same<Declared<v.InferOutput<typeof historyEntrySchema>>, TaskHistoryEntry>;
true satisfies Same<Declared<v.InferOutput<typeof payloadRefSchema>>, PayloadRef>;
true satisfies Same<Declared<v.InferOutput<typeof taskSchema>>, TaskRecord>;

const decoder = new TextDecoder();

/**
 * Parse a stored task object. A malformed or foreign object raises `MalformedObjectError` saying what
 * is wrong, so callers can report it and move on.
 */
export function parseTask(body: Uint8Array | string, key: string): TaskRecord {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === "string" ? body : decoder.decode(body));
  } catch {
    throw new MalformedObjectError(`Object ${key} is not a task: its body is not JSON.`, { key });
  }
  const checked = validate(taskSchema, value);
  if (!checked.ok) {
    throw new MalformedObjectError(`Object ${key} is not a valid task: ${checked.summary}`, {
      key,
    });
  }
  const result = checked.value as TaskRecord;
  // A running task without a lease could never be finished (only a lease holder may) nor
  // recovered (no lease to expire), and the worker would trip over the missing lease on every
  // pass. Reject it as malformed, so it is reported and skipped (found by the chaos tests).
  if (result.status === "running" && result.lease === null) {
    throw new MalformedObjectError(
      `Object ${key} is not a valid task: it is running without a lease`,
      {
        key,
      },
    );
  }
  return result;
}

const encoder = new TextEncoder();

/** Serialize a task for storage. */
export function encodeTask(task: TaskRecord): Uint8Array {
  return encoder.encode(`${JSON.stringify(task, null, 1)}\n`);
}
