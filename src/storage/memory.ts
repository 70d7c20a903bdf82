/**
 * An in-process storage that behaves like one S3 bucket: versions, delete markers, conditional
 * writes and paginated listings in UTF-8 byte order. For tests, examples and single-process use.
 *
 * Web-standard only (no `node:` imports), so it runs unchanged on Node, Bun, Deno and browsers.
 * Nothing is persisted, and every version is kept until {@link MemoryStorage.deleteVersion}
 * removes it, just as a versioned bucket keeps them until a lifecycle rule does.
 *
 * @module
 */
import { NotFoundError, PreconditionFailedError, ValidationError } from "../errors.ts";
import { checkKey, checkPutOptions, pageSize } from "./checks.ts";
import { checkMaxBytes, objectTooLarge, overBound } from "./max-bytes.ts";
import {
  compareKeys,
  type GetOptions,
  type GetResult,
  type HeadResult,
  type ListOptions,
  type ListResult,
  type ListVersionsOptions,
  type ListVersionsResult,
  localClockSample,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  rolledUpPrefix,
  type ServerTimeSample,
  type Storage,
  type StorageLocation,
  sameEtag,
  toBytes,
  type VersionInfo,
  type VersioningStatus,
  type VersionTarget,
} from "./storage.ts";

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * The bucket's versioning status. Defaults to `"Enabled"`. When not enabled, a write replaces
   * the single `"null"` version, as S3 does; `"Suspended"` also leaves a `"null"` delete marker.
   */
  versioning?: VersioningStatus;
  /** The clock, in epoch milliseconds. Defaults to `Date.now`; inject one for deterministic tests. */
  now?: () => number;
  /**
   * How far the simulated server clock runs ahead of `now` (negative: behind), in milliseconds.
   * Lets tests check that callers derive time from {@link Storage.serverTime}, not the local clock.
   */
  clockSkewMs?: number;
  /** The name shown in messages. Defaults to `memory:`. */
  name?: string;
}

interface StoredVersion {
  readonly versionId: string;
  readonly isDeleteMarker: boolean;
  readonly body: Uint8Array;
  readonly etag: string;
  readonly contentType: string;
  readonly lastModified: number;
}

const NULL_VERSION = "null";
const _utf8 = new TextEncoder();

/**
 * A bucket held in memory. Every call completes atomically (nothing is awaited inside), so
 * conditional writes from concurrent callers have exactly one winner, as on S3.
 */
export class MemoryStorage implements Storage {
  /** The name shown in messages. */
  readonly name: string;
  /** In-process: conditional writes are evaluated here, so there is nothing for doctor to prove. */
  readonly location: StorageLocation;
  readonly #versioning: VersioningStatus;
  readonly #now: () => number;
  readonly #skew: number;
  /** Versions of each key, oldest first. */
  readonly #objects = new Map<string, StoredVersion[]>();
  /** Every key that has at least one version, in byte order, for range scans. */
  readonly #keys: string[] = [];
  #seq = 0;
  #lastResponse: ServerTimeSample | undefined;

  /** Create an empty bucket. */
  constructor(options: MemoryStorageOptions = {}) {
    const versioning = options.versioning ?? "Enabled";
    if (versioning !== "Enabled" && versioning !== "Suspended" && versioning !== "Disabled") {
      throw new ValidationError(
        `MemoryStorage: versioning must be "Enabled", "Suspended" or "Disabled", not ${JSON.stringify(versioning)}`,
      );
    }
    this.#versioning = versioning;
    this.#now = options.now ?? Date.now;
    this.#skew = options.clockSkewMs ?? 0;
    this.name = options.name ?? "memory:";
    this.location = { driver: "memory", endpoint: "memory:", bucket: this.name, local: true };
  }

