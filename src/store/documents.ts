/**
 * The one store of conditional JSON documents (tasks, schedules, cached verdicts): read an object
 * with its ETag, write it only if nobody changed it since (compare-and-swap), and loop
 * read → change → write until the change lands. Every conditional write of oq goes through here,
 * so the rules below live in one place:
 *
 * - **Create** with `If-None-Match: *`, **change** with `If-Match: <etag read>`.
 * - 412, 409, and 404 on an `If-Match` (the key was deleted; AWS says 404, others 412) mean
 *   "another writer got there first": the write lost, re-read and decide again.
 * - **Ambiguous outcomes** (`AmbiguousWriteError`: the request may or may not have committed) are
 *   settled by reading the object back and comparing bytes exactly. This is sound only because
 *   every version a caller writes is unique (it carries a fresh `updatedAt`, a claim also a fresh
 *   lease token): our exact body in storage means our write landed. The read-back retries
 *   transient failures with the shared rule of `../retry.ts`, since giving up would leave a
 *   write that did land unknown to its writer.
 * - An update loop gives up after {@link MAX_CAS_ROUNDS} lost rounds with `ConflictError`.
 * - Reads are bounded (`./bounds.ts`): an object larger than any document oq writes is refused
 *   unread, as `MalformedObjectError`, like one the codec cannot parse.
 *
 * Portable (web-standard globals only).
 *
 * @module
 */
import {
  AmbiguousWriteError,
  ConflictError,
  MalformedObjectError,
  NotFoundError,
  type OqError,
  PreconditionFailedError,
} from "../errors.ts";
import { type RetryPolicy, retry } from "../retry.ts";
import { type Storage, sameEtag } from "../storage/storage.ts";
import { getBounded, MAX_DOCUMENT_BYTES } from "./bounds.ts";

/** How many lost compare-and-swap rounds an update outlasts before it gives up. */
export const MAX_CAS_ROUNDS = 20;

/**
 * How patiently an ambiguous write is read back: 6 tries, waits of up to 0.2, 0.4, 0.8, 1.6 and
 * 3.2 s. Throttling and 5xx are retried too, not only outages: giving up leaves a claim that did
 * land unknown to its worker, so the task waits out a whole lease (found by the chaos tests).
 */
export const READ_BACK_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 200, maxDelayMs: 3200 };

/** How a document type is stored: its body bytes and back. */
export interface DocumentCodec<T> {
  /**
   * Parse a stored body. Throws (typically `ValidationError`, naming `key`) when the object is
   * not a valid document.
   */
  parse(body: Uint8Array, key: string): T;
  /**
   * Serialize a document. Must be deterministic: an ambiguous write is recognised by comparing
   * these exact bytes with what storage holds.
   */
  encode(value: T): Uint8Array;
}

/** Options of {@link DocumentStore}. */
export interface DocumentStoreOptions<T> extends DocumentCodec<T> {
  /** Content type stored with each document. Default `application/json`. */
  contentType?: string;
  /** How an ambiguous write is read back. Default {@link READ_BACK_RETRY}; inject `sleep` in tests. */
  readBack?: RetryPolicy;
  /**
   * Refuse a stored object larger than this many bytes, unread, with `MalformedObjectError`, as
   * the codec refuses one it cannot parse. Default `MAX_DOCUMENT_BYTES` (16 MiB, `./bounds.ts`).
   */
  maxBytes?: number;
}

/** A document with the ETag of the version it was read from or written as. */
export interface VersionedDocument<T> {
  /** The parsed document. */
  value: T;
  /** The ETag of this version, exactly as the server returned it (pass it to `write`). */
  etag: string;
}

/** {@link DocumentStore.write} landed: `value` is now stored as version `etag`. */
export interface WriteWon<T> extends VersionedDocument<T> {
  /** The write landed. */
  won: true;
}

/** {@link DocumentStore.write} did not land: another writer got there first (or deleted the key). */
export interface WriteLost<T> {
  /** The write did not land. */
  won: false;
  /**
   * What storage answered: `PreconditionFailedError`, `ConflictError`, `NotFoundError` (on an
   * `If-Match`), or the `AmbiguousWriteError` that the read-back settled as lost.
   */
  error: OqError;
  /**
   * Only after an ambiguous answer: the version the read-back found (`null` when the key was
   * missing). A caller may use it instead of reading again, e.g. to see whether the winner
   * still names an index marker the lost write had put in place.
   */
  readBack?: VersionedDocument<T> | null;
  /**
   * The value this write sent, when it may still land: its answer was ambiguous and the
   * read-back still found the version it was written over (or, for a create, no object). A PUT
   * whose connection failed can reach storage after that read. {@link DocumentStore.update}
   * recognises such a value when a later round finds it stored.
   */
  mayLand?: T;
}

