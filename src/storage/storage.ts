/**
 * The storage contract every driver implements, and the only thing the queue knows about a
 * bucket. Drivers live one per file beside this one and all pass `test/storage/conformance.ts`.
 *
 * Glossary:
 * - key: an object name inside the driver's bucket (the driver adds no prefix of its own).
 * - ETag: an opaque version tag, returned exactly as the server sent it (quoted, maybe `W/`).
 *   Pass it back unchanged in `ifMatch`; compare two ETags with {@link sameEtag}.
 * - version id: the id a versioned bucket gives each write; `null` on an unversioned bucket.
 *
 * Errors: drivers throw the typed errors of `../errors.ts`: `NotFoundError` (404),
 * `PreconditionFailedError` (412), `ConflictError` (409), `ThrottledError` (429/503 SlowDown),
 * `AccessDeniedError` (403), `ConfigError`, `UnavailableError`, `AmbiguousWriteError` (a
 * conditional write whose outcome is unknown), `MalformedObjectError` (an object larger than a
 * read's `maxBytes`) and `StorageError` for everything else.
 *
 * @module
 */

/** One object as a listing shows it. */
export interface ObjectInfo {
  /** The object's key. */
  key: string;
  /** The ETag, exactly as the server returned it. */
  etag: string;
  /** Size of the body in bytes. */
  size: number;
  /** When the current version was written. */
  lastModified: Date;
}

/** The result of {@link Storage.get}. */
export interface GetResult {
  /** The object's body. */
  body: Uint8Array;
  /** The ETag, exactly as the server returned it (use it in `ifMatch`). */
  etag: string;
  /** The version id, or `null` when the bucket is not versioned. */
  versionId: string | null;
  /** When this version was written. */
  lastModified: Date;
  /** The content type stored with the object, if any. */
  contentType?: string;
}

/** The result of {@link Storage.head}. */
export interface HeadResult {
  /** The ETag, exactly as the server returned it. */
  etag: string;
  /** Size of the body in bytes. */
  size: number;
  /** The version id, or `null` when the bucket is not versioned. */
  versionId: string | null;
  /** When this version was written. */
  lastModified: Date;
}

/** One version of one key, as {@link Storage.deleteVersions} takes it. */
export interface VersionTarget {
  /** The object's key. */
  key: string;
  /** The version to remove, as the storage returned it (`PutResult.versionId`). */
  versionId: string;
}

/** Options of {@link Storage.get}. */
export interface GetOptions {
  /** Read this version instead of the current one. */
  versionId?: string;
  /**
   * Refuse an object larger than this many bytes, without reading its body past the bound:
   * `get` then throws `MalformedObjectError` (code `MALFORMED`) naming the key, the size and the
   * bound. A driver checks the size it knows before reading (S3's `Content-Length`, a file's
   * size) and, where it reads a stream, counts the bytes and cancels it past the bound. Default:
   * none (any size is read). Readers must still check `body.byteLength` themselves when the
   * storage may be one of a user's own that ignores this option.
   */
  maxBytes?: number;
}

/** Options of {@link Storage.put}. At most one of `ifMatch` and `ifNoneMatch` may be set. */
export interface PutOptions {
  /** Content type stored with the object. Defaults to `application/octet-stream`. */
  contentType?: string;
  /** Replace only if the current version has this ETag (compare-and-swap). */
  ifMatch?: string;
  /** `"*"`: create only if no current version exists (create-if-absent). */
  ifNoneMatch?: "*";
}

/** The result of {@link Storage.put}. */
export interface PutResult {
  /** The ETag of the version just written. */
  etag: string;
  /** The version id of the version just written, or `null` when unversioned. */
  versionId: string | null;
}

/** Options of {@link Storage.list} (ListObjectsV2). */
export interface ListOptions {
  /** Only keys starting with this string. */
  prefix?: string;
  /** Only keys strictly after this key (in UTF-8 byte order). */
  startAfter?: string;
  /** The `nextContinuationToken` of the previous page. */
  continuationToken?: string;
  /** Page size, 1..1000. Defaults to 1000. */
  maxKeys?: number;
  /**
   * Roll keys up, as S3's `delimiter`: a key that contains this string after `prefix` is not
   * listed itself; it is rolled up into one entry of {@link ListResult.prefixes}, the key up to
   * and including the first occurrence of the delimiter after `prefix`. Each rolled-up prefix
   * appears once across all pages, and counts toward `maxKeys` like an object. Listing is by
   * entry (object key or rolled-up prefix): only entries after `startAfter` are returned, so a
   * `startAfter` inside a rolled-up prefix skips the rest of that prefix (as S3 treats a marker).
   * An empty string means no delimiter.
   */
  delimiter?: string;
}

