/**
 * Typed errors. Callers branch on `error.code` (or `instanceof`), never on message text.
 *
 * Messages say what to fix. No error ever carries credentials: the S3 driver builds messages
 * from the method, the key, the status and the S3 error code only.
 *
 * @module
 */

/** Every code an {@link OqError} can carry. */
export type OqErrorCode =
  | "NOT_FOUND"
  | "PRECONDITION_FAILED"
  | "CONFLICT"
  | "THROTTLED"
  | "ACCESS_DENIED"
  | "CONFIG"
  | "UNAVAILABLE"
  | "AMBIGUOUS_WRITE"
  | "STORAGE"
  | "VALIDATION"
  | "MALFORMED"
  | "INVALID_STATE"
  | "TIMEOUT"
  | "UNSAFE_BACKEND"
  | "PROTOCOL_MISMATCH"
  | "IDEMPOTENCY_CONFLICT";

/** Extra facts an error may carry about the storage request that failed. */
export interface OqErrorDetails {
  /** HTTP status of the response, when there was one. */
  status?: number;
  /** The S3 error code from the XML body (`NoSuchKey`, `SlowDown`, ...). */
  s3Code?: string;
  /** The request id the server returned (`x-amz-request-id`), for support tickets. */
  requestId?: string;
  /** The object key the request was about. */
  key?: string;
  /** The original error (a network failure, a JSON parse error). */
  cause?: unknown;
}

/** Base class of every error oq throws on purpose. */
export class OqError extends Error {
  /** Stable machine-readable code. */
  readonly code: OqErrorCode;
  /** HTTP status of the storage response, when there was one. */
  readonly status?: number;
  /** S3 error code from the response body, when there was one. */
  readonly s3Code?: string;
  /** Server request id, when there was one. */
  readonly requestId?: string;
  /** The object key involved, when there was one. */
  readonly key?: string;

  constructor(code: OqErrorCode, message: string, details: OqErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    if (details.status !== undefined) this.status = details.status;
    if (details.s3Code !== undefined) this.s3Code = details.s3Code;
    if (details.requestId !== undefined) this.requestId = details.requestId;
    if (details.key !== undefined) this.key = details.key;
  }

  /** A plain object for `--json` output and logs. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      status: this.status,
      s3Code: this.s3Code,
      requestId: this.requestId,
      key: this.key,
    };
  }
}

/** The object (or bucket) does not exist. HTTP 404. */
export class NotFoundError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("NOT_FOUND", message, details);
  }
}

/** A conditional write's condition was false: another writer won. HTTP 412. */
export class PreconditionFailedError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("PRECONDITION_FAILED", message, details);
  }
}

/**
 * A concurrent operation interfered and the write did not happen (HTTP 409,
 * `ConditionalRequestConflict` / `OperationAborted`). Re-read, decide again, then retry.
 */
export class ConflictError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("CONFLICT", message, details);
  }
}

/** The server asked us to slow down (HTTP 429, or 503 `SlowDown`). */
export class ThrottledError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("THROTTLED", message, details);
  }
}

/** Credentials are wrong or lack permission. HTTP 403. */
export class AccessDeniedError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("ACCESS_DENIED", message, details);
  }
}

/** The configuration is unusable: a malformed endpoint, missing credentials, a bad option. */
export class ConfigError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("CONFIG", message, details);
  }
}

/** The storage could not be reached (connection refused, DNS, timeout). Safe to retry later. */
export class UnavailableError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("UNAVAILABLE", message, details);
  }
}

/**
 * A conditional write may or may not have committed (a 5xx or a dropped connection after the
 * request was sent). Never treat it as success or failure: re-read the object and decide.
 */
export class AmbiguousWriteError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("AMBIGUOUS_WRITE", message, details);
  }
}

/** Any other storage failure, with the HTTP status, S3 error code and request id. */
export class StorageError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("STORAGE", message, details);
  }
}

/** Input was rejected: a bad id, type, duration, date, payload or option. */
export class ValidationError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("VALIDATION", message, details);
  }
}

/**
 * A stored object (a task, a schedule) is not valid: not JSON, a missing or mistyped field, or
 * a body that names another object. The caller's input was fine; the bucket holds something oq
 * did not write, or a hand-written object with a mistake, so this is storage trouble (the CLI
 * exits 1, not 2): fix or remove the object named by `key`. Its code is `MALFORMED`; it extends
 * {@link ValidationError} (a failed validation, of stored data), so code that skips invalid
 * objects with `instanceof ValidationError` still does.
 */
export class MalformedObjectError extends ValidationError {
  /** Always `MALFORMED`. */
  override readonly code: OqErrorCode = "MALFORMED";
}

/** The operation does not apply to the task in its current state (e.g. replaying a completed task). */
export class InvalidStateError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("INVALID_STATE", message, details);
  }
}

/** Waiting ran out of time. */
export class TimeoutError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("TIMEOUT", message, details);
  }
}

/** `doctor` found that the backend does not honour conditional writes. */
export class UnsafeBackendError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("UNSAFE_BACKEND", message, details);
  }
}

/**
 * The queue's manifest (`{prefix}queue.json`) names a protocol version this oq does not speak: the
 * queue was written by another release. Code `PROTOCOL_MISMATCH`; the message names both versions.
 */
export class ProtocolMismatchError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("PROTOCOL_MISMATCH", message, details);
  }
}

/**
 * A submit reused an idempotency key for a different task: its type or input (compared as
 * canonical JSON) differs from the task the key already names. Code `IDEMPOTENCY_CONFLICT`;
 * `key` is the id of the existing task. Use another key, or submit the same input.
 */
export class IdempotencyConflictError extends OqError {
  constructor(message: string, details?: OqErrorDetails) {
    super("IDEMPOTENCY_CONFLICT", message, details);
  }
}

/** True when `error` is an {@link OqError} with the given code. */
export function isOqError(error: unknown, code?: OqErrorCode): error is OqError {
  return error instanceof OqError && (code === undefined || error.code === code);
}
