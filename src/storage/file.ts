/**
 * A storage in a local directory, for development and single-machine deployments without an
 * object store. Conditional writes are atomic across processes on one machine, and every version
 * is kept, so it behaves like a versioned bucket.
 *
 * Layout under `root`. Each key segment becomes one directory level, so listing a prefix reads
 * only that subtree, and `seg` below is a segment encoded as a safe file name:
 *
 * ```
 * versions/<seg>/.../<seg>~o/<id>.<size>  every version of a key: a JSON header line, then the body
 * versions/<seg>/.../<seg>~o/<id>.del     a delete marker
 * live/<seg>/.../<seg>~<id>.<size>        an empty file per existing key, naming its current version
 * locks/<hash>                            per-key write locks (directories: mkdir is atomic)
 * tmp/                                    bodies being written, renamed into versions/ when complete
 * ```
 *
 * `versions/` is the truth and serves `get` and `head`. `live/` is an index that lets a listing
 * learn every key's ETag, size and time from directory reads alone, and skip deleted keys without
 * touching their history. A writer commits to `versions/` first, then renames the key's `live/`
 * entry; a crash between the two leaves a listing stale (never `get`) until the key's next write.
 *
 * Uses only `node:fs/promises` and `node:path`, which Bun and Deno implement too.
 *
 * @module
 */
import { mkdir, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  AccessDeniedError,
  AmbiguousWriteError,
  ConflictError,
  NotFoundError,
  OqError,
  PreconditionFailedError,
  StorageError,
  ValidationError,
} from "../errors.ts";
import { checkKey, checkPutOptions, pageSize } from "./checks.ts";
import {
  type GetOptions,
  type GetResult,
  type HeadResult,
  type ListOptions,
  type ListResult,
  type ListVersionsOptions,
  type ListVersionsResult,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  type Storage,
  sameEtag,
  toBytes,
  type VersionInfo,
  type VersioningStatus,
} from "./storage.ts";

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

/** Separates an encoded segment from what follows in a leaf name; encoding never emits `~`. */
const SEP = "~";
/** The tail of a history directory's name. */
const HISTORY = "o";
/** The directory name of an empty key segment (as in `a//b`), which has no encoded characters. */
const EMPTY_DIR = "~";
/** Encoded segments stay below this, so that a live entry (`seg~<id>.<size>`) fits in 255 bytes. */
const MAX_SEGMENT_NAME = 200;
const VERSION_RE = /^(\d{15})-(\d{5})-([0-9a-f]{8})$/;
const VERSION_FILE_RE = /^(\d{15}-\d{5}-[0-9a-f]{8})\.(del|\d+)$/;
/** A leaf name's part after the segment: `o` in versions/, `<id>.<size>` in live/. */
const LIVE_TAIL_RE = /^(\d{15}-\d{5}-[0-9a-f]{8})\.(\d+)$/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A version file's header line. */
interface Header {
  key: string;
  contentType: string;
}

/** One version (or delete marker) as its file name describes it. */
interface VersionEntry {
  versionId: string;
  isDeleteMarker: boolean;
  size: number;
}

/** A key found by a walk: `path` is its history directory or its live entry. */
interface Leaf {
  key: string;
  path: string;
  /** For live entries: the current version the name records. */
  current?: VersionEntry;
}

/** A bucket in a local directory. See the module documentation for the layout. */
export class FileStorage implements Storage {
  /** `file:` and the root as given. */
  readonly name: string;
  readonly #root: string;
  readonly #live: string;
  readonly #versions: string;
  readonly #locks: string;
  readonly #tmp: string;
  readonly #now: () => number;
  readonly #lockStaleMs: number;
  readonly #lockTimeoutMs: number;
  /** Same-process writers queue here first, so only other processes contend for the lock dir. */
  readonly #queues = new Map<string, Promise<void>>();
  #ready: Promise<void> | undefined;
  #lastResponse: { serverMs: number; localMs: number } | undefined;