/** The outcome of {@link DocumentStore.write}. */
export type WriteResult<T> = WriteWon<T> | WriteLost<T>;

/** Options of {@link DocumentStore.update}. */
export interface UpdateOptions<T> {
  /** A version already read: the first round starts from it instead of reading. */
  known?: VersionedDocument<T>;
  /**
   * How one round writes `next` over `current`. Default: {@link DocumentStore.write} with
   * `current.etag`. A store that keeps other objects in step (the task store writes a new ready
   * marker before the CAS and deletes the old one after) wraps `write` here.
   */
  write?: (current: VersionedDocument<T>, next: T) => Promise<WriteResult<T>>;
  /** Message of the `ConflictError` thrown after {@link MAX_CAS_ROUNDS} lost rounds. */
  conflictMessage?: string;
  /**
   * Told when a round finds stored the value an earlier round's write sent (its `mayLand`): that
   * write landed late, after its read-back had settled it as lost. `update` then returns it as
   * written. The task store finishes what a won write does here (markers, journal).
   */
  landedLate?: (sent: T, stored: VersionedDocument<T>) => Promise<void>;
}

/**
 * Conditional JSON documents in one storage, one type per store. Keys are full object keys (the
 * caller adds its prefix).
 */
export class DocumentStore<T> {
  /** The storage documents are kept in. */
  readonly storage: Storage;
  readonly #codec: DocumentCodec<T>;
  readonly #contentType: string;
  readonly #readBack: RetryPolicy;
  readonly #maxBytes: number;

  constructor(storage: Storage, options: DocumentStoreOptions<T>) {
    this.storage = storage;
    this.#codec = { parse: options.parse, encode: options.encode };
    this.#contentType = options.contentType ?? "application/json";
    this.#readBack = options.readBack ?? READ_BACK_RETRY;
    this.#maxBytes = options.maxBytes ?? MAX_DOCUMENT_BYTES;
  }