  /** Read the current version, or the one named by `options.versionId`. */
  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    this.#respond();
    checkKey(key);
    checkMaxBytes(options.maxBytes);
    const v = this.#find(key, options.versionId);
    if (overBound(v.body.length, options.maxBytes))
      throw objectTooLarge(this.name, key, v.body.length, options.maxBytes!);
    return {
      body: v.body.slice(),
      etag: v.etag,
      versionId: publicVersionId(v),
      lastModified: new Date(v.lastModified),
      contentType: v.contentType,
    };
  }

  /** Read the current version's metadata. */
  async head(key: string): Promise<HeadResult> {
    this.#respond();
    checkKey(key);
    const v = this.#find(key, undefined);
    return {
      etag: v.etag,
      size: v.body.length,
      versionId: publicVersionId(v),
      lastModified: new Date(v.lastModified),
    };
  }

  /** Write a new version, honouring `ifMatch` / `ifNoneMatch` against the current version. */
  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    this.#respond();
    checkKey(key);
    checkPutOptions(key, options);
    const current = this.#current(key);
    if (options.ifNoneMatch === "*" && current !== undefined) {
      throw new PreconditionFailedError(
        `${key} already exists in ${this.name}: If-None-Match: * only creates absent keys; re-read it instead`,
        { status: 412, s3Code: "PreconditionFailed", key },
      );
    }
    if (options.ifMatch !== undefined) {
      if (current === undefined) {
        throw new NotFoundError(
          `${key} does not exist in ${this.name}, so If-Match cannot hold; create it with ifNoneMatch: "*"`,
          { status: 404, s3Code: "NoSuchKey", key },
        );
      }
      if (!sameEtag(current.etag, options.ifMatch)) {
        throw new PreconditionFailedError(
          `${key} changed in ${this.name} (ETag ${current.etag}, not ${options.ifMatch}): re-read it and decide again`,
          { status: 412, s3Code: "PreconditionFailed", key },
        );
      }
    }
    const seq = ++this.#seq;
    const version: StoredVersion = {
      versionId: this.#versioning === "Enabled" ? formatVersionId(seq) : NULL_VERSION,
      isDeleteMarker: false,
      // Copied so the caller can reuse its buffer without changing what is stored.
      body: toBytes(body).slice(),
      etag: `"${seq.toString(16).padStart(32, "0")}"`,
      contentType: options.contentType ?? "application/octet-stream",
      lastModified: this.#now(),
    };
    this.#append(key, version);
    return { etag: version.etag, versionId: publicVersionId(version) };
  }

  /**
   * Delete the current version. With versioning enabled this adds a delete marker (even when the
   * key is already missing, as S3 does); suspended replaces the `"null"` version with a marker;
   * disabled removes the object.
   */
  async delete(key: string): Promise<void> {
    this.#respond();
    checkKey(key);
    if (this.#versioning === "Disabled") {
      this.#remove(key, NULL_VERSION);
      return;
    }
    const seq = ++this.#seq;
    this.#append(key, {
      versionId: this.#versioning === "Enabled" ? formatVersionId(seq) : NULL_VERSION,
      isDeleteMarker: true,
      body: new Uint8Array(0),
      etag: "",
      contentType: "",
      lastModified: this.#now(),
    });
  }

  /**
   * Permanently remove one version or delete marker (`DELETE ?versionId=`). When it was the
   * current one, the next newer survivor becomes current. A missing version is not an error.
   */
  async deleteVersion(key: string, versionId: string): Promise<void> {
    this.#respond();
    checkKey(key);
    this.#remove(key, versionId);
  }

  /** {@inheritDoc Storage.deleteVersions} One call, as one `DeleteObjects` request would be. */
  async deleteVersions(targets: readonly VersionTarget[]): Promise<void> {
    this.#respond();
    for (const { key } of targets) checkKey(key);
    for (const { key, versionId } of targets) this.#remove(key, versionId);
  }

  /** One page of current keys (ListObjectsV2), keys under a `delimiter` rolled up. */
  async list(options: ListOptions = {}): Promise<ListResult> {
    this.#respond();
    const maxKeys = pageSize(options.maxKeys);
    const prefix = options.prefix ?? "";
    const delimiter = options.delimiter || undefined;
    // S3 ignores start-after once a continuation token is given: the token is further along.
    const after = options.continuationToken ?? options.startAfter;
    let i = this.#lowerBound(prefix);
    if (after !== undefined) {
      i = Math.max(i, this.#upperBound(after));
      // Entries, not keys, come after `after`: a rolled-up prefix at or before it is done with
      // (a token that names one must not bring it back), so skip every key under it.
      const done = rolledUpPrefix(after, prefix, delimiter);
      if (done !== undefined) i = Math.max(i, this.#prefixEnd(done));
    }
    const objects: ObjectInfo[] = [];
    const prefixes: string[] = [];
    let last = "";
    let isTruncated = false;
    while (i < this.#keys.length) {
      const key = this.#keys[i]!;
      if (!key.startsWith(prefix)) break;
      const v = this.#current(key);
      if (v === undefined) {
        i++;
        continue;
      }
      if (objects.length + prefixes.length === maxKeys) {
        isTruncated = true;
        break;
      }
      const rolled = rolledUpPrefix(key, prefix, delimiter);
      if (rolled !== undefined) {
        prefixes.push(rolled);
        last = rolled;
        // A binary search, not a walk: one rolled-up prefix may hold 100,000 keys.
        i = this.#prefixEnd(rolled);
        continue;
      }
      objects.push({
        key,
        etag: v.etag,
        size: v.body.length,
        lastModified: new Date(v.lastModified),
      });
      last = key;
      i++;
    }
    const result: ListResult = { objects, isTruncated };
    if (delimiter !== undefined) result.prefixes = prefixes;
    if (isTruncated) result.nextContinuationToken = last;
    return result;
  }

  /** One page of versions and delete markers (ListObjectVersions), newest first per key. */
  async listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    this.#respond();
    const maxKeys = pageSize(options.maxKeys);
    const { prefix, keyMarker, versionIdMarker } = options;
    if (versionIdMarker !== undefined && keyMarker === undefined) {
      throw new ValidationError(
        "listVersions: versionIdMarker needs the keyMarker it came with; pass both from the previous page",
      );
    }
    let i = this.#lowerBound(prefix);
    if (keyMarker !== undefined) {
      // With a version marker the marker key may still have older versions to return.
      const start =
        versionIdMarker === undefined ? this.#upperBound(keyMarker) : this.#lowerBound(keyMarker);
      i = Math.max(i, start);
    }
    const versions: VersionInfo[] = [];
    let isTruncated = false;
    scan: for (; i < this.#keys.length; i++) {
      const key = this.#keys[i]!;
      if (!key.startsWith(prefix)) break;
      const stored = this.#objects.get(key)!;
      let j = stored.length - 1;
      if (key === keyMarker && versionIdMarker !== undefined) {
        const at = stored.findIndex((v) => v.versionId === versionIdMarker);
        // An unknown marker means the page boundary version is gone; nothing older is known.
        j = at === -1 ? -1 : at - 1;
      }
      for (; j >= 0; j--) {
        if (versions.length === maxKeys) {
          isTruncated = true;
          break scan;
        }
        const v = stored[j]!;
        const info: VersionInfo = {
          key,
          versionId: v.versionId,
          isLatest: j === stored.length - 1,
          isDeleteMarker: v.isDeleteMarker,
          lastModified: new Date(v.lastModified),
          size: v.body.length,
        };
        if (!v.isDeleteMarker) info.etag = v.etag;
        versions.push(info);
      }
    }
    const result: ListVersionsResult = { versions, isTruncated };
    if (isTruncated) {
      const last = versions[versions.length - 1]!;
      result.nextKeyMarker = last.key;
      result.nextVersionIdMarker = last.versionId;
    }
    return result;
  }

  /** The versioning status given at construction. */
  async versioning(): Promise<VersioningStatus> {
    this.#respond();
    return this.#versioning;
  }

  /** The simulated server clock at the last call, or `undefined` before any call. */
  serverTime(): ServerTimeSample | undefined {
    return this.#lastResponse === undefined ? undefined : { ...this.#lastResponse };
  }

  #respond(): void {
    // Answered on the spot: sent and arrived at the same instant, with an exact server time.
    this.#lastResponse = localClockSample(this.#now(), this.#skew);
  }

  /** The current version unless it is missing or a delete marker. */
  #current(key: string): StoredVersion | undefined {
    const stored = this.#objects.get(key);
    const v = stored?.[stored.length - 1];
    return v === undefined || v.isDeleteMarker ? undefined : v;
  }

  #find(key: string, versionId: string | undefined): StoredVersion {
    if (versionId === undefined) {
      const v = this.#current(key);
      if (v === undefined) {
        throw new NotFoundError(`${key} does not exist in ${this.name}`, {
          status: 404,
          s3Code: "NoSuchKey",
          key,
        });
      }
      return v;
    }
    const v = this.#objects.get(key)?.find((x) => x.versionId === versionId);
    if (v === undefined || v.isDeleteMarker) {
      throw new NotFoundError(
        v === undefined
          ? `${key} has no version ${versionId} in ${this.name}; list its versions with listVersions`
          : `version ${versionId} of ${key} is a delete marker and has no body`,
        {
          status: v === undefined ? 404 : 405,
          s3Code: v === undefined ? "NoSuchVersion" : "MethodNotAllowed",
          key,
        },
      );
    }
    return v;
  }

  #append(key: string, version: StoredVersion): void {
    let stored = this.#objects.get(key);
    if (stored === undefined) {
      stored = [];
      this.#objects.set(key, stored);
      this.#keys.splice(this.#lowerBound(key), 0, key);
    } else if (version.versionId === NULL_VERSION) {
      // An unversioned write replaces the previous "null" version wherever it sits in history.
      const at = stored.findIndex((v) => v.versionId === NULL_VERSION);
      if (at !== -1) stored.splice(at, 1);
    }
    stored.push(version);
  }

  #remove(key: string, versionId: string): void {
    const stored = this.#objects.get(key);
    if (stored === undefined) return;
    const at = stored.findIndex((v) => v.versionId === versionId);
    if (at === -1) return;
    stored.splice(at, 1);
    if (stored.length === 0) {
      this.#objects.delete(key);
      this.#keys.splice(this.#lowerBound(key), 1);
    }
  }

  /** Index of the first key not before `key`. */
  #lowerBound(key: string): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.#keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first key after every key that starts with `prefix`. */
  #prefixEnd(prefix: string): number {
    // Keys from `prefix` on start with it up to some index and never again after it.
    let lo = this.#lowerBound(prefix);
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#keys[mid]!.startsWith(prefix)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first key after `key`. */
  #upperBound(key: string): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.#keys[mid]!, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Create an in-memory bucket; shorthand for `new MemoryStorage(options)`. */
export function memoryStorage(options: MemoryStorageOptions = {}): MemoryStorage {
  return new MemoryStorage(options);
}

function formatVersionId(seq: number): string {
  // Fixed width keeps string order equal to write order, which makes ids easy to eyeball.
  return seq.toString().padStart(12, "0");
}

function publicVersionId(v: StoredVersion): string | null {
  return v.versionId === NULL_VERSION ? null : v.versionId;
}
