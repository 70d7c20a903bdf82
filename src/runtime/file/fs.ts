/**
 * File-system helpers of the file store: reads that treat "missing" as an answer, parents
 * created on demand, pruning of empty directories, and mapping `node:fs` errors to typed ones.
 *
 * @module
 */
import { mkdir, open, readdir, readFile, rmdir, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AccessDeniedError, type OqError, StorageError } from "../../errors.ts";
import { errorMessage } from "../../util/errors.ts";
import { nodeRandomBytesHex } from "../node-random.ts";

/** The `code` of a `node:fs` error (`ENOENT`, ...), if it has one. */
export function code(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

/** A file's bytes, or `undefined` when it (or a parent directory) does not exist. */
export async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return undefined;
    throw error;
  }
}

/**
 * A file's bytes as {@link readIfExists} reads them, unless the file is larger than `limit`
 * bytes: then its size, and the file unread (one planted at hundreds of MB is never loaded only
 * to be refused).
 */
export async function readIfAtMost(
  path: string,
  limit: number,
): Promise<Uint8Array | number | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return undefined;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    return size > limit ? size : await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** Run `fn`, creating `dir` and retrying when it is missing (a concurrent prune may remove it). */
export async function withParent<T>(dir: string, fn: () => Promise<T>): Promise<T> {
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

/** Removes bodies that processes which died mid-write left in `tmp/`. */
export async function sweepTemp(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() && Date.now() - st.mtimeMs > TEMP_MAX_AGE_MS) {
      await unlink(path).catch(() => undefined);
    }
  }
}

/** A `.catch` handler that ignores only "no such file". */
export function ignoreMissing(error: unknown): void {
  if (code(error) !== "ENOENT") throw error;
}

/**
 * Remove empty directories from `dir` up to (not including) `stop`, so that deleted prefixes
 * cost nothing to list.
 */
export async function prune(dir: string, stop: string): Promise<void> {
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

/** A unique name for a body being written under `tmp/`. */
export function tempName(): string {
  return `${Date.now()}-${nodeRandomBytesHex(8)}`;
}

/** Maps a `node:fs` error of operation `op` to a typed error that says what to fix. */
export function fsError(
  op: string,
  key: string | undefined,
  name: string,
  error: unknown,
): OqError {
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
  return new StorageError(`${what} failed: ${errorMessage(error)}`, details);
}
