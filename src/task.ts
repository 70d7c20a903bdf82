/**
 * The task record and its state machine: pure functions from a record (and the time, a token,
 * a random number) to the next record. Nothing here touches storage, so every transition is
 * unit-tested on its own; the queue and the worker only decide which transition to apply and
 * write its result with a conditional PUT.
 *
 * Glossary:
 * - task: one unit of work, stored as one JSON object for its whole life.
 * - attempt: how many times the task has been started (claimed). The first run is attempt 1.
 * - retries: runs allowed after the first; a task runs at most `maxRetries + 1` times.
 * - lease: a running task's claim: a random token, the worker id and an expiry in server time.
 *   Only the holder of the current token may change a running task.
 * - due: `availableAt` has passed. A pending task is claimable when due and not expired.
 * - terminal: completed, failed (the dead-letter state), cancelled or expired.
 *
 * @module
 */
import { type } from "arktype";
import { InvalidStateError, MalformedObjectError, ValidationError } from "./errors.ts";

/** Every state a task can be in. */
export type TaskStatus = "pending" | "running" | "completed" | "failed" | "cancelled" | "expired";

/** The states a task never leaves (except by an explicit replay). */
export const TERMINAL_STATUSES: readonly TaskStatus[] = [
  "completed",
  "failed",
  "cancelled",
  "expired",
];

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
  /** The error message. */
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
  /** How many times the task has been started. */
  attempt: number;
  /** Retries allowed after the first run. */
  maxRetries: number;
  /** Delay policy between attempts. */
  backoff: Backoff;
  /** Per-attempt time limit in seconds, or null for the worker's default. */
  timeoutSeconds: number | null;
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
}

/** What {@link createTask} needs; the queue fills defaults. */
export interface NewTask {
  id: string;
  type: string;
  input: unknown;
  maxRetries: number;
  backoff: Backoff;
  timeoutSeconds: number | null;
  availableAt: number;
  expiresAt: number | null;
  idempotencyKey: string | null;
  marker: string;
}

/** The default backoff: 1 s doubling up to 5 minutes. */
export const DEFAULT_BACKOFF: Backoff = { initialSeconds: 1, maxSeconds: 300, factor: 2 };

const iso = (ms: number): string => new Date(ms).toISOString();

/** Epoch milliseconds of an ISO field. */
export function ms(value: string): number {
  return Date.parse(value);
}

/** True for completed, failed, cancelled and expired. */
export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** A new pending task. */
export function createTask(spec: NewTask, now: number): TaskRecord {
  if (spec.expiresAt !== null && spec.expiresAt <= spec.availableAt) {
    throw new ValidationError(
      `Task expires (${iso(spec.expiresAt)}) before it becomes available (${iso(spec.availableAt)}): give a later TTL/expiry or an earlier schedule.`,
    );
  }
  return {
    oq: 1,
    id: spec.id,
    type: spec.type,
    status: "pending",
    input: spec.input,
    output: null,
    attempt: 0,
    maxRetries: spec.maxRetries,
    backoff: spec.backoff,
    timeoutSeconds: spec.timeoutSeconds,
    createdAt: iso(now),
    updatedAt: iso(now),
    availableAt: iso(spec.availableAt),
    expiresAt: spec.expiresAt === null ? null : iso(spec.expiresAt),
    startedAt: null,
    finishedAt: null,
    lease: null,
    lastError: null,
    cancel: null,
    idempotencyKey: spec.idempotencyKey,
    event: "submitted",
    marker: spec.marker,
  };
}

/** True when a pending task's TTL has run out. */
export function isExpired(task: TaskRecord, now: number): boolean {
  return task.status === "pending" && task.expiresAt !== null && ms(task.expiresAt) <= now;
}

/** True when the task may start now: pending, due, and not expired. */
export function isClaimable(task: TaskRecord, now: number): boolean {
  return task.status === "pending" && ms(task.availableAt) <= now && !isExpired(task, now);
}

/**
 * How long after its lease's expiry a running task may be taken from its holder, ms. Server
 * time is known only within bounds (`ServerClock`); the holder stops before its upper bound
 * reaches the expiry and the taker waits until its lower bound is this far past it, so an
 * unnoticed small step of either clock cannot let both run (docs/protocol.md, "Leases and time").
 */
export const LEASE_TAKEOVER_MARGIN_MS = 1000;

