/**
 * A storage in a local directory, for development and single-machine deployments without an
 * object store. Conditional writes are atomic across processes on one machine, and every version
 * is kept, so it behaves like a versioned bucket.
 *
 * Layout under `root` (each key segment becomes one directory level, so listing a prefix reads
 * only that subtree):
 *
 * ```
 * live/<seg>/<seg>/<leaf>~o       the current version of each existing key (header + body)
 * versions/<seg>/<leaf>~o/<id>.<size>   every version of each key, and <id>.del delete markers
 * locks/<hash>                   per-key write locks (directories: mkdir is atomic)
 * tmp/                           files being written, renamed or linked into place when complete
 * ```
 *
 * `versions/` is the truth; `live/` is a projection of it that lets listings skip deleted keys
 * without reading their history. Writers update `versions/` first, so a crash between the two
 * steps is repaired by the next write to that key.
 *
 * Uses only `node:fs/promises` and `node:path`, which Bun and Deno implement too.
 *
 * @module
 */
import {
  copyFile,
  link,
  mkdir,
  readdir,
  readFile,
  rename,
  rmdir,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  AccessDeniedError,
  ConflictError,
  NotFoundError,
  OqError,
  PreconditionFailedError,
  StorageError,
  ValidationError,
} from "../errors.ts";
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
   * broken. Writes hold a lock for milliseconds, so the default of 10 s is generous.
   */
  lockStaleMs?: number;
  /** Give up waiting for a key lock after this many milliseconds (`ConflictError`). Default 30 s. */
  lockTimeoutMs?: number;
}

const MAX_KEYS = 1000;
const MAX_KEY_BYTES = 1024;
/** Leaves of both trees carry this suffix; no encoded segment contains `~`, so it never clashes. */
const LEAF = "~o";
/** The directory name of an empty key segment (as in `a//b`), which has no encoded characters. */
const EMPTY_DIR = "~";
/** Most file systems allow 255 bytes per name; the leaf suffix must fit too. */
const MAX_NAME = 255;
/** How many files a listing reads at once. */
const READ_CONCURRENCY = 64;
const VERSION_RE = /^(\d{15})-(\d{5})-([0-9a-f]{8})$/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

interface Header {
  key: string;
  versionId: string;
  contentType: string;
}

interface LiveObject {
  header: Header;
  body: Uint8Array;
}

interface VersionEntry {
  versionId: string;
  isDeleteMarker: boolean;
  size: number;
  name: string;
}

interface Leaf {
  key: string;
  path: string;
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

