/**
 * The R2 driver: a Cloudflare R2 bucket reached through a Worker's R2 binding (`env.MY_BUCKET`)
 * instead of the S3 API, so a Worker needs no credentials and no request signing.
 *
 * Differences from S3 that callers see:
 * - No version history. R2 keeps one version per key (its bucket versioning is not exposed to
 *   bindings), so {@link R2Storage.versioning} reports `"Disabled"`, `listVersions` returns only
 *   current versions (id `"null"`), and `connect()` needs `allowNoVersioning: true`.
 *   `oq history --versions` and `Queue.getVersions()` then show the current version only; the
 *   event log in each task (`Queue.getHistory()`, `oq history`) works as on S3.
 * - Conditional writes use R2's `onlyIf` (`etagMatches` for `ifMatch`, `etagDoesNotMatch: "*"`
 *   for `ifNoneMatch: "*"`). A failed condition makes R2 return `null` rather than throw; the
 *   driver turns that into {@link PreconditionFailedError}, or {@link NotFoundError} when the key
 *   is missing (one extra HEAD, as S3 answers 404 there).
 * - The clock. A binding call returns no `Date` header, so {@link R2Storage.serverTime} reports
 *   the Worker's own clock (`Date.now()`, which Cloudflare keeps in sync; inside a Worker it
 *   advances only between I/O calls). Leases are as exact as that clock.
 *
 * The binding's types are declared here structurally ({@link R2BucketLike}), so the driver needs
 * neither `@cloudflare/workers-types` nor anything outside web standards.
 *
 * @module
 */
import {
  AccessDeniedError,
  AmbiguousWriteError,
  NotFoundError,
  type OqError,
  type OqErrorDetails,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
  ValidationError,
} from "../errors.ts";
import { checkKey, checkPutOptions, pageSize } from "./checks.ts";
import { checkMaxBytes, objectTooLarge, overBound } from "./max-bytes.ts";
import {
  type GetOptions,
  type GetResult,
  type HeadResult,
  type ListOptions,
  type ListResult,
  type ListVersionsOptions,
  type ListVersionsResult,
  localClockSample,
  normalizeEtag,
  type PutOptions,
  type PutResult,
  rolledUpPrefix,
  type ServerTimeSample,
  type Storage,
  type StorageLocation,
  toBytes,
  type VersioningStatus,
} from "./storage.ts";

/** The parts of an R2 object's metadata the driver reads (`R2Object` in workers-types). */
export interface R2ObjectLike {
  /** The object's key. */
  readonly key: string;
  /** The ETag without quotes. */
  readonly etag: string;
  /** The ETag quoted, as an HTTP header carries it. */
  readonly httpEtag: string;
  /** Size in bytes. */
  readonly size: number;
  /** When it was written. */
  readonly uploaded: Date;
  /** Content type and friends. */
  readonly httpMetadata?: { contentType?: string } | undefined;
}

