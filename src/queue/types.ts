/**
 * The types of the queue's API: options, pages, outcomes.
 *
 * @module
 */

import type { Now } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Storage } from "../storage/storage.ts";
import type { TaskRecord, TaskStatus } from "../task/record.ts";

/** Options of {@link Queue}. */
export interface QueueOptions {
  /** Where tasks live. */
  storage: Storage;
  /** Key prefix of this queue inside the bucket (`""` or ending in `/`). */
  prefix?: string;
  /** Local clock in epoch ms (default `Date.now`); corrected by the server's `Date` headers. */
  now?: Now;
  /** Random numbers in [0, 1) for jitter and shuffling (default `Math.random`). */
  random?: () => number;
  /** Random hex ids and tokens (default from `crypto.getRandomValues`). */
  randomHex?: (length: number) => string;
  /** Where warnings about malformed objects and recoveries go (default: nowhere). */
  logger?: Logger;
  /**
   * Largest accepted task input, as JSON, in bytes; a larger one is refused with a
   * `ValidationError`. Also the largest input object this queue's workers read: a task whose
   * record names a larger one fails permanently (`PayloadCorrupt`), unread. Default 32 MiB
   * (`DEFAULT_MAX_PAYLOAD_BYTES`).
   */
  maxInputBytes?: number;
  /**
   * Largest output a handler may return, as JSON, in bytes; a larger one fails the task
   * permanently with a `ValidationError`. Also the largest output object this queue reads back
   * (`wait`, `get`): a larger one is refused unread with `MalformedObjectError`. Default 32 MiB
   * (`DEFAULT_MAX_PAYLOAD_BYTES`).
   */
  maxOutputBytes?: number;
  /**
   * Inputs and outputs larger than this (as JSON, in bytes) are stored once, as objects of their
   * own that the task names, instead of inside every version of the task object. Default 256 KiB
   * (`DEFAULT_PAYLOAD_THRESHOLD_BYTES`); at most 4 MiB (`MAX_PAYLOAD_THRESHOLD_BYTES`), a larger
   * one is refused with a `ValidationError`: readers bound a task object's size by it. Such a task
   * costs one more PUT at submit and one more GET per run (docs/protocol.md, "Large inputs and
   * outputs").
   */
  payloadThresholdBytes?: number;
  /** Defaults for submitted tasks. */
  defaults?: TaskDefaults;
  /**
   * Record this queue's metrics (and its workers') into this {@link Metrics}: OpenTelemetry
   * instruments and the Prometheus text of `metricsHandler`. Default: none, at no cost.
   */
  metrics?: Metrics;
}

/** Defaults applied to tasks submitted without their own values. */
export interface TaskDefaults {
  /** Retries after the first run. Default 3. */
  maxRetries?: number;
  /** Backoff between attempts (seconds, or duration strings). Default 1 s doubling up to 300 s. */
  backoff?: BackoffOptions;
  /**
   * Per-attempt time limit: seconds or a duration string like `"30m"`. Default: none (the
   * worker's default applies).
   */
  timeoutSeconds?: number | string;
  /** Priority, -10 to 10 (higher runs first). Default 0. */
  priority?: number;
}

/**
 * Backoff between attempts as options take it: each part may be left out to keep the default;
 * the times are seconds or duration strings like `"30s"` (stored as seconds).
 */
export interface BackoffOptions {
  /** Pause before the first retry. */
  initialSeconds?: number | string;
  /** Longest pause. */
  maxSeconds?: number | string;
  /** Growth of the pause per retry (1 to 100). */
  factor?: number;
}