  /**
   * Read a document with its ETag; `undefined` when the key does not exist. Throws what the codec
   * throws for an object it cannot parse, and `MalformedObjectError` for one over the store's
   * `maxBytes`, which is never read.
   */
  async read(key: string): Promise<VersionedDocument<T> | undefined> {
    const got = await this.#get(key);
    if (got === undefined) return undefined;
    return { value: this.#codec.parse(got.body, key), etag: got.etag };
  }

  /**
   * Write `value` if the stored version still has ETag `ifMatch`, or, with `ifMatch` `null`, only
   * if the key does not exist yet (create). Resolves won or lost; any other failure throws, and
   * so does the codec when an ambiguous write that lost reads back an object it cannot parse.
   * Each version written must be unique (a fresh `updatedAt`): see the module doc.
   */
  async write(key: string, ifMatch: string | null, value: T): Promise<WriteResult<T>> {
    const body = this.#codec.encode(value);
    try {
      const put = await this.storage.put(key, body, {
        contentType: this.#contentType,
        ...(ifMatch === null ? { ifNoneMatch: "*" as const } : { ifMatch }),
      });
      return { won: true, value, etag: put.etag };
    } catch (error) {
      if (error instanceof AmbiguousWriteError) return this.confirm(key, value, error, ifMatch);
      if (
        error instanceof PreconditionFailedError ||
        error instanceof ConflictError ||
        (error instanceof NotFoundError && ifMatch !== null)
      ) {
        return { won: false, error };
      }
      throw error;
    }
  }

  /**
   * Settle a write of `value` to `key` whose outcome `error` leaves open: read the object back
   * (retrying transient failures) and compare bytes exactly. {@link write} does this for an
   * ambiguous answer; a caller with more at stake than the document (the task store, when a
   * new ready marker hangs on the write) calls it after a 412 too, which a layer below may have
   * produced by re-sending a PUT that had committed. `base` is the version the write was
   * conditional on (`null` for a create). Throws like {@link write} when a version that is not
   * ours cannot be parsed.
   */
  async confirm(
    key: string,
    value: T,
    error: OqError,
    base: string | null,
  ): Promise<WriteResult<T>> {
    const body = this.#codec.encode(value);
    const seen = await retry(() => this.#get(key), this.#readBack);
    if (seen !== undefined && bytesEqual(seen.body, body)) {
      return { won: true, value, etag: seen.etag };
    }
    const readBack =
      seen === undefined ? null : { value: this.#codec.parse(seen.body, key), etag: seen.etag };
    const unsettled =
      error instanceof AmbiguousWriteError &&
      (base === null ? seen === undefined : seen !== undefined && sameEtag(seen.etag, base));
    return unsettled
      ? { won: false, error, readBack, mayLand: value }
      : { won: false, error, readBack };
  }

  /**
   * Read-modify-write with compare-and-swap, starting again from the current version after every
   * lost race. `change` returns the next document, or `undefined` to leave it as it is; it may
   * run once per round, so side effects in it must be safe to repeat. Resolves the version stored
   * afterwards (the one written, or the unchanged one), or `undefined` when the key does not
   * exist (or was deleted meanwhile). Throws `ConflictError` after {@link MAX_CAS_ROUNDS} lost
   * rounds.
   */
  async update(
    key: string,
    change: (current: VersionedDocument<T>) => T | undefined | Promise<T | undefined>,
    options: UpdateOptions<T> = {},
  ): Promise<VersionedDocument<T> | undefined> {
    const write = options.write ?? ((current, next) => this.write(key, current.etag, next));
    let current = options.known;
    // What earlier rounds sent that may still land: found stored, it is ours, not a rival's.
    const mayLand: T[] = [];
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      current ??= await this.read(key);
      if (current === undefined) return undefined;
      const sent = this.#sentEarlier(key, mayLand, current.value);
      if (sent !== undefined) {
        await options.landedLate?.(sent, current);
        return current;
      }
      const next = await change(current);
      if (next === undefined) return current;
      const result = await write(current, next);
      if (result.won) return { value: result.value, etag: result.etag };
      if (result.mayLand !== undefined) mayLand.push(result.mayLand);
      // An ambiguous write that lost has already read the current version back.
      current = result.readBack ?? undefined;
    }
    throw new ConflictError(
      options.conflictMessage ??
        `${key} kept changing under ${MAX_CAS_ROUNDS} attempts to update it; try again.`,
      { key },
    );
  }

  /**
   * Store `value` whatever version is there now: a conditional write over the version just read
   * (a create when the key is missing), re-read after a lost race. The last writer wins, but never
   * by a blind overwrite, so an ambiguous answer is settled like any other write. For documents
   * that are replaced whole (a cached verdict), not changed from their current value. A stored
   * object the codec cannot parse is replaced too. Throws `ConflictError` after
   * {@link MAX_CAS_ROUNDS} lost rounds.
   */
  async put(key: string, value: T): Promise<VersionedDocument<T>> {
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      const current = await this.#etag(key);
      const result = await this.write(key, current ?? null, value);
      if (result.won) return { value: result.value, etag: result.etag };
    }
    throw new ConflictError(
      `${key} kept changing under ${MAX_CAS_ROUNDS} attempts to store it; try again.`,
      { key },
    );
  }

  /**
   * The value of `sent` that `stored` is (every version written is unique). Both are compared as
   * parsed from their bytes, so a codec that orders or fills in fields cannot hide a match.
   */
  #sentEarlier(key: string, sent: readonly T[], stored: T): T | undefined {
    if (sent.length === 0) return undefined;
    const bytes = (value: T) =>
      this.#codec.encode(this.#codec.parse(this.#codec.encode(value), key));
    const body = bytes(stored);
    return sent.find((value) => bytesEqual(bytes(value), body));
  }

  async #get(key: string): Promise<{ body: Uint8Array; etag: string } | undefined> {
    try {
      return await getBounded(this.storage, key, this.#maxBytes);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * The ETag of the current version of `key` (`undefined` when missing), for a write that replaces
   * it whatever it holds: an object over the bound is replaced too, its ETag taken from a HEAD.
   */
  async #etag(key: string): Promise<string | undefined> {
    try {
      return (await this.#get(key))?.etag;
    } catch (error) {
      if (!(error instanceof MalformedObjectError)) throw error;
    }
    try {
      return (await this.storage.head(key)).etag;
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
