/**
 * A storage in a local directory, for development and single-machine deployments without an
 * object store. Conditional writes are atomic across processes on one machine, and every version
 * is kept, so it behaves like a versioned bucket. The layout on disk is described in
 * `./layout.ts`; per-key locks are in `./lock.ts`.
 *
 * Uses only `node:fs/promises` and `node:path`, which Bun and Deno implement too.
 *
 * @module
 */
import { mkdir, rename, unlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  AmbiguousWriteError,
  NotFoundError,
  OqError,
  PreconditionFailedError,
  ValidationError,
} from "../../errors.ts";
import { checkKey, checkPutOptions, pageSize } from "../../storage/checks.ts";
import { checkMaxBytes, objectTooLarge, overBound } from "../../storage/max-bytes.ts";
import {
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
} from "../../storage/storage.ts";
import {
  fsError,
  ignoreMissing,
  prune,
  readIfAtMost,
  readIfExists,
  sweepTemp,
  tempName,
  withParent,
} from "./fs.ts";
import {
  type Dirs,
  decodeObject,
  dirsOf,
  encodeObject,
  etagOf,
  historyDir,
  nextVersionId,
  readHistory,
  setLive,
  shownBy,
  timeOf,
  versionFile,
} from "./layout.ts";
import { KeyLocks, lockName } from "./lock.ts";
import { decodeSegment, encodeSegment, type VersionEntry } from "./names.ts";
import { type WalkSkip, walk } from "./walk.ts";

/**
 * Room for a version file's header line (its key and content type) beyond a read's `maxBytes`:
 * a key is at most 1,024 bytes, six times that escaped as JSON, and a content type is short.
 */
const HEADER_ROOM_BYTES = 64 * 1024;

/** Options of {@link FileStorage}. */
export interface FileStorageOptions {
  /** The directory to keep objects in. Created on first write. */
  root: string;
  /** The clock, in epoch milliseconds, for version times. Defaults to `Date.now`. */
  now?: () => number;
  /**
   * A key lock older than this many milliseconds is taken to belong to a crashed process and is
   * broken. Writes hold a lock for about a millisecond, so the default of 10 s is generous.
   */
  lockStaleMs?: number;
  /** Give up waiting for a key lock after this many milliseconds (`ConflictError`). Default 30 s. */
  lockTimeoutMs?: number;
}

/** A bucket in a local directory. See `./layout.ts` for the layout on disk. */
export class FileStorage implements Storage {
  /** `file:` and the root as given. */
  readonly name: string;
  /** On this host: oq's own locks evaluate conditional writes, so doctor has nothing to prove. */
  readonly location: StorageLocation;
  readonly #dirs: Dirs;
  readonly #now: () => number;
  readonly #locks: KeyLocks;
  #ready: Promise<void> | undefined;
  #lastResponse: ServerTimeSample | undefined;

