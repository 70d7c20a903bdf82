/**
 * The on-disk layout of the file store. Each key segment becomes one directory level, so listing
 * a prefix reads only that subtree, and `seg` below is a segment encoded as a safe file name
 * (`./names.ts`):
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
 * @module
 */
import { readdir, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { StorageError } from "../../errors.ts";
import { nodeRandomBytesHex } from "../node-random.ts";
import { code, ignoreMissing, prune, withParent } from "./fs.ts";
import { encodeDir, encodeStem, HISTORY, LIVE_TAIL_RE, SEP, type VersionEntry } from "./names.ts";

const VERSION_RE = /^(\d{15})-(\d{5})-([0-9a-f]{8})$/;
const VERSION_FILE_RE = /^(\d{15}-\d{5}-[0-9a-f]{8})\.(del|\d+)$/;
const utf8 = new TextEncoder();

/** A version file's header line. */
export interface Header {
  key: string;
  contentType: string;
}

/** The directories of a store under its root. */
export interface Dirs {
  live: string;
  versions: string;
  locks: string;
  tmp: string;
}

/** The directories of the store rooted at `root` (an absolute path). */
export function dirsOf(root: string): Dirs {
  return {
    live: join(root, "live"),
    versions: join(root, "versions"),
    locks: join(root, "locks"),
    tmp: join(root, "tmp"),
  };
}

/** The directory holding every version of `key`. */
export function historyDir(dirs: Dirs, key: string): string {
  const segments = key.split("/");
  const last = segments.pop()!;
  return join(dirs.versions, ...segments.map(encodeDir), `${encodeStem(last)}${SEP}${HISTORY}`);
}

/** The live entry that records `v` as the current version of `key`. */
function livePath(dirs: Dirs, key: string, v: VersionEntry): string {
  const segments = key.split("/");
  const last = segments.pop()!;
  const name = `${encodeStem(last)}${SEP}${v.versionId}.${v.size}`;
  return join(dirs.live, ...segments.map(encodeDir), name);
}

/**
 * Move `key`'s live entry from showing `from` to showing `to` (either may be absent). When the
 * entry is not where `from` says, a crash interrupted an earlier write: rebuild it by scanning.
 */
export async function setLive(
  dirs: Dirs,
  key: string,
  from: VersionEntry | undefined,
  to: VersionEntry | undefined,
): Promise<void> {
  const target = to === undefined ? undefined : livePath(dirs, key, to);
  if (from !== undefined) {
    const source = livePath(dirs, key, from);
    try {
      if (target === undefined) await unlink(source);
      else await rename(source, target);
      if (target === undefined) await prune(dirname(source), dirs.live);
      return;
    } catch (error) {
      if (code(error) !== "ENOENT") throw error;
    }
    await scrubLive(dirs, key);
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
async function scrubLive(dirs: Dirs, key: string): Promise<void> {
  const segments = key.split("/");
  const last = segments.pop()!;
  const dir = join(dirs.live, ...segments.map(encodeDir));
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
  await prune(dir, dirs.live);
}

/** A version id after `previous`: the clock (`nowMs`), made strictly increasing per key. */
export function nextVersionId(nowMs: number, previous: string | undefined): string {
  let ms = Math.max(0, Math.floor(nowMs));
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
  return `${String(ms).padStart(15, "0")}-${String(seq).padStart(5, "0")}-${nodeRandomBytesHex(4)}`;
}

/** The version a live entry shows for a history whose newest entry is `v`. */
export function shownBy(v: VersionEntry | undefined): VersionEntry | undefined {
  return v === undefined || v.isDeleteMarker ? undefined : v;
}

/** The ETag of a version: its id, quoted. */
export function etagOf(versionId: string): string {
  return `"${versionId}"`;
}

/** The time a version was written, from its id. */
export function timeOf(versionId: string): Date {
  return new Date(Number(versionId.slice(0, 15)));
}

/** The file name of a version in its history directory. */
export function versionFile(v: VersionEntry): string {
  return `${v.versionId}.${v.isDeleteMarker ? "del" : v.size}`;
}

/** The versions in a key's history directory, newest first. */
export async function readHistory(dir: string): Promise<VersionEntry[]> {
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

/** A version file: the JSON header line, then the body. */
export function encodeObject(header: Header, body: Uint8Array): Uint8Array {
  // JSON.stringify escapes newlines, so the first newline always ends the header.
  const head = utf8.encode(`${JSON.stringify(header)}\n`);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/** Splits a version file into its header and body. */
export function decodeObject(data: Uint8Array, key: string): { header: Header; body: Uint8Array } {
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