/** Options of {@link Queue.submit}. */
export interface SubmitOptions {
  /** Do not start before this time (a Date, whole epoch ms from 2000 on, or ISO 8601 with timezone). */
  scheduleAt?: Date | number | string;
  /** Do not start before this delay from now (seconds, or `"90s"`, `"1h30m"`). */
  delay?: number | string;
  /**
   * Expire if not started within this long after it becomes available: seconds or a duration
   * string like `"30m"`.
   */
  ttlSeconds?: number | string;
  /** Expire if not started by this time. */
  expiresAt?: Date | number | string;
  /** Per-attempt time limit: seconds or a duration string like `"30m"`. */
  timeoutSeconds?: number | string;
  /** Retries after the first run. */
  maxRetries?: number;
  /** Backoff between attempts (seconds, or duration strings like `"30s"`). */
  backoff?: BackoffOptions;
  /**
   * Higher runs first among due tasks, -10 to 10; default 0 (the queue's default). A task never
   * waits behind work that became due more than 60 s per level of difference after it
   * (docs/protocol.md, "Priorities").
   */
  priority?: number;
  /** A second submit with the same key returns the first task instead of creating another. */
  idempotencyKey?: string;
  /**
   * How long an idempotency key holds, in seconds or as a duration (`"24h"`), counted from the
   * creation of the task it names. After it, a submit with the same key creates a new task once
   * the old one is finished (it replaces the finished task under the same id); a task still
   * pending or running is returned as before. Needs `idempotencyKey`. Default: forever.
   */
  idempotencyWindow?: number | string;
}

/**
 * What {@link Queue.submitUnique} returns: the task the key names, and whether this call created
 * it. `Task` is the record's type (typed by a definition's schemas when submitted with one).
 */
export interface SubmitResult<Task extends TaskRecord = TaskRecord> {
  /** The task: the one this call created, or the one the idempotency key already named. */
  task: Task;
  /** True when this call created the task; false when it returned an existing one. */
  created: boolean;
}

/** A task together with the ETag of the version read. */
export interface Versioned {
  /** The task record. */
  task: TaskRecord;
  /** ETag of that version, exactly as returned. */
  etag: string;
}

/** Options of a task store write or update (internal: the worker uses it). */
export interface WriteOptions {
  /** Delete the task's old marker in a later batch rather than now (workers finishing tasks). */
  batchMarkerDelete?: boolean;
  /** Called when the write was refused with 412 (workers use it to spot a broken backend). */
  onPreconditionFailed?: () => void;
  /**
   * Called when the write counts as lost but may still land: its answer was ambiguous and the
   * read-back still found the version it was written over (a claim then watches for it).
   */
  onUnsettled?: () => void;
}

/**
 * Options of {@link Queue.list}: filters, page size and where to continue. Pending and running
 * tasks come from the ready index, finished ones from the finished journal; no option makes a
 * listing read every stored task.
 */
export interface ListTasksOptions {
  /** Only tasks in this state (or these states). Default: all. */
  status?: TaskStatus | TaskStatus[];
  /** Only tasks of this type. Default: every type with markers or journals. */
  type?: string;
  /** Page size (tasks returned at most). Default 100. */
  limit?: number;
  /**
   * The `cursor` of the previous page. It carries the `since` and `until` of the listing that
   * made it, which then take the place of those given.
   */
  cursor?: string;
  /**
   * Only finished tasks that finished at or after this time (a Date, epoch ms or ISO 8601): the
   * journals of earlier ones are not even read. Pending and running tasks are not bounded by it.
   */
  since?: Date | number | string;
  /** Only finished tasks that finished at or before this time. */
  until?: Date | number | string;
}

/** One page of {@link Queue.list}. */
export interface TaskPage {
  /**
   * Matching tasks, oldest first: by the second in their index key (a pending task's due time, a
   * running task's lease expiry, a finished task's journal time), then by finish time.
   */
  tasks: TaskRecord[];
  /** Pass to get the next page; absent on the last page (which may be empty). */
  cursor?: string;
}

/** The outcome for one id of a bulk cancel. */
export interface CancelOutcome {
  /** The task id. */
  id: string;
  /** True when the task is now cancelled or will be once its handler stops. */
  ok: boolean;
  /**
   * `cancelled`, `cancel-requested` (running), or why not: `not-found`, `already-<status>`,
   * `invalid-id`, or `malformed` (the stored object is not a valid task; see `message`).
   */
  result: string;
  /** Why the stored object was rejected, for a `malformed` result. */
  message?: string;
  /** The task after the call, when it exists. */
  task?: TaskRecord;
}

/** One stored version of a task, as {@link Queue.getVersions} returns it. */
export interface TaskVersion {
  /** The storage version id. */
  versionId: string;
  /** When the version was written (storage time). */
  lastModified: Date;
  /** The record, or null for a delete marker. */
  task: TaskRecord | null;
}