/** An R2 object with its body (`R2ObjectBody` in workers-types). */
export interface R2ObjectBodyLike extends R2ObjectLike {
  /** The body as a stream, cancelled unread when the object is over a read's `maxBytes`. */
  readonly body?: ReadableStream;
  /** The whole body. */
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** One page of `R2Bucket.list` (`R2Objects` in workers-types). */
export interface R2ObjectsLike {
  /** Objects of this page, in key order. */
  objects: R2ObjectLike[];
  /** True when more follow. */
  truncated: boolean;
  /** Pass back as `cursor` for the next page, when truncated. */
  cursor?: string;
  /** The prefixes keys were rolled up into, when the call had a `delimiter`. */
  delimitedPrefixes?: string[];
}

/** The subset of the R2 binding the driver calls. Any `R2Bucket` from a Worker's `env` fits. */
export interface R2BucketLike {
  /** Read an object; `null` when absent. */
  get(key: string): Promise<R2ObjectBodyLike | null>;
  /** Read an object's metadata; `null` when absent. */
  head(key: string): Promise<R2ObjectLike | null>;
  /** Write an object; `null` when an `onlyIf` condition failed. */
  put(
    key: string,
    value: Uint8Array | string,
    options?: {
      httpMetadata?: { contentType?: string };
      onlyIf?: { etagMatches?: string; etagDoesNotMatch?: string };
    },
  ): Promise<R2ObjectLike | null>;
  /** Delete one key or up to 1,000 keys; missing keys succeed. */
  delete(keys: string | string[]): Promise<void>;
  /** One page of keys. */
  list(options?: {
    prefix?: string;
    cursor?: string;
    startAfter?: string;
    limit?: number;
    delimiter?: string;
  }): Promise<R2ObjectsLike>;
}

/** Options of {@link R2Storage}. */
export interface R2StorageOptions {
  /** The R2 binding, e.g. `env.QUEUE_BUCKET`. */
  bucket: R2BucketLike;
  /** Name shown in messages. Defaults to `r2:binding`. */
  name?: string;
  /** The clock reported as the server's, in epoch ms. Defaults to `Date.now`. */
  now?: () => number;
}

/** R2 deletes at most this many keys per call. */
const MAX_BATCH_DELETE = 1000;
const NULL_VERSION = "null";

/**
 * A {@link Storage} over a Cloudflare R2 binding. Use it inside a Worker:
 *
 * ```ts
 * import { connect, R2Storage } from "oq";
 * const queue = await connect({ storage: new R2Storage({ bucket: env.QUEUE }), allowNoVersioning: true });
 * ```
 */
export class R2Storage implements Storage {
  /** The name shown in messages. */
  readonly name: string;
  /** A Worker binding has no URL: the binding's name identifies the path for doctor. */
  readonly location: StorageLocation;
  readonly #bucket: R2BucketLike;
  readonly #now: () => number;
  #last: ServerTimeSample | undefined;

  /** Wrap a binding. Nothing is sent until the first call. */
  constructor(options: R2StorageOptions) {
    if (options?.bucket === undefined || typeof options.bucket.put !== "function") {
      throw new ValidationError(
        "R2Storage needs { bucket }: the R2 binding from the Worker's env (e.g. env.QUEUE_BUCKET)",
      );
    }
    this.#bucket = options.bucket;
    this.#now = options.now ?? Date.now;
    this.name = options.name ?? "r2:binding";
    this.location = { driver: "r2-binding", endpoint: this.name, bucket: this.name };
  }

  /** Read the current version (the only one R2 keeps). */
  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    checkKey(key);
    checkMaxBytes(options.maxBytes);
    this.#checkVersion(key, options.versionId);
    const obj = await this.#call("get", key, () => this.#bucket.get(key));
    if (obj === null) throw this.#notFound(key);
    if (overBound(obj.size, options.maxBytes)) {
      // Dropped unread: R2 already knows the size, so nothing past the bound is transferred.
      await obj.body?.cancel().catch(() => undefined);
      throw objectTooLarge(this.name, key, obj.size, options.maxBytes!);
    }
    const body = new Uint8Array(await this.#call("get", key, () => obj.arrayBuffer()));
    if (overBound(body.length, options.maxBytes))
      throw objectTooLarge(this.name, key, body.length, options.maxBytes!);
    const result: GetResult = {
      body,
      etag: quoted(obj),
      versionId: null,
      lastModified: new Date(obj.uploaded.getTime()),
    };
    const contentType = obj.httpMetadata?.contentType;
    if (contentType !== undefined) result.contentType = contentType;
    return result;
  }

  /** Read the current version's metadata. */
  async head(key: string): Promise<HeadResult> {
    checkKey(key);
    const obj = await this.#call("head", key, () => this.#bucket.head(key));
    if (obj === null) throw this.#notFound(key);
    return {
      etag: quoted(obj),
      size: obj.size,
      versionId: null,
      lastModified: new Date(obj.uploaded.getTime()),
    };
  }