  /** Open a directory store; the directory is created on the first write. */
  constructor(options: FileStorageOptions) {
    if (typeof options?.root !== "string" || options.root === "") {
      throw new ValidationError(
        "FileStorage needs a root directory: new FileStorage({ root: './.oq' })",
      );
    }
    this.name = `file:${options.root}`;
    this.#dirs = dirsOf(resolve(options.root));
    this.location = {
      driver: "file",
      endpoint: `file:${resolve(options.root)}`,
      bucket: "",
      local: true,
    };
    this.#now = options.now ?? Date.now;
    this.#locks = new KeyLocks({
      dir: this.#dirs.locks,
      name: this.name,
      staleMs: options.lockStaleMs ?? 10_000,
      timeoutMs: options.lockTimeoutMs ?? 30_000,
      ready: () => this.#ensureRoot(),
    });
  }

  /** Read the current version, or the one named by `options.versionId`. */
  get(key: string, options: GetOptions = {}): Promise<GetResult> {
    return this.#op("get", key, async () => {
      checkMaxBytes(options.maxBytes);
      const wanted = options.versionId;
      // A concurrent deleteVersion can remove the file between the two reads; look again.
      for (let attempt = 0; attempt < 3; attempt++) {
        const history = await this.#history(key);
        const v = wanted === undefined ? history[0] : history.find((x) => x.versionId === wanted);
        if (v === undefined || v.isDeleteMarker) throw this.#missing(key, wanted, v);
        const data = await this.#readVersion(key, v, options.maxBytes);
        if (data === undefined) continue;
        const { header, body } = decodeObject(data, key);
        if (overBound(body.length, options.maxBytes))
          throw objectTooLarge(this.name, key, body.length, options.maxBytes!);
        return {
          body,
          etag: etagOf(v.versionId),
          versionId: v.versionId,
          lastModified: timeOf(v.versionId),
          contentType: header.contentType,
        };
      }
      throw this.#missing(key, wanted, undefined);
    });
  }

  /**
   * The file of version `v` of `key`, or `undefined` when it is gone. With `maxBytes`, an object
   * over it is refused unread: by the size its name records, then by the file's own size (a
   * file swapped by hand), leaving room for the header line.
   */
  async #readVersion(
    key: string,
    v: VersionEntry,
    maxBytes: number | undefined,
  ): Promise<Uint8Array | undefined> {
    const path = join(historyDir(this.#dirs, key), versionFile(v));
    if (maxBytes === undefined) return readIfExists(path);
    if (v.size > maxBytes) throw objectTooLarge(this.name, key, v.size, maxBytes);
    const data = await readIfAtMost(path, maxBytes + HEADER_ROOM_BYTES);
    if (typeof data === "number") throw objectTooLarge(this.name, key, data, maxBytes, true);
    return data;
  }

  /** Read the current version's metadata (one directory read). */
  head(key: string): Promise<HeadResult> {
    return this.#op("head", key, async () => {
      const v = (await this.#history(key))[0];
      if (v === undefined || v.isDeleteMarker) throw this.#missing(key, undefined, v);
      return {
        etag: etagOf(v.versionId),
        size: v.size,
        versionId: v.versionId,
        lastModified: timeOf(v.versionId),
      };
    });
  }

  /** Write a new version, honouring `ifMatch` / `ifNoneMatch` atomically across processes. */
  put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    return this.#op("put", key, async () => {
      checkPutOptions(key, options);
      const bytes = toBytes(body);
      const data = encodeObject(
        { key, contentType: options.contentType ?? "application/octet-stream" },
        bytes,
      );
      // Written before taking the lock, so a large body never holds it (or looks like a crash).
      await this.#ensureRoot();
      const temp = join(this.#dirs.tmp, tempName());
      await writeFile(temp, data, { flag: "wx" });
      let committed = false;
      try {
        return await this.#locks.withLock(key, async () => {
          const history = await this.#history(key);
          const latest = history[0];
          const current = latest === undefined || latest.isDeleteMarker ? undefined : latest;
          this.#checkPreconditions(key, current, options);
          const next: VersionEntry = {
            versionId: nextVersionId(this.#now(), latest?.versionId),
            isDeleteMarker: false,
            size: bytes.length,
          };
          const dir = historyDir(this.#dirs, key);
          // The rename into versions/ is the commit point: from here on the version exists.
          await withParent(dir, () => rename(temp, join(dir, versionFile(next))));
          committed = true;
          try {
            await setLive(this.#dirs, key, current, next);
          } catch (error) {
            throw new AmbiguousWriteError(
              `put ${key} in ${this.name} wrote version ${next.versionId} but could not update the listing index (${String(error)}); re-read the key before deciding`,
              { key, cause: error },
            );
          }
          return { etag: etagOf(next.versionId), versionId: next.versionId };
        });
      } finally {
        if (!committed) await unlink(temp).catch(() => undefined);
      }
    });
  }

  /** Throws unless `ifMatch` / `ifNoneMatch` hold for the current version `current`. */
  #checkPreconditions(key: string, current: VersionEntry | undefined, options: PutOptions): void {
    if (options.ifNoneMatch === "*" && current !== undefined) {
      throw new PreconditionFailedError(
        `${key} already exists in ${this.name}: If-None-Match: * only creates absent keys; re-read it instead`,
        { status: 412, key },
      );
    }
    if (options.ifMatch !== undefined) {
      if (current === undefined) {
        throw new NotFoundError(
          `${key} does not exist in ${this.name}, so If-Match cannot hold; create it with ifNoneMatch: "*"`,
          { status: 404, key },
        );
      }
      if (!sameEtag(etagOf(current.versionId), options.ifMatch)) {
        throw new PreconditionFailedError(
          `${key} changed in ${this.name} (ETag ${etagOf(current.versionId)}, not ${options.ifMatch}): re-read it and decide again`,
          { status: 412, key },
        );
      }
    }
  }

  /**
   * Delete the current version by adding a delete marker; the history stays. Deleting a key that
   * is missing or already deleted adds nothing (S3 would add another marker; nothing reads it).
   */
  delete(key: string): Promise<void> {
    return this.#op("delete", key, () =>
      this.#locks.withLock(key, async () => {
        const history = await this.#history(key);
        const latest = history[0];
        if (latest === undefined) return;
        if (latest.isDeleteMarker) {
          // A crash after the marker but before the live entry went would leave a ghost in
          // listings; deleting again is how a caller clears it.
          const shown = history.find((v) => !v.isDeleteMarker);
          if (shown !== undefined) await setLive(this.#dirs, key, shown, undefined);
          return;
        }
        const marker: VersionEntry = {
          versionId: nextVersionId(this.#now(), latest.versionId),
          isDeleteMarker: true,
          size: 0,
        };
        const dir = historyDir(this.#dirs, key);
        await writeFile(join(dir, versionFile(marker)), new Uint8Array(0), { flag: "wx" });
        await setLive(this.#dirs, key, latest, undefined);
      }),
    );
  }

  /**
   * Permanently remove one version or delete marker. When it was the current one, the next newer
   * survivor becomes current. A missing version is not an error.
   */
  deleteVersion(key: string, versionId: string): Promise<void> {
    return this.#op("deleteVersion", key, () =>
      this.#locks.withLock(key, async () => {
        const history = await this.#history(key);
        const at = history.findIndex((v) => v.versionId === versionId);
        if (at === -1) return;
        const dir = historyDir(this.#dirs, key);
        await unlink(join(dir, versionFile(history[at]!))).catch(ignoreMissing);
        if (at === 0) {
          const before = shownBy(history[0]);
          const after = shownBy(history[1]);
          if (before !== after) await setLive(this.#dirs, key, before, after);
        }
        if (history.length === 1) await prune(dir, this.#dirs.versions);
      }),
    );
  }

  /**
   * One page of current keys in UTF-8 byte order (ListObjectsV2), keys under a `delimiter` rolled
   * up, from directory reads only.
   */
  list(options: ListOptions = {}): Promise<ListResult> {
    return this.#op("list", undefined, async () => {
      const maxKeys = pageSize(options.maxKeys);
      const prefix = options.prefix ?? "";
      const delimiter = options.delimiter || undefined;
      const after = options.continuationToken ?? options.startAfter;
      // Entries, not keys, come after `after`: a rolled-up prefix at or before it is done with
      // (a token that names one must not bring it back), so its keys are skipped.
      const skip: WalkSkip = {};
      const done = after === undefined ? undefined : rolledUpPrefix(after, prefix, delimiter);
      if (done !== undefined) skip.prefix = done;
      const objects: ObjectInfo[] = [];
      const prefixes: string[] = [];
      let last = "";
      let isTruncated = false;
      for await (const leaf of walk(this.#dirs.live, prefix, after, false, "live", skip)) {
        if (objects.length + prefixes.length === maxKeys) {
          isTruncated = true;
          break;
        }
        const rolled = rolledUpPrefix(leaf.key, prefix, delimiter);
        if (rolled !== undefined) {
          prefixes.push(rolled);
          last = rolled;
          skip.prefix = rolled;
          continue;
        }
        const v = leaf.current!;
        objects.push({
          key: leaf.key,
          etag: etagOf(v.versionId),
          size: v.size,
          lastModified: timeOf(v.versionId),
        });
        last = leaf.key;
      }
      const result: ListResult = { objects, isTruncated };
      if (delimiter !== undefined) result.prefixes = prefixes;
      if (isTruncated) result.nextContinuationToken = last;
      return result;
    });
  }

  /** One page of versions and delete markers (ListObjectVersions), newest first per key. */
  listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    return this.#op("listVersions", undefined, async () => {
      const maxKeys = pageSize(options.maxKeys);
      const { prefix, keyMarker, versionIdMarker } = options;
      if (versionIdMarker !== undefined && keyMarker === undefined) {
        throw new ValidationError(
          "listVersions: versionIdMarker needs the keyMarker it came with; pass both from the previous page",
        );
      }
      // With a version marker the marker key itself may still have older versions to return.
      const inclusive = versionIdMarker !== undefined;
      const versions: VersionInfo[] = [];
      let isTruncated = false;
      scan: for await (const leaf of walk(
        this.#dirs.versions,
        prefix,
        keyMarker,
        inclusive,
        "history",
      )) {
        const entries = await readHistory(leaf.path);
        const resume = leaf.key === keyMarker && versionIdMarker !== undefined;
        for (let i = 0; i < entries.length; i++) {
          const v = entries[i]!;
          // Ids are fixed-width, so string order is age order.
          if (resume && v.versionId >= versionIdMarker) continue;
          if (versions.length === maxKeys) {
            isTruncated = true;
            break scan;
          }
          const info: VersionInfo = {
            key: leaf.key,
            versionId: v.versionId,
            isLatest: i === 0,
            isDeleteMarker: v.isDeleteMarker,
            lastModified: timeOf(v.versionId),
            size: v.size,
          };
          if (!v.isDeleteMarker) info.etag = etagOf(v.versionId);
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
    });
  }

  /** Always `"Enabled"`: every version is kept. */
  async versioning(): Promise<VersioningStatus> {
    this.#respond();
    return "Enabled";
  }

  /** The local clock at the last call (there is no server), or `undefined` before any call. */
  serverTime(): ServerTimeSample | undefined {
    return this.#lastResponse === undefined ? undefined : { ...this.#lastResponse };
  }

  #respond(): void {
    // The "server" is this machine: its clock is the local one, exactly.
    this.#lastResponse = localClockSample(this.#now());
  }

  /** Run one public operation: validate the key, and turn file-system errors into typed ones. */
  async #op<T>(op: string, key: string | undefined, fn: () => Promise<T>): Promise<T> {
    this.#respond();
    try {
      if (key !== undefined) checkKey(key);
      return await fn();
    } catch (error) {
      if (error instanceof OqError) throw error;
      throw fsError(op, key, this.name, error);
    }
  }

  #missing(key: string, versionId: string | undefined, found: VersionEntry | undefined): OqError {
    if (versionId === undefined) {
      return new NotFoundError(`${key} does not exist in ${this.name}`, { status: 404, key });
    }
    return new NotFoundError(
      found === undefined
        ? `${key} has no version ${versionId} in ${this.name}; list its versions with listVersions`
        : `version ${versionId} of ${key} is a delete marker and has no body`,
      { status: found === undefined ? 404 : 405, key },
    );
  }

  /** Every version of `key`, newest first. */
  #history(key: string): Promise<VersionEntry[]> {
    return readHistory(historyDir(this.#dirs, key));
  }

  #ensureRoot(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(this.#dirs.tmp, { recursive: true });
      await mkdir(this.#dirs.locks, { recursive: true });
      // Not awaited: bodies left by processes that died mid-write only waste space.
      void sweepTemp(this.#dirs.tmp).catch(() => undefined);
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }
}

/**
 * Pure helpers, exported for unit tests only (not re-exported from the package): segment names
 * must round-trip.
 *
 * @internal
 */
export const internals: {
  encodeSegment: (segment: string) => string;
  decodeSegment: (name: string) => string | undefined;
  lockName: (key: string) => string;
} = { encodeSegment, decodeSegment, lockName };
