/**
 * Per-key write locks of the file store, atomic across processes on one machine: a lock is a
 * directory under `locks/` (mkdir is atomic), and writers in the same process queue in memory
 * first, so only other processes contend for the directory.
 *
 * @module
 */
import { mkdir, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { ConflictError } from "../../errors.ts";
import { sleep } from "../../util/async.ts";
import { code } from "./fs.ts";

const utf8 = new TextEncoder();

/** Options of {@link KeyLocks}. */
export interface KeyLocksOptions {
  /** The `locks/` directory. */
  dir: string;
  /** The store's name, for messages. */
  name: string;
  /** A lock older than this (by its file time) belongs to a crashed process and is broken. */
  staleMs: number;
  /** Give up waiting for a lock after this long ({@link ConflictError}). */
  timeoutMs: number;
  /** Creates the store's directories; awaited before every lock is taken. */
  ready: () => Promise<void>;
}

/** The write locks of one store. */
export class KeyLocks {
  readonly #options: KeyLocksOptions;
  /** Same-process writers queue here first, so only other processes contend for the lock dir. */
  readonly #queues = new Map<string, Promise<void>>();

  constructor(options: KeyLocksOptions) {
    this.#options = options;
  }

  /** Run `fn` holding `key`'s lock: in-process queue first, then the cross-process lock dir. */
  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const id = lockName(key);
    const previous = this.#queues.get(id) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => {
      done = r;
    });
    this.#queues.set(id, mine);
    await previous;
    try {
      await this.#options.ready();
      const lockPath = join(this.#options.dir, id);
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
    const { dir, name, timeoutMs } = this.#options;
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(lockPath);
        return;
      } catch (error) {
        if (code(error) === "ENOENT") {
          await mkdir(dir, { recursive: true });
          continue;
        }
        if (code(error) !== "EEXIST") throw error;
      }
      await this.#breakIfStale(lockPath);
      if (Date.now() > deadline) {
        throw new ConflictError(
          `${key} in ${name} stayed locked by another process for ${timeoutMs} ms; nothing was written, retry later`,
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
    const { staleMs } = this.#options;
    const seen = await stat(lockPath).catch(() => undefined);
    if (seen === undefined || Date.now() - seen.mtimeMs < staleMs) return;
    const guard = `${lockPath}.break`;
    try {
      await mkdir(guard);
    } catch (error) {
      if (code(error) !== "EEXIST") throw error;
      const g = await stat(guard).catch(() => undefined);
      // A breaker that crashed mid-break leaves its guard; it is as stale as any lock.
      if (g !== undefined && Date.now() - g.mtimeMs >= staleMs) {
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

/**
 * The lock directory's name for `key`. FNV-1a, twice with different seeds: lock names need
 * spread, not secrecy. A clash only serialises two keys.
 */
export function lockName(key: string): string {
  const bytes = utf8.encode(key);
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (const b of bytes) {
    h1 = Math.imul(h1 ^ b, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ b, 0x01000193 + 0x2000) >>> 0;
  }
  return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
}
