/**
 * The probe doctor's checks share: storage calls over one scratch prefix that return what was
 * sent and what came back as a line of evidence, and the failure a check ends with.
 *
 * @module
 */
import { isOqError, NotFoundError, OqError } from "../errors.ts";
import { internals } from "../queue/internals.ts";
import type { Queue } from "../queue/queue.ts";
import type { PutOptions, PutResult } from "../storage/storage.ts";
import { getBounded } from "../store/bounds.ts";
import { ADVICE_REJECTED, type Advice } from "./advice.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The outcome of one storage call, with a line of evidence. */
export type Outcome<T> =
  | { ok: true; value: T; line: string }
  | { ok: false; error: unknown; line: string };

/** HTTP statuses of the error codes that have one, for drivers that do not set `status`. */
const STATUS_OF: Partial<Record<string, number>> = {
  PRECONDITION_FAILED: 412,
  NOT_FOUND: 404,
  CONFLICT: 409,
  ACCESS_DENIED: 403,
  THROTTLED: 503,
};

/** `412 PreconditionFailed`, `404 NoSuchKey`, `UnavailableError: ...`: what came back. */
export function describeError(error: unknown): string {
  if (error instanceof OqError) {
    const status = error.status ?? STATUS_OF[error.code];
    const what = error.s3Code ?? error.name.replace(/Error$/, "");
    const line = status === undefined ? `${what}: ${error.message}` : `${status} ${what}`;
    return line;
  }
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

export function headerText(options: PutOptions): string {
  if (options.ifNoneMatch !== undefined) return ` If-None-Match: ${options.ifNoneMatch}`;
  if (options.ifMatch !== undefined) return ` If-Match: ${options.ifMatch}`;
  return "";
}

/** True for errors that say nothing about the backend's semantics (it was unreachable, slow). */
function inconclusive(error: unknown): boolean {
  return (
    isOqError(error, "UNAVAILABLE") ||
    isOqError(error, "THROTTLED") ||
    isOqError(error, "ACCESS_DENIED") ||
    isOqError(error, "CONFIG") ||
    isOqError(error, "TIMEOUT") ||
    // A write whose answer was lost (a 5xx, e.g. MinIO's 503 SlowDownWrite below write quorum)
    // proves nothing either way: the check could not be completed.
    isOqError(error, "AMBIGUOUS_WRITE") ||
    (isOqError(error, "STORAGE") && ((error as OqError).status ?? 0) >= 500)
  );
}

/** Raised inside a check to end it as failed. */
export class CheckFailed extends Error {
  /** True when the failure shows misbehaviour, false when the check could not complete. */
  readonly unsafe: boolean;
  /** What to do: fixed text, or advice to fit to the provider. */
  readonly fix: string | Advice;
  /** The storage error behind an inconclusive failure. */
  readonly origin: unknown;

  constructor(message: string, unsafe: boolean, fix: string | Advice, origin?: unknown) {
    super(message);
    this.unsafe = unsafe;
    this.fix = fix;
    this.origin = origin;
  }
}

/** The probes, over one queue's storage and one scratch prefix. */
export class Probe {
  readonly queue: Queue;
  readonly scratch: string;
  /** Request ids of the errors seen: they tell some providers apart. */
  readonly requestIds = new Set<string>();
  #n = 0;

  constructor(queue: Queue, scratch: string) {
    this.queue = queue;
    this.scratch = scratch;
  }

  key(name: string): string {
    return `${this.scratch}${name}`;
  }

  #noteRequestId(error: unknown): void {
    if (error instanceof OqError && error.requestId !== undefined) {
      this.requestIds.add(error.requestId);
    }
  }

  /** A body no other write of this run has, so equal ETags mean the same write. */
  body(label: string): string {
    return `oq doctor ${label} #${++this.#n} ${internals(this.queue).randomHex(16)}\n`;
  }

  async put(key: string, body: string, options: PutOptions = {}): Promise<Outcome<PutResult>> {
    const sent = `PUT ${key}${headerText(options)}`;
    try {
      const value = await this.queue.storage.put(key, encoder.encode(body), {
        ...options,
        contentType: "text/plain",
      });
      return { ok: true, value, line: `${sent} -> 200 ETag ${value.etag}` };
    } catch (error) {
      this.#noteRequestId(error);
      return { ok: false, error, line: `${sent} -> ${describeError(error)}` };
    }
  }

  async get(key: string): Promise<Outcome<{ body: string; etag: string } | undefined>> {
    try {
      const got = await getBounded(this.queue.storage, key);
      const body = decoder.decode(got.body);
      return {
        ok: true,
        value: { body, etag: got.etag },
        line: `GET ${key} -> 200 ETag ${got.etag} body ${JSON.stringify(body.trim())}`,
      };
    } catch (error) {
      this.#noteRequestId(error);
      if (error instanceof NotFoundError) {
        return { ok: true, value: undefined, line: `GET ${key} -> 404 (absent)` };
      }
      return { ok: false, error, line: `GET ${key} -> ${describeError(error)}` };
    }
  }
}

export function bail(outcome: { ok: false; error: unknown }, what: string): never {
  const error = outcome.error;
  if (inconclusive(error)) {
    throw new CheckFailed(
      `${what} could not be completed: ${describeError(error)}`,
      false,
      "The storage failed for a reason unrelated to conditional writes; check connectivity and permissions, then run oq doctor again.",
      error,
    );
  }
  throw new CheckFailed(
    `${what} failed unexpectedly: ${describeError(error)}`,
    true,
    ADVICE_REJECTED,
    error,
  );
}