  /** Open a directory store; the directory is created on the first write. */
  constructor(options: FileStorageOptions) {
    if (typeof options?.root !== "string" || options.root === "") {
      throw new ValidationError(
        "FileStorage needs a root directory: new FileStorage({ root: './.oq' })",
      );
    }
    this.name = `file:${options.root}`;
    this.#root = resolve(options.root);
    this.#live = join(this.#root, "live");
    this.#versions = join(this.#root, "versions");
    this.#locks = join(this.#root, "locks");
    this.#tmp = join(this.#root, "tmp");
    this.#now = options.now ?? Date.now;
    this.#lockStaleMs = options.lockStaleMs ?? 10_000;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 30_000;
  }

  /** Read the current version, or the one named by `options.versionId`. */
  get(key: string, options: GetOptions = {}): Promise<GetResult> {
    return this.#op("get", key, async () => {
      const wanted = options.versionId;
      // A concurrent deleteVersion can remove the file between the two reads; look again.
      for (let attempt = 0; attempt < 3; attempt++) {
        const history = await this.#history(key);
        const v = wanted === undefined ? history[0] : history.find((x) => x.versionId === wanted);
        if (v === undefined || v.isDeleteMarker) throw this.#missing(key, wanted, v);
        const data = await readIfExists(join(this.#historyDir(key), versionFile(v)));
        if (data === undefined) continue;
        const { header, body } = decodeObject(data, key);
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
      const temp = join(this.#tmp, tempName());
      await writeFile(temp, data, { flag: "wx" });
      let committed = false;
      try {
        return await this.#withLock(key, async () => {
          const history = await this.#history(key);
          const latest = history[0];
          const current = latest === undefined || latest.isDeleteMarker ? undefined : latest;
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
          const next: VersionEntry = {
            versionId: this.#nextVersionId(latest?.versionId),
            isDeleteMarker: false,
            size: bytes.length,
          };
          const dir = this.#historyDir(key);
          // The rename into versions/ is the commit point: from here on the version exists.
          await withParent(dir, () => rename(temp, join(dir, versionFile(next))));
          committed = true;
          try {
            await this.#setLive(key, current, next);
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

  /**
   * Delete the current version by adding a delete marker; the history stays. Deleting a key that
   * is missing or already deleted adds nothing (S3 would add another marker; nothing reads it).
   */
  delete(key: string): Promise<void> {
    return this.#op("delete", key, () =>
      this.#withLock(key, async () => {
        const history = await this.#history(key);
        const latest = history[0];
        if (latest === undefined) return;
        if (latest.isDeleteMarker) {
          // A crash after the marker but before the live entry went would leave a ghost in
          // listings; deleting again is how a caller clears it.
          const shown = history.find((v) => !v.isDeleteMarker);
          if (shown !== undefined) await this.#setLive(key, shown, undefined);
          return;
        }
        const marker: VersionEntry = {
          versionId: this.#nextVersionId(latest.versionId),
          isDeleteMarker: true,
          size: 0,
        };
        const dir = this.#historyDir(key);
        await writeFile(join(dir, versionFile(marker)), new Uint8Array(0), { flag: "wx" });
        await this.#setLive(key, latest, undefined);
      }),
    );
  }

  /**
   * Permanently remove one version or delete marker. When it was the current one, the next newer
   * survivor becomes current. A missing version is not an error.
   */
  deleteVersion(key: string, versionId: string): Promise<void> {
    return this.#op("deleteVersion", key, () =>
      this.#withLock(key, async () => {
        const history = await this.#history(key);
        const at = history.findIndex((v) => v.versionId === versionId);
        if (at === -1) return;
        const dir = this.#historyDir(key);
        await unlink(join(dir, versionFile(history[at]!))).catch(ignoreMissing);
        if (at === 0) {
          const before = shownBy(history[0]);
          const after = shownBy(history[1]);
          if (before !== after) await this.#setLive(key, before, after);
        }
        if (history.length === 1) await prune(dir, this.#versions);
      }),
    );
  }

  /** One page of current keys in UTF-8 byte order (ListObjectsV2), from directory reads only. */
  list(options: ListOptions = {}): Promise<ListResult> {
    return this.#op("list", undefined, async () => {
      const maxKeys = pageSize(options.maxKeys);
      const after = options.continuationToken ?? options.startAfter;
      const objects: ObjectInfo[] = [];
      let isTruncated = false;
      for await (const leaf of walk(this.#live, options.prefix ?? "", after, false, "live")) {
        if (objects.length === maxKeys) {
          isTruncated = true;
          break;
        }
        const v = leaf.current!;
        objects.push({
          key: leaf.key,
          etag: etagOf(v.versionId),
          size: v.size,
          lastModified: timeOf(v.versionId),
        });
      }
      const result: ListResult = { objects, isTruncated };
      if (isTruncated) result.nextContinuationToken = objects[objects.length - 1]!.key;
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
        this.#versions,
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
  serverTime(): { serverMs: number; localMs: number } | undefined {
    return this.#lastResponse === undefined ? undefined : { ...this.#lastResponse };
  }

  #respond(): void {
    const now = this.#now();
    this.#lastResponse = { serverMs: now, localMs: now };
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

  /** The directory holding every version of `key`. */
  #historyDir(key: string): string {
    const segments = key.split("/");
    const last = segments.pop()!;
    return join(this.#versions, ...segments.map(encodeDir), `${encodeStem(last)}${SEP}${HISTORY}`);
  }

  /** The live entry that records `v` as the current version of `key`. */
  #livePath(key: string, v: VersionEntry): string {
    const segments = key.split("/");
    const last = segments.pop()!;
    const name = `${encodeStem(last)}${SEP}${v.versionId}.${v.size}`;
    return join(this.#live, ...segments.map(encodeDir), name);
  }

  /** Every version of `key`, newest first. */
  #history(key: string): Promise<VersionEntry[]> {
    return readHistory(this.#historyDir(key));
  }

  /**
   * Move `key`'s live entry from showing `from` to showing `to` (either may be absent). When the
   * entry is not where `from` says, a crash interrupted an earlier write: rebuild it by scanning.
   */
  async #setLive(
    key: string,
    from: VersionEntry | undefined,
    to: VersionEntry | undefined,
  ): Promise<void> {
    const target = to === undefined ? undefined : this.#livePath(key, to);
    if (from !== undefined) {
      const source = this.#livePath(key, from);
      try {
        if (target === undefined) await unlink(source);
        else await rename(source, target);
        if (target === undefined) await prune(dirname(source), this.#live);
        return;
      } catch (error) {
        if (code(error) !== "ENOENT") throw error;
      }
      await this.#scrubLive(key);
    }
    if (target !== undefined) {
      await withParent(dirname(target), () =>
        writeFile(target, new Uint8Array(0), { flag: "wx" }).catch((error: unknown) => {
          if (code(error) !== "EEXIST") throw error;
        }),
      );
    }
  }

  /** Remove every live entry of `key`, whatever version it names (crash recovery only). */
  async #scrubLive(key: string): Promise<void> {
    const segments = key.split("/");
    const last = segments.pop()!;
    const dir = join(this.#live, ...segments.map(encodeDir));
    const stem = `${encodeStem(last)}${SEP}`;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (code(error) === "ENOENT") return;
      throw error;
    }
    for (const name of names) {
      if (name.startsWith(stem) && LIVE_TAIL_RE.test(name.slice(stem.length))) {
        await unlink(join(dir, name)).catch(ignoreMissing);
      }
    }
    await prune(dir, this.#live);
  }

  /** A version id after `previous`: the clock, made strictly increasing per key. */
  #nextVersionId(previous: string | undefined): string {
    let ms = Math.max(0, Math.floor(this.#now()));
    let seq = 0;
    const prev = previous === undefined ? undefined : VERSION_RE.exec(previous);
    if (prev) {
      const prevMs = Number(prev[1]);
      const prevSeq = Number(prev[2]);
      if (ms <= prevMs) {
        ms = prevMs;
        seq = prevSeq + 1;
        if (seq > 99_999) {
          ms++;
          seq = 0;
        }
      }
    }
    // The random tail keeps ETags unique even if a key's whole history is deleted and rewritten.
    return `${String(ms).padStart(15, "0")}-${String(seq).padStart(5, "0")}-${randomHex(4)}`;
  }

  #ensureRoot(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(this.#tmp, { recursive: true });
      await mkdir(this.#locks, { recursive: true });
      // Not awaited: bodies left by processes that died mid-write only waste space.
      void sweepTemp(this.#tmp).catch(() => undefined);
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  /** Run `fn` holding `key`'s lock: in-process queue first, then the cross-process lock dir. */
  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const id = hashKey(key);
    const previous = this.#queues.get(id) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => {
      done = r;
    });
    this.#queues.set(id, mine);
    await previous;
    try {
      await this.#ensureRoot();
      const lockPath = join(this.#locks, id);
      await this.#acquire(lockPath, key);
      try {
        return await fn();
      } finally {
        await rmdir(lockPath).catch(() => {
          // Gone already: someone judged it stale. Nothing to undo here.
        });
      }
    } finally {
      if (this.#queues.get(id) === mine) this.#queues.delete(id);
      done();
    }
  }

  async #acquire(lockPath: string, key: string): Promise<void> {
    const deadline = Date.now() + this.#lockTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(lockPath);
        return;
      } catch (error) {
        if (code(error) === "ENOENT") {
          await mkdir(this.#locks, { recursive: true });
          continue;
        }
        if (code(error) !== "EEXIST") throw error;
      }
      await this.#breakIfStale(lockPath);
      if (Date.now() > deadline) {
        throw new ConflictError(
          `${key} in ${this.name} stayed locked by another process for ${this.#lockTimeoutMs} ms; nothing was written, retry later`,
          { key },
        );
      }
      // Locks are held for about a millisecond; a short jittered wait avoids lock-step retries.
      await sleep(Math.random() * Math.min(1 + attempt, 20));
    }
  }

  /**
   * Remove a lock left by a crashed process. Breaking goes through a second lock so that two
   * processes that saw the same stale lock cannot both break it and remove a fresh one.
   * Lock ages use the real clock (file times), never the injectable `now`.
   */
  async #breakIfStale(lockPath: string): Promise<void> {
    const seen = await stat(lockPath).catch(() => undefined);
    if (seen === undefined || Date.now() - seen.mtimeMs < this.#lockStaleMs) return;
    const guard = `${lockPath}.break`;
    try {
      await mkdir(guard);
    } catch (error) {
      if (code(error) !== "EEXIST") throw error;
      const g = await stat(guard).catch(() => undefined);
      // A breaker that crashed mid-break leaves its guard; it is as stale as any lock.
      if (g !== undefined && Date.now() - g.mtimeMs >= this.#lockStaleMs) {
        await rmdir(guard).catch(() => undefined);
      }
      return;
    }
    try {
      const again = await stat(lockPath).catch(() => undefined);
      if (again !== undefined && again.ino === seen.ino && again.mtimeMs === seen.mtimeMs) {
        await rmdir(lockPath).catch(() => undefined);
      }
    } finally {
      await rmdir(guard).catch(() => undefined);
    }
  }
}

/** Open a directory store; shorthand for `new FileStorage(options)`. */
export function fileStorage(options: FileStorageOptions): FileStorage {
  return new FileStorage(options);
}

/** The version a live entry shows for a history whose newest entry is `v`. */
function shownBy(v: VersionEntry | undefined): VersionEntry | undefined {
  return v === undefined || v.isDeleteMarker ? undefined : v;
}

// ---------------------------------------------------------------------------------------------
// Key segments as file names.
//
// Names must be unambiguous on case-insensitive and normalising file systems (macOS, Windows),
// never `.`/`..`, never a Windows device name, and contain no `/` or `\`. So only [a-z0-9_-] and
// inner dots stay literal; an upper-case letter becomes `^` and the letter; everything else
// becomes `%XX` per UTF-8 byte. Decoding re-encodes and compares, so foreign files (`.DS_Store`)
// are ignored rather than misread.

const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)/;

function encodeSegment(segment: string): string {
  let out = "";
  const last = segment.length - 1;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d) {
      out += segment[i];
    } else if (c >= 0x41 && c <= 0x5a) {
      out += `^${String.fromCharCode(c + 0x20)}`;
    } else if (c === 0x2e && i !== 0 && i !== last) {
      out += ".";
    } else {
      const cp = segment.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of utf8.encode(String.fromCodePoint(cp))) {
        out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
      }
    }
  }
  if (WINDOWS_DEVICE.test(out))
    out = `%${out.charCodeAt(0).toString(16).toUpperCase()}${out.slice(1)}`;
  return out;
}

