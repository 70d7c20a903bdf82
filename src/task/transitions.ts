/**
 * The task state machine: pure functions from a record (and the time, a token, a random number)
 * to the next record. The record itself (schema, types, parse, encode) is in `./record.ts`. Nothing here touches storage, so every transition is
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
import { InvalidStateError, ValidationError } from "../errors.ts";
import { Keys } from "../keys.ts";
import { iso } from "../util/format.ts";
import { backoffMs } from "./backoff.ts";
import {
  clip,
  eventLog,
  logged,
  MAX_TASK_ERROR_CHARS,
  TASK_HISTORY_ERROR_CHARS,
} from "./event-log.ts";
import type {
  Backoff,
  CancelRequest,
  PayloadRef,
  TaskError,
  TaskEvent,
  TaskRecord,
  TaskStatus,
} from "./record.ts";

/** The states a task never leaves (except by an explicit replay). */
export const TERMINAL_STATUSES: readonly TaskStatus[] = [
  "completed",
  "failed",
  "cancelled",
  "expired",
];

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
  /** Higher runs first; 0 (the default) is not stored. */
  priority?: number;
  /** Where the input is stored when it is too large for the record (`input` is then null). */
  inputRef?: PayloadRef;
}

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
  const task: TaskRecord = {
    oq: 1,
    id: spec.id,
    type: spec.type,
    status: "pending",
    input: spec.input,
    output: null,
    ...(spec.inputRef === undefined ? {} : { inputRef: spec.inputRef }),
    attempt: 0,
    maxRetries: spec.maxRetries,
    backoff: spec.backoff,
    timeoutSeconds: spec.timeoutSeconds,
    ...(spec.priority === undefined || spec.priority === 0 ? {} : { priority: spec.priority }),
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
    history: [],
    progress: null,
  };
  return { ...task, history: eventLog(task) };
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
  return logged(task, {
    ...task,
    status: "running",
    attempt: task.attempt + 1,
    startedAt: iso(spec.now),
    updatedAt: iso(spec.now),
    lease: { token: spec.token, workerId: spec.workerId, expiresAt: iso(spec.now + spec.leaseMs) },
    lastError: takeover ? leaseExpiredError(task, spec.now) : task.lastError,
    progress: null,
    event: "claimed",
  });
}

/**
 * Extend the lease held with `token` to `now + leaseMs`, never shortening it: a holder whose
 * local clock just stepped back reads `now` low until a response corrects it, and must not
 * write a lease that has already run out in server time (another worker would take the task).
 */
export function renewLease(
  task: TaskRecord,
  token: string,
  leaseMs: number,
  now: number,
): TaskRecord {
  requireLease(task, token, "renew the lease of");
  const expiresAt = Math.max(ms(task.lease!.expiresAt), now + leaseMs);
  return logged(task, {
    ...task,
    updatedAt: iso(now),
    lease: { ...task.lease!, expiresAt: iso(expiresAt) },
    event: "lease-renewed",
  });
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
  outputRef?: PayloadRef,
): TaskRecord {
  requireLease(task, token, "complete");
  const cancelled = task.cancel !== null;
  return logged(
    task,
    finish(task, cancelled ? "cancelled" : "completed", now, {
      // A large output is stored as its own object, written before this; the record names it.
      output: outputRef !== undefined || output === undefined ? null : output,
      ...(outputRef === undefined ? {} : { outputRef }),
    }),
  );
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
    message: clip(failure.message, MAX_TASK_ERROR_CHARS),
    name: clip(failure.name, TASK_HISTORY_ERROR_CHARS),
    attempt: task.attempt,
    at: iso(now),
    permanent: failure.permanent === true,
  };
  return logged(task, afterFailure(task, error, now, random));
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
  return logged(task, next.status === "pending" ? { ...next, event: "lease-expired" } : next);
}

/**
 * Hand a running task back unfinished (graceful shutdown): pending and due at once, and the
 * interrupted attempt does not count against its retries.
 */
export function releaseTask(task: TaskRecord, token: string, now: number): TaskRecord {
  requireLease(task, token, "release");
  if (task.cancel !== null) return logged(task, finish(task, "cancelled", now));
  return logged(task, {
    ...task,
    status: "pending",
    attempt: task.attempt - 1,
    availableAt: iso(now),
    updatedAt: iso(now),
    lease: null,
    event: "released",
  });
}