/** The server time from which a running task's lease counts as expired (see {@link isLeaseExpired}). */
export function leaseTakeoverAt(task: TaskRecord): number {
  return task.lease === null ? Number.NaN : ms(task.lease.expiresAt) + LEASE_TAKEOVER_MARGIN_MS;
}

/**
 * How long before its lease's expiry a holder that could not renew stops its handler, ms: a
 * second, or a tenth of a lease shorter than 10 s (renewal starts with a third of it left).
 */
export const LEASE_STOP_MARGIN_MS = 1000;

/**
 * The server time at which the holder of a lease of `leaseMs` must have stopped working on it
 * unless it renewed: before any other worker may take it over ({@link leaseTakeoverAt}). The
 * holder compares it with the upper bound of server time.
 */
export function leaseStopAt(task: TaskRecord, leaseMs: number): number {
  if (task.lease === null) return Number.NaN;
  return ms(task.lease.expiresAt) - Math.min(LEASE_STOP_MARGIN_MS, leaseMs / 10);
}

/**
 * True when a running task's lease has surely run out by `now`, the lower bound of server
 * time: its expiry plus {@link LEASE_TAKEOVER_MARGIN_MS}.
 */
export function isLeaseExpired(task: TaskRecord, now: number): boolean {
  return task.status === "running" && task.lease !== null && leaseTakeoverAt(task) <= now;
}

/** True when `token` is the running task's current lease token. */
export function holdsLease(task: TaskRecord, token: string): boolean {
  return task.status === "running" && task.lease?.token === token;
}

/**
 * The one way into a terminal state: sets the status and event, ends the lease, stamps
 * `finishedAt` and clears `marker`, so a finished task never names a ready marker (a marker
 * that a terminal task still named would never count as stale and would be read on every poll).
 */
function finish(
  task: TaskRecord,
  status: "completed" | "failed" | "cancelled" | "expired",
  now: number,
  changes: Partial<TaskRecord> = {},
): TaskRecord {
  return {
    ...task,
    ...changes,
    status,
    updatedAt: iso(now),
    finishedAt: iso(now),
    lease: null,
    marker: null,
    event: status,
  };
}

function invalid(task: TaskRecord, action: string): never {
  throw new InvalidStateError(`Cannot ${action} task ${task.id}: it is ${task.status}.`, {
    key: task.id,
  });
}

function requireLease(task: TaskRecord, token: string, action: string): void {
  if (!holdsLease(task, token)) {
    throw new InvalidStateError(
      `Cannot ${action} task ${task.id}: the lease was lost (the task is ${task.status}${task.lease ? `, held by ${task.lease.workerId}` : ""}).`,
      { key: task.id },
    );
  }
}

/** Options of {@link claimTask}. */
export interface ClaimSpec {
  workerId: string;
  token: string;
  leaseMs: number;
  now: number;
}

/**
 * Start an attempt: pending and due (and not expired) → running with a fresh lease. A running
 * task whose lease has expired is taken over the same way; the lost attempt is recorded as its
 * last error. The caller must have checked the retry budget with {@link canRetry} for takeovers.
 */
export function claimTask(task: TaskRecord, spec: ClaimSpec): TaskRecord {
  const takeover = isLeaseExpired(task, spec.now);
  if (!takeover && !isClaimable(task, spec.now)) invalid(task, "claim");
  if (task.cancel !== null) invalid(task, "claim a cancel-requested");
  return {
    ...task,
    status: "running",
    attempt: task.attempt + 1,
    startedAt: iso(spec.now),
    updatedAt: iso(spec.now),
    lease: { token: spec.token, workerId: spec.workerId, expiresAt: iso(spec.now + spec.leaseMs) },
    lastError: takeover ? leaseExpiredError(task, spec.now) : task.lastError,
    event: "claimed",
  };
}

/** Extend the lease held with `token` to `now + leaseMs`. */
export function renewLease(
  task: TaskRecord,
  token: string,
  leaseMs: number,
  now: number,
): TaskRecord {
  requireLease(task, token, "renew the lease of");
  return {
    ...task,
    updatedAt: iso(now),
    lease: { ...task.lease!, expiresAt: iso(now + leaseMs) },
    event: "lease-renewed",
  };
}

/**
 * Record the handler's result. A task whose cancellation was requested while it ran ends
 * cancelled (its output is still kept), as the caller asked for it not to count as done.
 */
export function completeTask(
  task: TaskRecord,
  token: string,
  output: unknown,
  now: number,
): TaskRecord {
  requireLease(task, token, "complete");
  const cancelled = task.cancel !== null;
  return finish(task, cancelled ? "cancelled" : "completed", now, {
    output: output === undefined ? null : output,
  });
}