function decodeSegment(name: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const ch = name[i]!;
    if (ch === "%") {
      const b = Number.parseInt(name.slice(i + 1, i + 3), 16);
      if (!/^[0-9A-F]{2}$/.test(name.slice(i + 1, i + 3))) return undefined;
      bytes.push(b);
      i += 2;
    } else if (ch === "^") {
      const next = name.charCodeAt(i + 1);
      if (!(next >= 0x61 && next <= 0x7a)) return undefined;
      bytes.push(next - 0x20);
      i++;
    } else {
      bytes.push(ch.charCodeAt(0));
    }
  }
  let segment: string;
  try {
    segment = strictUtf8.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
  return encodeSegment(segment) === name ? segment : undefined;
}

/** Fast path: names that are already safe as they are (most task ids and index segments). */
const PLAIN = /^[a-z0-9_-](?:[a-z0-9._-]*[a-z0-9_-])?$/;

function encodeDir(segment: string): string {
  return segment === "" ? EMPTY_DIR : checkName(encodeSegment(segment), segment);
}

/** A leaf's encoded segment; empty for the empty segment, which `~` after it keeps non-empty. */
function encodeStem(segment: string): string {
  return segment === "" ? "" : checkName(encodeSegment(segment), segment);
}

function checkName(name: string, segment: string): string {
  if (name.length > MAX_SEGMENT_NAME) {
    throw new ValidationError(
      `key segment ${JSON.stringify(segment.slice(0, 40))}... is too long for FileStorage (${name.length} bytes encoded, max ${MAX_SEGMENT_NAME}); use shorter segments between slashes`,
    );
  }
  return name;
}