/** One page of {@link Storage.list}. Keys are in UTF-8 byte order. */
export interface ListResult {
  /** The objects of this page. */
  objects: ObjectInfo[];
  /**
   * The rolled-up prefixes of this page (S3's `CommonPrefixes`), in key order. Set when a
   * (non-empty) `delimiter` was given: always an array then, possibly empty. Treat a prefix as
   * "may hold keys": MinIO on a versioned bucket still lists one whose keys are all deleted.
   */
  prefixes?: string[];
  /** True when more keys follow; pass `nextContinuationToken` to get them. */
  isTruncated: boolean;
  /** Token for the next page, when `isTruncated`. */
  nextContinuationToken?: string;
}

/** Options of {@link Storage.listVersions} (ListObjectVersions). */
export interface ListVersionsOptions {
  /** Only keys starting with this string (a full key lists that key's versions). */
  prefix: string;
  /** The `nextKeyMarker` of the previous page. */
  keyMarker?: string;
  /** The `nextVersionIdMarker` of the previous page. */
  versionIdMarker?: string;
  /** Page size, 1..1000. Defaults to 1000. */
  maxKeys?: number;
}

/** One stored version of an object (or a delete marker). */
export interface VersionInfo {
  /** The object's key. */
  key: string;
  /** The version id (`"null"` for a version written while versioning was off). */
  versionId: string;
  /** True for the current version of the key. */
  isLatest: boolean;
  /** True when this entry is a delete marker rather than a body. */
  isDeleteMarker: boolean;
  /** When this version was written. */
  lastModified: Date;
  /** The ETag (absent for delete markers). */
  etag?: string;
  /** Size in bytes (0 for delete markers). */
  size: number;
}

/**
 * One page of {@link Storage.listVersions}: keys in byte order, and each key's versions newest
 * first, as S3 returns them.
 */
export interface ListVersionsResult {
  /** Versions and delete markers of this page. */
  versions: VersionInfo[];
  /** True when more follow; pass both markers to get them. */
  isTruncated: boolean;
  /** Key marker for the next page. */
  nextKeyMarker?: string;
  /** Version id marker for the next page. */
  nextVersionIdMarker?: string;
}

/** Bucket versioning: `Disabled` when it was never turned on. */
export type VersioningStatus = "Enabled" | "Suspended" | "Disabled";

/** The request kinds counted by {@link countRequests}. */
export type RequestKind = "GET" | "HEAD" | "PUT" | "POST" | "LIST" | "DELETE";

/**
 * Where a storage's requests go: what a doctor verdict proves. A verdict proven over one path
 * (say, straight to the server) says nothing about another (a gateway that drops conditional
 * headers, another region or site), so doctor keys its cached verdict by this.
 */
export interface StorageLocation {
  /** The driver: `s3`, `r2-binding`, `file`, `memory`, or a wrapper's own. */
  driver: string;
  /** The URL of the bucket's root as requests address it (or the directory, the binding name). */
  endpoint: string;
  /** The bucket. */
  bucket: string;
  /** The signing region, when the driver has one. */
  region?: string;
  /**
   * True when conditional writes are implemented by oq itself in this process or on this host
   * (memory, file): there is no server whose behaviour needs proving.
   */
  local?: boolean;
}