/** The delay before the next attempt after `attempt` runs, with equal jitter (half fixed, half random). */
export function backoffMs(backoff: Backoff, attempt: number, random: number): number {
  // 0 × Infinity is NaN: after enough attempts the power overflows, and a zero initial delay
  // must stay zero rather than turn the next availableAt into an invalid date.
  const exp =
    backoff.initialSeconds === 0
      ? 0
      : backoff.initialSeconds * backoff.factor ** Math.max(0, attempt - 1);
  const capped = Math.min(backoff.maxSeconds, exp) * 1000;
  return Math.round(capped / 2 + (capped / 2) * random);
}

/** True when the task has runs left after its current attempt. */
export function canRetry(task: TaskRecord): boolean {
  return task.attempt <= task.maxRetries;
}

/** A failure to record with {@link failAttempt}. */
export interface Failure {
  message: string;
  name: string;
  /** Skip remaining retries. */
  permanent?: boolean;
}

function afterFailure(task: TaskRecord, error: TaskError, now: number, random: number): TaskRecord {
  if (task.cancel !== null) return finish(task, "cancelled", now, { lastError: error });
  if (error.permanent || !canRetry(task)) return finish(task, "failed", now, { lastError: error });
  const base = { ...task, updatedAt: iso(now), lease: null, lastError: error };
  const next = now + backoffMs(task.backoff, task.attempt, random);
  return { ...base, status: "pending", availableAt: iso(next), event: "retry-scheduled" };
}

/**
 * Record a failed attempt: back to pending after a backoff while retries remain, else failed
 * (the dead-letter state). A permanent failure fails at once; a cancel request wins over both.
 * `random` in [0, 1) picks the jitter.
 */
export function failAttempt(
  task: TaskRecord,
  token: string,
  failure: Failure,
  now: number,
  random: number,
): TaskRecord {
  requireLease(task, token, "fail");
  const error: TaskError = {
    message: failure.message,
    name: failure.name,
    attempt: task.attempt,
    at: iso(now),
    permanent: failure.permanent === true,
  };
  return afterFailure(task, error, now, random);
}

function leaseExpiredError(task: TaskRecord, now: number): TaskError {
  return {
    message: `lease of ${task.lease?.workerId ?? "unknown worker"} expired at ${task.lease?.expiresAt}`,
    name: "LeaseExpired",
    attempt: task.attempt,
    at: iso(now),
    permanent: false,
  };
}

/**
 * Recover a running task whose lease has run out (its worker died or lost contact): pending
 * after a backoff while retries remain, else failed; cancelled if that was requested.
 */
export function expireLease(task: TaskRecord, now: number, random: number): TaskRecord {
  if (!isLeaseExpired(task, now)) invalid(task, "expire the live lease of");
  const next = afterFailure(task, leaseExpiredError(task, now), now, random);
  return next.status === "pending" ? { ...next, event: "lease-expired" } : next;
}

/**
 * Hand a running task back unfinished (graceful shutdown): pending and due at once, and the
 * interrupted attempt does not count against its retries.
 */
export function releaseTask(task: TaskRecord, token: string, now: number): TaskRecord {
  requireLease(task, token, "release");
  if (task.cancel !== null) return finish(task, "cancelled", now);
  return {
    ...task,
    status: "pending",
    attempt: task.attempt - 1,
    availableAt: iso(now),
    updatedAt: iso(now),
    lease: null,
    event: "released",
  };
}

/**
 * Request cancellation. A pending task is cancelled at once; a running one keeps running with
 * the request recorded, and its worker aborts the handler when it sees it. Returns the task
 * unchanged when cancellation was already requested; throws for terminal tasks.
 */
export function requestCancel(task: TaskRecord, reason: string | null, now: number): TaskRecord {
  if (isTerminal(task.status)) invalid(task, "cancel");
  const cancel: CancelRequest = { requestedAt: iso(now), reason };
  if (task.status === "pending") return finish(task, "cancelled", now, { cancel });
  if (task.cancel !== null) return task;
  return { ...task, cancel, updatedAt: iso(now), event: "cancel-requested" };
}

/** End a cancel-requested running task as cancelled (its handler stopped without a result). */
export function finishCancelled(task: TaskRecord, token: string, now: number): TaskRecord {
  requireLease(task, token, "cancel");
  return finish(task, "cancelled", now);
}