function decodeName(name: string): string | undefined {
  if (PLAIN.test(name) && !WINDOWS_DEVICE.test(name)) return name;
  return decodeSegment(name);
}

/**
 * A directory entry of either tree, decoded; `undefined` for names oq did not write (such as
 * `.DS_Store`), which are ignored rather than misread.
 */
function parseEntry(
  name: string,
  tree: "live" | "history",
): { segment: string; leaf: boolean; current?: VersionEntry } | undefined {
  if (name === EMPTY_DIR) return { segment: "", leaf: false };
  const sep = name.indexOf(SEP);
  if (sep === -1) {
    const segment = decodeName(name);
    return segment === undefined || segment === "" ? undefined : { segment, leaf: false };
  }
  const stem = name.slice(0, sep);
  const tail = name.slice(sep + 1);
  const segment = stem === "" ? "" : decodeName(stem);
  if (segment === undefined) return undefined;
  if (tree === "history") return tail === HISTORY ? { segment, leaf: true } : undefined;
  const m = LIVE_TAIL_RE.exec(tail);
  if (m === null) return undefined;
  return {
    segment,
    leaf: true,
    current: { versionId: m[1]!, isDeleteMarker: false, size: Number(m[2]) },
  };
}

// ---------------------------------------------------------------------------------------------
// Ordered walks.