/** The storage contract. Every method may throw the typed errors listed in the module doc. */
export interface Storage {
  /** A short human name for messages, e.g. `s3://bucket` or `file:./.oq`. Never credentials. */
  readonly name: string;
  /** Where requests go, for doctor's cached verdict. Absent: the storage's `name` stands in. */
  readonly location?: StorageLocation;
  /** Read an object. Throws `NotFoundError` when absent. */
  get(key: string, options?: GetOptions): Promise<GetResult>;
  /** Read an object's metadata. Throws `NotFoundError` when absent. */
  head(key: string): Promise<HeadResult>;
  /**
   * Write an object. With `ifNoneMatch: "*"` throws `PreconditionFailedError` when it exists;
   * with `ifMatch` throws `PreconditionFailedError` when the ETag differs and `NotFoundError`
   * when the key is missing.
   */
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult>;
  /** Delete an object (a delete marker on a versioned bucket). Deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /**
   * Permanently remove one version or delete marker (`DELETE ?versionId=`); when it was the
   * current one, the next newer survivor becomes current. Removing a missing version succeeds.
   * Optional: the queue never needs it; tests and tools use it to erase history they wrote.
   */
  deleteVersion?(key: string, versionId: string): Promise<void>;
  /**
   * Delete many keys in one request where the backend can (S3 `DeleteObjects`, a POST of up to
   * 1,000 keys). Missing keys succeed. Optional: callers fall back to {@link Storage.delete}.
   */
  deleteMany?(keys: readonly string[]): Promise<void>;
  /**
   * Permanently remove these versions in as few requests as the backend allows (S3
   * `DeleteObjects` naming each `VersionId`, up to 1,000 per request): unlike a delete, this
   * leaves no delete marker, so the keys stop costing anything in listings at once. Missing
   * versions succeed. Needs `s3:DeleteObjectVersion` on AWS (an `AccessDeniedError` without it).
   * Optional: callers fall back to {@link Storage.deleteMany}.
   */
  deleteVersions?(targets: readonly VersionTarget[]): Promise<void>;
  /**
   * The bucket's lifecycle configuration as S3 sends it (GetBucketLifecycleConfiguration, the
   * XML document `<LifecycleConfiguration>`), or `undefined` when the bucket has none.
   * Optional: only S3 buckets have lifecycle rules (memory, file and the R2 binding do not).
   * Read and merge rules with `./lifecycle.ts`.
   */
  getLifecycle?(): Promise<string | undefined>;
  /**
   * Replace the bucket's whole lifecycle configuration with this XML document
   * (PutBucketLifecycleConfiguration). Optional, like {@link Storage.getLifecycle}. Build the
   * document with `./lifecycle.ts`, which keeps the bucket's other rules.
   */
  putLifecycle?(xml: string): Promise<void>;
  /** One page of keys. */
  list(options?: ListOptions): Promise<ListResult>;
  /** One page of versions. */
  listVersions(options: ListVersionsOptions): Promise<ListVersionsResult>;
  /** The bucket's versioning status. */
  versioning(): Promise<VersioningStatus>;
  /**
   * The server's clock as last seen in a response (`Date` header), with the local times
   * (`Date.now()` style milliseconds, from the clock the driver was given) at which that
   * request was sent and its response arrived; `undefined` before any response. The queue
   * bounds server time with this (`ServerClock`), so leases do not trust local time.
   */
  serverTime(): ServerTimeSample | undefined;
}

/**
 * One reading of the server's clock. The server stamped its time at some moment between
 * `sentMs` and `localMs` (local clock), and that time lies in
 * `[serverMs, serverMs + resolutionMs)`: an HTTP `Date` header is truncated to the second.
 */
export interface ServerTimeSample {
  /** The server's time as stated (truncated to its resolution), epoch ms. */
  serverMs: number;
  /** How coarse `serverMs` is, ms: 1000 for an HTTP `Date` header, 1 for an exact clock. */
  resolutionMs: number;
  /** Local time at which the request that got this answer was sent. */
  sentMs: number;
  /** Local time at which the response arrived. */
  localMs: number;
}

/**
 * A sample of a "server" that is this machine's own clock, read at `localMs`: answered on the
 * spot (sent and arrived at once) with an exact time, `skewMs` off the local clock.
 */
export function localClockSample(localMs: number, skewMs = 0): ServerTimeSample {
  return { serverMs: localMs + skewMs, resolutionMs: 1, sentMs: localMs, localMs };
}

/**
 * Compare two keys in UTF-8 byte order, the order S3 lists them in (its sign only). Computed on
 * the UTF-16 code units, without encoding: their order is UTF-8's except that surrogate pairs
 * (code points past U+FFFF) sort after U+E000..U+FFFF. Allocation-free, because the memory
 * store's binary searches and the file store's directory sorts call it for every step.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

/**
 * The prefix a listing with `delimiter` rolls `key` up into (S3's common prefix): `key` up to and
 * including the first `delimiter` after `prefix`, or `undefined` when the key is listed itself
 * (no delimiter, an empty one, a key outside `prefix`, or no delimiter after it).
 */
export function rolledUpPrefix(
  key: string,
  prefix: string,
  delimiter: string | undefined,
): string | undefined {
  if (delimiter === undefined || delimiter === "" || !key.startsWith(prefix)) return undefined;
  const at = key.indexOf(delimiter, prefix.length);
  return at === -1 ? undefined : key.slice(0, at + delimiter.length);
}

/** True when two ETags name the same version, ignoring quotes and a weak `W/` prefix. */
export function sameEtag(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return normalizeEtag(a) === normalizeEtag(b);
}

/** An ETag without `W/` and surrounding quotes. */
export function normalizeEtag(etag: string): string {
  let e = etag.trim();
  if (e.startsWith("W/")) e = e.slice(2);
  if (e.length >= 2 && e.startsWith('"') && e.endsWith('"')) e = e.slice(1, -1);
  return e;
}

const utf8 = new TextEncoder();

/** UTF-8 bytes of a string body (or the bytes as given). */
export function toBytes(body: Uint8Array | string): Uint8Array {
  return typeof body === "string" ? utf8.encode(body) : body;
}