/** A pending task whose TTL ran out before it started → expired. */
export function expireTask(task: TaskRecord, now: number): TaskRecord {
  if (!isExpired(task, now)) invalid(task, "expire");
  return finish(task, "expired", now);
}

/**
 * Put a failed, expired or cancelled task back to pending, due now, with a fresh retry budget
 * (attempts count from zero again) and no TTL. Its history keeps the earlier runs.
 */
export function replayTask(task: TaskRecord, now: number): TaskRecord {
  if (task.status !== "failed" && task.status !== "expired" && task.status !== "cancelled") {
    invalid(task, "replay");
  }
  return {
    ...task,
    status: "pending",
    attempt: 0,
    output: null,
    availableAt: iso(now),
    expiresAt: null,
    updatedAt: iso(now),
    finishedAt: null,
    lease: null,
    cancel: null,
    event: "replayed",
  };
}

/**
 * Give `next` (the result of a transition from `prev`) its marker: none when terminal, the
 * current one while the task stays where it is in the index, and a new one from `newMarker`
 * when it becomes pending at a new time (retry, release, lease recovery, replay). Idempotent:
 * a record that already has its new marker keeps it. `Queue.write` calls it on every write.
 */
export function placeMarker(
  prev: TaskRecord,
  next: TaskRecord,
  newMarker: (availableAtMs: number) => string,
): TaskRecord {
  if (isTerminal(next.status)) return next.marker === null ? next : { ...next, marker: null };
  const moved =
    next.status === "pending" &&
    (prev.status !== "pending" || prev.availableAt !== next.availableAt);
  if (!moved && prev.marker !== null) return next;
  if (next.marker !== null && next.marker !== prev.marker) return next;
  return { ...next, marker: newMarker(ms(next.availableAt)) };
}

/** What may follow a version written while the task runs (a claim or a renewal). */
const AFTER_RUNNING: readonly TaskEvent[] = [
  "lease-renewed",
  "completed",
  "retry-scheduled",
  "failed",
  "cancel-requested",
  "cancelled",
  "lease-expired",
  "released",
  "claimed",
];

/** Which transitions may follow which: the history checker and tests use it. */
export const TRANSITIONS: Readonly<Record<TaskEvent, readonly TaskEvent[]>> = {
  submitted: ["claimed", "cancelled", "expired"],
  claimed: AFTER_RUNNING,
  "lease-renewed": AFTER_RUNNING,
  "cancel-requested": ["lease-renewed", "cancelled"],
  "retry-scheduled": ["claimed", "cancelled", "expired"],
  "lease-expired": ["claimed", "cancelled", "expired"],
  released: ["claimed", "cancelled", "expired"],
  replayed: ["claimed", "cancelled"],
  completed: [],
  failed: ["replayed"],
  cancelled: ["replayed"],
  expired: ["replayed"],
};

const isoString = type("string").narrow(
  (s, ctx) => !Number.isNaN(Date.parse(s)) || ctx.mustBe("an ISO 8601 date"),
);

const taskSchema = type({
  oq: "1",
  id: "string",
  type: "string",
  status: "'pending' | 'running' | 'completed' | 'failed' | 'cancelled' | 'expired'",
  input: "unknown",
  output: "unknown",
  attempt: "number.integer >= 0",
  maxRetries: "number.integer >= 0",
  backoff: { initialSeconds: "number >= 0", maxSeconds: "number >= 0", factor: "number >= 1" },
  timeoutSeconds: "number > 0 | null",
  createdAt: isoString,
  updatedAt: isoString,
  availableAt: isoString,
  expiresAt: isoString.or("null"),
  startedAt: isoString.or("null"),
  finishedAt: isoString.or("null"),
  lease: type({ token: "string", workerId: "string", expiresAt: isoString }).or("null"),
  lastError: type({
    message: "string",
    name: "string",
    attempt: "number",
    at: "string",
    permanent: "boolean",
  }).or("null"),
  cancel: type({ requestedAt: "string", reason: "string | null" }).or("null"),
  idempotencyKey: "string | null",
  event: "string",
  marker: "string | null",
});

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
  if (!(result.event in TRANSITIONS)) {
    throw new MalformedObjectError(
      `Object ${key} is not a valid task: unknown event ${result.event}`,
      {
        key,
      },
    );
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
  return result as TaskRecord;
}

const encoder = new TextEncoder();

/** Serialize a task for storage. */
export function encodeTask(task: TaskRecord): Uint8Array {
  return encoder.encode(`${JSON.stringify(task, null, 1)}\n`);
}