/**
 * Yield the leaves of a tree under `prefix` in UTF-8 byte order of their keys, starting after
 * `after` (or at it, with `inclusive`). Only directories that can hold matching keys are read.
 */
async function* walk(
  base: string,
  prefix: string,
  after: string | undefined,
  inclusive: boolean,
  tree: "live" | "history",
): AsyncGenerator<Leaf, void, undefined> {
  const slash = prefix.lastIndexOf("/");
  const dirPart = prefix.slice(0, slash + 1);
  const partial = prefix.slice(slash + 1);
  let start = base;
  if (dirPart !== "") {
    try {
      start = join(base, ...dirPart.slice(0, -1).split("/").map(encodeDir));
    } catch (error) {
      // A segment too long to store cannot have been stored: nothing matches.
      if (error instanceof ValidationError) return;
      throw error;
    }
  }
  yield* walkDir(start, dirPart, partial, after, inclusive, tree);
}

async function* walkDir(
  dir: string,
  keyPrefix: string,
  partial: string,
  after: string | undefined,
  inclusive: boolean,
  tree: "live" | "history",
): AsyncGenerator<Leaf, void, undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return;
    throw error;
  }
  const entries: { sortKey: string; name: string; leaf: boolean; current?: VersionEntry }[] = [];
  for (const name of names) {
    const parsed = parseEntry(name, tree);
    if (parsed === undefined || !parsed.segment.startsWith(partial)) continue;
    const key = keyPrefix + parsed.segment;
    if (parsed.leaf) {
      if (after !== undefined) {
        const c = byteOrder(key, after);
        if (c < 0 || (c === 0 && !inclusive)) continue;
      }
      const entry: (typeof entries)[number] = { sortKey: key, name, leaf: true };
      if (parsed.current !== undefined) entry.current = parsed.current;
      entries.push(entry);
    } else {
      const sortKey = `${key}/`;
      // Every key below starts with sortKey; skip the subtree when all of them sort before `after`.
      if (after !== undefined && !after.startsWith(sortKey) && byteOrder(sortKey, after) < 0) {
        continue;
      }
      entries.push({ sortKey, name, leaf: false });
    }
  }
  // A leaf `k` and a directory `k/` never share a sort key, so this orders the full keys. Two
  // live entries of one key only exist after a crash; the newer one sorts first and wins.
  entries.sort(
    (a, b) =>
      byteOrder(a.sortKey, b.sortKey) ||
      ((b.current?.versionId ?? "") > (a.current?.versionId ?? "") ? 1 : -1),
  );
  let previous: string | undefined;
  for (const e of entries) {
    if (e.sortKey === previous) continue;
    previous = e.sortKey;
    const path = join(dir, e.name);
    if (e.leaf) {
      const leaf: Leaf = { key: e.sortKey, path };
      if (e.current !== undefined) leaf.current = e.current;
      yield leaf;
    } else {
      const inner = after?.startsWith(e.sortKey) ? after : undefined;
      yield* walkDir(path, e.sortKey, "", inner, inclusive, tree);
    }
  }
}