  /** Write, honouring `ifMatch` / `ifNoneMatch` through R2's `onlyIf`. */
  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    checkKey(key);
    checkPutOptions(key, options);
    const onlyIf =
      options.ifMatch !== undefined
        ? { etagMatches: normalizeEtag(options.ifMatch) }
        : options.ifNoneMatch === "*"
          ? { etagDoesNotMatch: "*" }
          : undefined;
    // A copy: R2 may read the body after we return control, and the caller may reuse its buffer.
    const bytes = toBytes(body).slice();
    const written = await this.#call(
      "put",
      key,
      () =>
        this.#bucket.put(key, bytes, {
          httpMetadata: { contentType: options.contentType ?? "application/octet-stream" },
          ...(onlyIf === undefined ? {} : { onlyIf }),
        }),
      onlyIf !== undefined,
    );
    if (written !== null) return { etag: quoted(written), versionId: null };
    if (onlyIf === undefined) {
      throw new StorageError(`R2 put ${key} in ${this.name} returned nothing without a condition`, {
        key,
      });
    }
    if (options.ifNoneMatch === "*") {
      throw new PreconditionFailedError(
        `${key} already exists in ${this.name}: If-None-Match: * only creates absent keys; re-read it instead`,
        { status: 412, s3Code: "PreconditionFailed", key },
      );
    }
    // R2 answers a failed etagMatches with null whether the key changed or is gone; S3 (and so
    // the Storage contract) tells the two apart, which the queue relies on for deleted tasks.
    const current = await this.#call("head", key, () => this.#bucket.head(key));
    if (current === null) {
      throw new NotFoundError(
        `${key} does not exist in ${this.name}, so If-Match cannot hold; create it with ifNoneMatch: "*"`,
        { status: 404, s3Code: "NoSuchKey", key },
      );
    }
    throw new PreconditionFailedError(
      `${key} changed in ${this.name} (ETag ${quoted(current)}, not ${options.ifMatch}): re-read it and decide again`,
      { status: 412, s3Code: "PreconditionFailed", key },
    );
  }

  /** Delete a key (R2 removes it: there are no delete markers). Missing keys succeed. */
  async delete(key: string): Promise<void> {
    checkKey(key);
    await this.#call("delete", key, () => this.#bucket.delete(key));
  }

  /** Remove the single version R2 keeps (`"null"`); any other version id is already gone. */
  async deleteVersion(key: string, versionId: string): Promise<void> {
    checkKey(key);
    if (versionId !== NULL_VERSION) {
      this.#touch();
      return;
    }
    await this.delete(key);
  }

  /** Delete many keys, up to 1,000 per R2 call. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const key of keys) checkKey(key);
    for (let i = 0; i < keys.length; i += MAX_BATCH_DELETE) {
      const batch = keys.slice(i, i + MAX_BATCH_DELETE);
      await this.#call("delete", batch[0]!, () => this.#bucket.delete(batch));
    }
    if (keys.length === 0) this.#touch();
  }

  /** One page of keys; the continuation token is R2's cursor. */
  async list(options: ListOptions = {}): Promise<ListResult> {
    const limit = pageSize(options.maxKeys);
    const request: {
      prefix?: string;
      cursor?: string;
      startAfter?: string;
      limit: number;
      delimiter?: string;
    } = { limit };
    const prefix = options.prefix ?? "";
    const delimiter = options.delimiter || undefined;
    if (prefix !== "") request.prefix = prefix;
    if (delimiter !== undefined) request.delimiter = delimiter;
    // As on S3, a continuation token supersedes start-after: it is further along already.
    if (options.continuationToken !== undefined) request.cursor = options.continuationToken;
    else if (options.startAfter !== undefined) request.startAfter = options.startAfter;
    const page = await this.#call("list", prefix, () => this.#bucket.list(request));
    const result: ListResult = {
      objects: page.objects.map((o) => ({
        key: o.key,
        etag: quoted(o),
        size: o.size,
        lastModified: new Date(o.uploaded.getTime()),
      })),
      isTruncated: page.truncated && page.cursor !== undefined,
    };
    if (delimiter !== undefined) {
      // R2 rolls up the keys after startAfter, so a startAfter inside a prefix brings that
      // prefix back; S3 lists entries after it, and that prefix is not after it.
      const done =
        request.startAfter === undefined
          ? undefined
          : rolledUpPrefix(request.startAfter, prefix, delimiter);
      result.prefixes = (page.delimitedPrefixes ?? []).filter((p) => p !== done);
    }
    if (result.isTruncated) result.nextContinuationToken = page.cursor!;
    return result;
  }

  /**
   * One page of versions: R2 keeps only the current one, so this is the listing with each key as
   * its single `"null"` version (what S3 shows for a bucket that never had versioning).
   */
  async listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    if (options.versionIdMarker !== undefined && options.keyMarker === undefined) {
      throw new ValidationError(
        "listVersions: versionIdMarker needs the keyMarker it came with; pass both from the previous page",
      );
    }
    const list: ListOptions = { prefix: options.prefix, maxKeys: pageSize(options.maxKeys) };
    // Each key has one version, so the page after a key marker starts at the next key.
    if (options.keyMarker !== undefined) list.startAfter = options.keyMarker;
    const page = await this.list(list);
    const result: ListVersionsResult = {
      versions: page.objects.map((o) => ({
        key: o.key,
        versionId: NULL_VERSION,
        isLatest: true,
        isDeleteMarker: false,
        lastModified: o.lastModified,
        etag: o.etag,
        size: o.size,
      })),
      isTruncated: page.isTruncated,
    };
    if (page.isTruncated && page.objects.length > 0) {
      result.nextKeyMarker = page.objects[page.objects.length - 1]!.key;
      result.nextVersionIdMarker = NULL_VERSION;
    } else {
      result.isTruncated = false;
    }
    return result;
  }

  /** Always `"Disabled"`: R2 bindings keep no object history. */
  async versioning(): Promise<VersioningStatus> {
    this.#touch();
    return "Disabled";
  }

  /** The Worker's clock at the last call (R2 bindings carry no server `Date`). */
  serverTime(): ServerTimeSample | undefined {
    return this.#last === undefined ? undefined : { ...this.#last };
  }

  #touch(): void {
    this.#last = localClockSample(this.#now());
  }

  #checkVersion(key: string, versionId: string | undefined): void {
    if (versionId === undefined || versionId === NULL_VERSION) return;
    throw new NotFoundError(
      `${key} has no version ${versionId} in ${this.name}: R2 keeps only the current version`,
      { status: 404, s3Code: "NoSuchVersion", key },
    );
  }

  #notFound(key: string): NotFoundError {
    return new NotFoundError(`${key} does not exist in ${this.name}`, {
      status: 404,
      s3Code: "NoSuchKey",
      key,
    });
  }

  /** Run one binding call, mapping R2's errors (`"put: ... (10031)"`) to typed ones. */
  async #call<T>(op: string, key: string, fn: () => Promise<T>, conditional = false): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw mapError(op, key, this.name, error, conditional);
    } finally {
      this.#touch();
    }
  }
}