  /** Open (lazily create) a directory store. */
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
      if (options.versionId !== undefined) return this.#getVersion(key, options.versionId);
      const obj = await this.#readLive(key);
      if (obj === undefined) throw notFound(key, this.name);
      return {
        body: obj.body,
        etag: etagOf(obj.header.versionId),
        versionId: obj.header.versionId,
        lastModified: timeOf(obj.header.versionId),
        contentType: obj.header.contentType,
      };
    });
  }

  /** Read the current version's metadata. */
  head(key: string): Promise<HeadResult> {
    return this.#op("head", key, async () => {
      const obj = await this.#readLive(key);
      if (obj === undefined) throw notFound(key, this.name);
      return {
        etag: etagOf(obj.header.versionId),
        size: obj.body.length,
        versionId: obj.header.versionId,
        lastModified: timeOf(obj.header.versionId),
      };
    });
  }

  /** Write a new version, honouring `ifMatch` / `ifNoneMatch` atomically across processes. */
  put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    return this.#op("put", key, async () => {
      checkPutOptions(key, options);
      const bytes = toBytes(body);
      return this.#withLock(key, async () => {
        const history = await this.#history(key);
        const latest = history[0];
        const current = latest === undefined || latest.isDeleteMarker ? undefined : latest;
        if (options.ifNoneMatch === "*" && current !== undefined) {
          await this.#repairLive(key, history);
          throw new PreconditionFailedError(
            `${key} already exists in ${this.name}: If-None-Match: * only creates absent keys; re-read it instead`,
            { status: 412, key },
          );
        }
        if (options.ifMatch !== undefined) {
          if (current === undefined) {
            await this.#repairLive(key, history);
            throw new NotFoundError(
              `${key} does not exist in ${this.name}, so If-Match cannot hold; create it with ifNoneMatch: "*"`,
              { status: 404, key },
            );
          }
          if (!sameEtag(etagOf(current.versionId), options.ifMatch)) {
            // The caller may have read a stale live copy left by a crash; fix it so a re-read helps.
            await this.#repairLive(key, history);
            throw new PreconditionFailedError(
              `${key} changed in ${this.name} (ETag ${etagOf(current.versionId)}, not ${options.ifMatch}): re-read it and decide again`,
              { status: 412, key },
            );
          }
        }
        const versionId = this.#nextVersionId(latest?.versionId);
        const header: Header = {
          key,
          versionId,
          contentType: options.contentType ?? "application/octet-stream",
        };
        const temp = await this.#writeTemp(encodeObject(header, bytes));
        const histDir = this.#versionDir(key);
        const livePath = this.#livePath(key);
        try {
          // Linking into versions/ is the commit point: from here on the version exists.
          await withParent(histDir, () =>
            linkOrCopy(temp, join(histDir, `${versionId}.${bytes.length}`)),
          );
          await withParent(dirname(livePath), () => rename(temp, livePath));
        } catch (error) {
          await unlinkIfExists(temp).catch(() => false);
          throw error;
        }
        return { etag: etagOf(versionId), versionId };
      });
    });
  }

  /**
   * Delete the current version by adding a delete marker; the history stays. Deleting a key that
   * is missing or already deleted changes nothing (S3 would add another marker; nothing reads it).
   */
  delete(key: string): Promise<void> {
    return this.#op("delete", key, () =>
      this.#withLock(key, async () => {
        const history = await this.#history(key);
        const latest = history[0];
        if (latest === undefined || latest.isDeleteMarker) {
          await this.#removeLive(key);
          return;
        }
        const versionId = this.#nextVersionId(latest.versionId);
        const histDir = this.#versionDir(key);
        await withParent(histDir, () =>
          writeFile(join(histDir, `${versionId}.del`), new Uint8Array(0), { flag: "wx" }),
        );
        await this.#removeLive(key);
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
        const histDir = this.#versionDir(key);
        await unlinkIfExists(join(histDir, history[at]!.name));
        history.splice(at, 1);
        if (at === 0) await this.#repairLive(key, history);
        if (history.length === 0) {
          await prune(histDir, this.#versions);
        }
      }),
    );
  }

  /** One page of current keys in UTF-8 byte order (ListObjectsV2). */
  list(options: ListOptions = {}): Promise<ListResult> {
    return this.#op("list", undefined, async () => {
      const maxKeys = pageSize(options.maxKeys);
      const after = options.continuationToken ?? options.startAfter;
      const leaves = walk(this.#live, options.prefix ?? "", after, false);
      const objects: ObjectInfo[] = [];
      try {
        // Read one key past the page to learn whether another page follows.
        while (objects.length <= maxKeys) {
          const batch: Leaf[] = [];
          const want = Math.min(maxKeys + 1 - objects.length, READ_CONCURRENCY);
          while (batch.length < want) {
            const next = await leaves.next();
            if (next.done) break;
            batch.push(next.value);
          }
          if (batch.length === 0) break;
          const read = await Promise.all(batch.map((leaf) => readObject(leaf.path)));
          for (let i = 0; i < batch.length; i++) {
            const obj = read[i];
            // Deleted between the directory read and the file read: skip it, as a later list would.
            if (obj === undefined) continue;
            objects.push({
              key: batch[i]!.key,
              etag: etagOf(obj.header.versionId),
              size: obj.body.length,
              lastModified: timeOf(obj.header.versionId),
            });
          }
        }
      } finally {
        await leaves.return(undefined);
      }
      const isTruncated = objects.length > maxKeys;
      if (isTruncated) objects.length = maxKeys;
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
      const leaves = walk(this.#versions, prefix, keyMarker, versionIdMarker !== undefined);
      const versions: VersionInfo[] = [];
      try {
        outer: for await (const leaf of leaves) {
          const entries = await readVersionDir(leaf.path);
          const isMarkerKey = leaf.key === keyMarker && versionIdMarker !== undefined;
          for (let i = 0; i < entries.length; i++) {
            const v = entries[i]!;
            if (isMarkerKey && v.versionId >= versionIdMarker) continue;
            if (versions.length === maxKeys + 1) break outer;
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
      } finally {
        await leaves.return(undefined);
      }
      const isTruncated = versions.length > maxKeys;
      if (isTruncated) versions.length = maxKeys;
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

  #livePath(key: string): string {
    const segments = key.split("/");
    const leaf = segments.pop()!;
    return join(this.#live, ...segments.map(encodeDir), encodeLeaf(leaf));
  }

  #versionDir(key: string): string {
    const segments = key.split("/");
    const leaf = segments.pop()!;
    return join(this.#versions, ...segments.map(encodeDir), encodeLeaf(leaf));
  }

  async #readLive(key: string): Promise<LiveObject | undefined> {
    return readObject(this.#livePath(key));
  }

  async #getVersion(key: string, versionId: string): Promise<GetResult> {
    const entry = VERSION_RE.test(versionId)
      ? (await this.#history(key)).find((v) => v.versionId === versionId)
      : undefined;
    if (entry === undefined || entry.isDeleteMarker) {
      throw new NotFoundError(
        entry === undefined
          ? `${key} has no version ${versionId} in ${this.name}; list its versions with listVersions`
          : `version ${versionId} of ${key} is a delete marker and has no body`,
        { status: entry === undefined ? 404 : 405, key },
      );
    }
    const obj = await readObject(join(this.#versionDir(key), entry.name));
    if (obj === undefined) throw notFound(key, this.name);
    return {
      body: obj.body,
      etag: etagOf(versionId),
      versionId,
      lastModified: timeOf(versionId),
      contentType: obj.header.contentType,
    };
  }

  /** Every version of `key`, newest first. */
  #history(key: string): Promise<VersionEntry[]> {
    return readVersionDir(this.#versionDir(key));
  }

  /** Make `live/` show the newest version of `history` (after a crash or a deleted version). */
  async #repairLive(key: string, history: VersionEntry[]): Promise<void> {
    const latest = history[0];
    if (latest === undefined || latest.isDeleteMarker) {
      await this.#removeLive(key);
      return;
    }
    const livePath = this.#livePath(key);
    const live = await readObject(livePath);
    if (live?.header.versionId === latest.versionId) return;
    await this.#ensureRoot();
    const temp = join(this.#tmp, tempName());
    await linkOrCopy(join(this.#versionDir(key), latest.name), temp);
    await withParent(dirname(livePath), () => rename(temp, livePath));
  }

  async #removeLive(key: string): Promise<void> {
    const livePath = this.#livePath(key);
    if (await unlinkIfExists(livePath)) await prune(dirname(livePath), this.#live);
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

  async #writeTemp(data: Uint8Array): Promise<string> {
    await this.#ensureRoot();
    const temp = join(this.#tmp, tempName());
    await writeFile(temp, data, { flag: "wx" });
    return temp;
  }

  #ensureRoot(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(this.#tmp, { recursive: true });
      await mkdir(this.#locks, { recursive: true });
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

function encodeDir(segment: string): string {
  return segment === "" ? EMPTY_DIR : checkName(encodeSegment(segment), segment);
}

function encodeLeaf(segment: string): string {
  return checkName(encodeSegment(segment) + LEAF, segment);
}

function checkName(name: string, segment: string): string {
  if (name.length + LEAF.length > MAX_NAME) {
    throw new ValidationError(
      `key segment ${JSON.stringify(segment.slice(0, 40))}... is too long for FileStorage (${name.length} bytes encoded, max ${MAX_NAME - LEAF.length}); use shorter segments between slashes`,
    );
  }
  return name;
}

/** A directory entry of either tree, decoded; `undefined` for names oq did not write. */
function parseEntry(name: string): { segment: string; leaf: boolean } | undefined {
  if (name === EMPTY_DIR) return { segment: "", leaf: false };
  if (name.endsWith(LEAF)) {
    const stem = name.slice(0, -LEAF.length);
    const segment = stem === "" ? "" : decodeSegment(stem);
    return segment === undefined ? undefined : { segment, leaf: true };
  }
  const segment = name === "" ? undefined : decodeSegment(name);
  return segment === undefined || segment === "" ? undefined : { segment, leaf: false };
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
): AsyncGenerator<Leaf, void, undefined> {
  const slash = prefix.lastIndexOf("/");
  const dirPart = prefix.slice(0, slash + 1);
  const partial = prefix.slice(slash + 1);
  let start = base;
  if (dirPart !== "") {
    const segments = dirPart.slice(0, -1).split("/");
    try {
      start = join(base, ...segments.map(encodeDir));
    } catch (error) {
      // A segment too long to store cannot have been stored: nothing matches.
      if (error instanceof ValidationError) return;
      throw error;
    }
  }
  yield* walkDir(start, dirPart, partial, after, inclusive);
}

async function* walkDir(
  dir: string,
  keyPrefix: string,
  partial: string,
  after: string | undefined,
  inclusive: boolean,
): AsyncGenerator<Leaf, void, undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return;
    throw error;
  }
  const entries: { sortKey: string; name: string; leaf: boolean }[] = [];
  for (const name of names) {
    const parsed = parseEntry(name);
    if (parsed === undefined || !parsed.segment.startsWith(partial)) continue;
    const key = keyPrefix + parsed.segment;
    if (parsed.leaf) {
      if (after !== undefined) {
        const c = byteOrder(key, after);
        if (c < 0 || (c === 0 && !inclusive)) continue;
      }
      entries.push({ sortKey: key, name, leaf: true });
    } else {
      const sortKey = `${key}/`;
      // Every key below starts with sortKey; skip the subtree when all of them sort before `after`.
      if (after !== undefined && !after.startsWith(sortKey) && byteOrder(sortKey, after) < 0)
        continue;
      entries.push({ sortKey, name, leaf: false });
    }
  }
  // A leaf `k` and a directory `k/` never share a sort key, so this orders the full keys.
  entries.sort((a, b) => byteOrder(a.sortKey, b.sortKey));
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.leaf) {
      yield { key: e.sortKey, path };
    } else {
      const inner = after?.startsWith(e.sortKey) ? after : undefined;
      yield* walkDir(path, e.sortKey, "", inner, inclusive);
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

async function readObject(path: string): Promise<LiveObject | undefined> {
  let data: Uint8Array;
  try {
    data = await readFile(path);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return undefined;
    throw error;
  }
  const nl = data.indexOf(0x0a);
  if (nl === -1) throw new StorageError(`${path} is not an oq object file (no header); remove it`);
  const header = JSON.parse(new TextDecoder().decode(data.subarray(0, nl))) as Header;
  // A plain Uint8Array copy: callers may keep or mutate it without touching Node's buffer.
  return { header, body: new Uint8Array(data.subarray(nl + 1)) };
}

/** The versions in a key's history directory, newest first. */
async function readVersionDir(dir: string): Promise<VersionEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return [];
    throw error;
  }
  const entries: VersionEntry[] = [];
  for (const name of names) {
    const dot = name.indexOf(".");
    if (dot === -1) continue;
    const versionId = name.slice(0, dot);
    if (!VERSION_RE.test(versionId)) continue;
    const rest = name.slice(dot + 1);
    if (rest === "del") {
      entries.push({ versionId, isDeleteMarker: true, size: 0, name });
    } else if (/^\d+$/.test(rest)) {
      entries.push({ versionId, isDeleteMarker: false, size: Number(rest), name });
    }
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

/** Hard-link (cheap, and the file is immutable) or, where links are unsupported, copy. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (error) {
    const c = code(error);
    if (c !== "EPERM" && c !== "ENOTSUP" && c !== "EXDEV" && c !== "EOPNOTSUPP" && c !== "ENOSYS") {
      throw error;
    }
    await copyFile(from, to);
  }
}

async function unlinkIfExists(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if (code(error) === "ENOENT") return false;
    throw error;
  }
}

/** Remove empty directories from `dir` up to (not including) `stop`, so deleted prefixes cost nothing to list. */
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

function notFound(key: string, name: string): NotFoundError {
  return new NotFoundError(`${key} does not exist in ${name}`, { status: 404, key });
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

function checkKey(key: string): void {
  if (typeof key !== "string" || key === "") {
    throw new ValidationError("object key must be a non-empty string");
  }
  // A lone surrogate has no UTF-8 form: it would not round-trip through a file name (or S3).
  if (/\p{Cs}/u.test(key)) {
    throw new ValidationError(
      `object key ${JSON.stringify(key)} is not valid Unicode (lone surrogate)`,
    );
  }
  if (utf8.encode(key).length > MAX_KEY_BYTES) {
    throw new ValidationError(
      `object key is longer than ${MAX_KEY_BYTES} UTF-8 bytes; shorten it`,
      {
        key,
      },
    );
  }
}

function checkPutOptions(key: string, options: PutOptions): void {
  if (options.ifMatch !== undefined && options.ifNoneMatch !== undefined) {
    throw new ValidationError(`put ${key}: pass ifMatch or ifNoneMatch, not both`, { key });
  }
  if (options.ifNoneMatch !== undefined && options.ifNoneMatch !== "*") {
    throw new ValidationError(`put ${key}: ifNoneMatch only supports "*" (create if absent)`, {
      key,
    });
  }
}

function pageSize(maxKeys: number | undefined): number {
  if (maxKeys === undefined) return MAX_KEYS;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) {
    throw new ValidationError(`maxKeys must be an integer from 1 to ${MAX_KEYS}, not ${maxKeys}`);
  }
  // S3 silently caps larger pages; doing the same keeps drivers interchangeable.
  return Math.min(maxKeys, MAX_KEYS);
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