/**
 * UTF-8 byte order without encoding: UTF-16 order except that surrogate pairs (code points past
 * U+FFFF) sort after U+E000..U+FFFF. Same result as `compareKeys`, without allocating,
 * which matters when sorting a directory of 50,000 task objects.
 */
function byteOrder(a: string, b: string): number {
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

// ---------------------------------------------------------------------------------------------
// Files.

function encodeObject(header: Header, body: Uint8Array): Uint8Array {
  // JSON.stringify escapes newlines, so the first newline always ends the header.
  const head = utf8.encode(`${JSON.stringify(header)}\n`);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

function decodeObject(data: Uint8Array, key: string): { header: Header; body: Uint8Array } {
  const nl = data.indexOf(0x0a);
  if (nl === -1) {
    throw new StorageError(
      `a version file of ${key} has no header line; it was not written by oq`,
      {
        key,
      },
    );
  }
  const header = JSON.parse(new TextDecoder().decode(data.subarray(0, nl))) as Header;
  // A plain Uint8Array copy: callers may keep or mutate it without touching Node's buffer.
  return { header, body: new Uint8Array(data.subarray(nl + 1)) };
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return undefined;
    throw error;
  }
}

function versionFile(v: VersionEntry): string {
  return `${v.versionId}.${v.isDeleteMarker ? "del" : v.size}`;
}

/** The versions in a key's history directory, newest first. */
async function readHistory(dir: string): Promise<VersionEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return [];
    throw error;
  }
  const entries: VersionEntry[] = [];
  for (const name of names) {
    const m = VERSION_FILE_RE.exec(name);
    if (m === null) continue;
    const isDeleteMarker = m[2] === "del";
    entries.push({ versionId: m[1]!, isDeleteMarker, size: isDeleteMarker ? 0 : Number(m[2]) });
  }
  // Fixed-width ids: string order is time order.
  entries.sort((a, b) => (a.versionId < b.versionId ? 1 : a.versionId > b.versionId ? -1 : 0));
  return entries;
}

