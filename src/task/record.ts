/**
 * The stored task record: its schema, the types derived from it, and how it is parsed from and
 * encoded to a storage body. The schema is the one source of truth for the record's shape; the
 * exported types are inferred from it, so the two cannot drift apart. The state machine over
 * these records is in `./transitions.ts`.
 *
 * @module
 */
import { type } from "arktype";
import { MalformedObjectError } from "../errors.ts";

const isoString = type("string").narrow(
  (s, ctx) => !Number.isNaN(Date.parse(s)) || ctx.mustBe("an ISO 8601 date"),
);

const statusSchema = type.enumerated(
  "pending",
  "running",
  "completed",
  "failed",
  "cancelled",
  "expired",
);

const eventSchema = type.enumerated(
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
);

const backoffSchema = type({
  /** Delay before the first retry, in seconds. */
  initialSeconds: "number >= 0",
  /** Upper bound of any delay, in seconds. */
  maxSeconds: "number >= 0",
  /** Growth per attempt (2 doubles the delay each time). */
  factor: "number >= 1",
});

const leaseSchema = type({
  /** Random token written by the claim; a worker acts on the task only while it is current. */
  token: "string",
  /** The worker holding the lease. */
  workerId: "string",
  /** When the lease runs out, in server time (ISO 8601). */
  expiresAt: isoString,
});

const taskErrorSchema = type({
  /** The error message. */
  message: "string",
  /** The error's class name (`TypeError`, `LeaseExpired`, `Timeout`). */
  name: "string",
  /** The attempt that failed. */
  attempt: "number",
  /** When it failed (ISO 8601). */
  at: "string",
  /** True when the error was permanent and retries were skipped. */
  permanent: "boolean",
});

const cancelSchema = type({
  /** When it was requested (ISO 8601). */
  requestedAt: "string",
  /** Why, as given by the caller. */
  reason: "string | null",
});

const taskSchema = type({
  /** Record format version. */
  oq: "1",
  /** Task id. */
  id: "string",
  /** Task type: selects the handler. */
  type: "string",
  /** Current state. */
  status: statusSchema,
  /** The handler's input (any JSON value). */
  input: "unknown",
  /** The handler's result once completed, else null. */
  output: "unknown",
  /** How many times the task has been started. */
  attempt: "number.integer >= 0",
  /** Retries allowed after the first run. */
  maxRetries: "number.integer >= 0",
  /** Delay policy between attempts. */
  backoff: backoffSchema,
  /** Per-attempt time limit in seconds, or null for the worker's default. */
  timeoutSeconds: "number > 0 | null",
  /** When submitted. */
  createdAt: isoString,
  /** When this version was written. */
  updatedAt: isoString,
  /** Not claimable before this time. */
  availableAt: isoString,
  /** A pending task not started by then becomes expired; null: never. */
  expiresAt: isoString.or("null"),
  /** When the current (or last) attempt started. */
  startedAt: isoString.or("null"),
  /** When the task reached a terminal state. */
  finishedAt: isoString.or("null"),
  /** The claim of a running task, else null. */
  lease: leaseSchema.or("null"),
  /** The most recent failure. */
  lastError: taskErrorSchema.or("null"),
  /** A pending cancellation request of a running task (kept after it is honoured). */
  cancel: cancelSchema.or("null"),
  /** The idempotency key it was submitted with. */
  idempotencyKey: "string | null",
  /** The transition that wrote this version. */
  event: eventSchema,
  /**
   * The key (relative to the queue prefix) of the task's ready marker while it is not terminal,
   * else null. Each marker key carries a random nonce and is never reused, so a marker that is
   * not the one named here is stale and may be deleted (after a grace period).
   */
  marker: "string | null",
});

/** Every state a task can be in. */
export type TaskStatus = typeof statusSchema.infer;

/** The transition that produced a version of a task; history reads as a list of these. */
export type TaskEvent = typeof eventSchema.infer;

/** Exponential backoff with jitter between attempts. */
export type Backoff = typeof backoffSchema.infer;

/** A running task's claim. */
export type Lease = typeof leaseSchema.infer;

/** The last error a task's handler raised (or the reason the runtime gave up on an attempt). */
export type TaskError = typeof taskErrorSchema.infer;

/** A cancellation request, kept on the record so a running handler can see it. */
export type CancelRequest = typeof cancelSchema.infer;

/** The stored task. Times are ISO 8601 strings so the object reads well in `aws s3 cp`. */
export type TaskRecord = typeof taskSchema.infer;

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
  const result = taskSchema(value);
  if (result instanceof type.errors) {
    throw new MalformedObjectError(`Object ${key} is not a valid task: ${result.summary}`, { key });
  }
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