/**
 * Request cancellation. A pending task is cancelled at once; a running one keeps running with
 * the request recorded, and its worker aborts the handler when it sees it. Returns the task
 * unchanged when cancellation was already requested; throws for terminal tasks.
 */
export function requestCancel(task: TaskRecord, reason: string | null, now: number): TaskRecord {
  if (isTerminal(task.status)) invalid(task, "cancel");
  const cancel: CancelRequest = { requestedAt: iso(now), reason };
  // A request already on a pending task (written by hand) is the one it ends with.
  if (task.status === "pending")
    return logged(task, finish(task, "cancelled", now, { cancel: task.cancel ?? cancel }));
  if (task.cancel !== null) return task;
  return logged(task, { ...task, cancel, updatedAt: iso(now), event: "cancel-requested" });
}

/** End a cancel-requested running task as cancelled (its handler stopped without a result). */
export function finishCancelled(task: TaskRecord, token: string, now: number): TaskRecord {
  requireLease(task, token, "cancel");
  return logged(task, finish(task, "cancelled", now));
}

/** A pending task whose TTL ran out before it started → expired. */
export function expireTask(task: TaskRecord, now: number): TaskRecord {
  if (!isExpired(task, now)) invalid(task, "expire");
  return logged(task, finish(task, "expired", now));
}

/**
 * Put a failed, expired or cancelled task back to pending, due now, with a fresh retry budget
 * (attempts count from zero again) and no TTL. Its history keeps the earlier runs.
 */
export function replayTask(task: TaskRecord, now: number): TaskRecord {
  if (task.status !== "failed" && task.status !== "expired" && task.status !== "cancelled") {
    invalid(task, "replay");
  }
  // The earlier run's output goes, stored apart or not (`replay` deletes its object).
  const { outputRef: _, ...rest } = task;
  return logged(task, {
    ...rest,
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
  });
}

/**
 * Give `next` (the result of a transition from `prev`) its marker: none when terminal; a new one
 * from `newMarker(dueMs)` when it becomes pending at a new time (retry, release, lease recovery,
 * replay), and when a lease renewal finds a running task's marker before the moment its lease
 * can be taken over: it moves to one lease length after that moment (rounded up to the second),
 * so that nobody lists a live lease and only every second renewal moves it; otherwise the
 * current one (a claim keeps the task's marker: the first renewal, about a second into the run,
 * moves it). Idempotent: a record that already has its new marker keeps it. The task store calls
 * it on every write.
 */
export function placeMarker(
  prev: TaskRecord,
  next: TaskRecord,
  newMarker: (dueMs: number) => string,
): TaskRecord {
  if (isTerminal(next.status)) return next.marker === null ? next : { ...next, marker: null };
  if (next.marker !== null && next.marker !== prev.marker) return next;
  if (next.status === "running") {
    if (next.event !== "lease-renewed" && prev.marker !== null) return next;
    const takeover = leaseTakeoverAt(next);
    const at = prev.marker === null ? undefined : markerTime(prev.marker);
    if (at !== undefined && at >= takeover) return next;
    // One lease length (at most a minute) past the takeover: the next renewal finds the marker
    // still beyond its lease and leaves it, so only every second renewal of a short lease pays
    // for a move; a long lease renews rarely, and its recovery waits at most a minute more.
    const length = Math.max(0, ms(next.lease!.expiresAt) - ms(next.updatedAt));
    const slack = Math.min(length, LEASE_MARKER_SLACK_MS);
    return { ...next, marker: newMarker(Math.ceil((takeover + slack) / 1000) * 1000) };
  }
  const moved = prev.status !== "pending" || prev.availableAt !== next.availableAt;
  if (!moved && prev.marker !== null) return next;
  return { ...next, marker: newMarker(ms(next.availableAt)) };
}

/**
 * How far past its lease's takeover time a running task's marker lies at most, ms: one lease
 * length, capped at a minute (docs/protocol.md, "Leases in the index").
 */
export const LEASE_MARKER_SLACK_MS = 60_000;

/** Parses marker keys relative to the prefix, as records name them. */
const RELATIVE = new Keys();

/** The time of a marker named relative to the prefix; `undefined` when it is not a marker. */
function markerTime(relative: string): number | undefined {
  return RELATIVE.parseReadyMarker(relative)?.dueMs;
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