/** Run `fn`, creating `dir` and retrying when it is missing (a concurrent prune may remove it). */
async function withParent<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (code(error) !== "ENOENT" || attempt >= 5) throw error;
    }
    await mkdir(dir, { recursive: true });
  }
}

/** A temp file older than this was abandoned: writes rename theirs within milliseconds. */
const TEMP_MAX_AGE_MS = 60 * 60 * 1000;

async function sweepTemp(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() && Date.now() - st.mtimeMs > TEMP_MAX_AGE_MS) {
      await unlink(path).catch(() => undefined);
    }
  }
}

function ignoreMissing(error: unknown): void {
  if (code(error) !== "ENOENT") throw error;
}

/**
 * Remove empty directories from `dir` up to (not including) `stop`, so that deleted prefixes
 * cost nothing to list.
 */
async function prune(dir: string, stop: string): Promise<void> {
  let d = dir;
  while (d.length > stop.length && d.startsWith(stop)) {
    try {
      await rmdir(d);
    } catch {
      // Not empty (or already gone): the directories above are not empty either.
      return;
    }
    d = dirname(d);
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

function etagOf(versionId: string): string {
  return `"${versionId}"`;
}

function timeOf(versionId: string): Date {
  return new Date(Number(versionId.slice(0, 15)));
}

function tempName(): string {
  return `${Date.now()}-${randomHex(8)}`;
}

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** FNV-1a, twice with different seeds: lock names need spread, not secrecy. A clash only serialises two keys. */
function hashKey(key: string): string {
  const bytes = utf8.encode(key);
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (const b of bytes) {
    h1 = Math.imul(h1 ^ b, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ b, 0x01000193 + 0x2000) >>> 0;
  }
  return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function code(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function fsError(op: string, key: string | undefined, name: string, error: unknown): OqError {
  const c = code(error);
  const what = key === undefined ? `${op} in ${name}` : `${op} ${key} in ${name}`;
  const details = key === undefined ? { cause: error } : { key, cause: error };
  if (c === "EACCES" || c === "EPERM" || c === "EROFS") {
    return new AccessDeniedError(
      `${what} failed: the directory is not writable/readable (${c}); check its permissions`,
      details,
    );
  }
  if (c === "ENOSPC" || c === "EDQUOT") {
    return new StorageError(
      `${what} failed: the disk is full (${c}); free space and retry`,
      details,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StorageError(`${what} failed: ${message}`, details);
}

/**
 * Pure helpers, exported for unit tests only (not re-exported from the package): the byte-order
 * comparison must agree with `compareKeys`, and segment names must round-trip.
 *
 * @internal
 */
export const internals: {
  byteOrder: (a: string, b: string) => number;
  encodeSegment: (segment: string) => string;
  decodeSegment: (name: string) => string | undefined;
  lockName: (key: string) => string;
} = { byteOrder, encodeSegment, decodeSegment, lockName: hashKey };