/** The ETag as an HTTP header carries it (quoted), which is what S3 returns too. */
function quoted(obj: R2ObjectLike): string {
  return obj.httpEtag ?? `"${obj.etag}"`;
}

function mapError(
  op: string,
  key: string,
  name: string,
  error: unknown,
  conditional: boolean,
): OqError {
  const message = error instanceof Error ? error.message : String(error);
  const code = /\((\d{5})\)\s*$/.exec(message)?.[1];
  const details: OqErrorDetails = { key, cause: error };
  if (code !== undefined) details.s3Code = `R2-${code}`;
  const text = `R2 ${op} ${key} in ${name} failed: ${message}`;
  switch (code) {
    case "10002":
    case "10003":
    case "10035":
      return new AccessDeniedError(`${text}; check the binding's bucket and permissions`, {
        ...details,
        status: 403,
      });
    case "10006":
      return new NotFoundError(`${text}; is the R2 binding's bucket_name right?`, {
        ...details,
        status: 404,
      });
    case "10007":
      return new NotFoundError(text, { ...details, status: 404 });
    case "10031":
      return new PreconditionFailedError(text, { ...details, status: 412 });
    case "10058":
      return new ThrottledError(`${text}; slow down`, { ...details, status: 429 });
    default:
      break;
  }
  // A conditional write that failed for an unknown reason may or may not have landed.
  if (conditional) {
    return new AmbiguousWriteError(`${text}; re-read ${key} to learn whether it was written`, {
      ...details,
    });
  }
  if (code === "10001" || code === "10043") return new UnavailableError(text, details);
  return new StorageError(text, details);
}
