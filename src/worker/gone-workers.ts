/**
 * Deleting the heartbeats of workers that are gone. A worker that stops deletes its own
 * heartbeat; one that crashed (or was killed) leaves `workers/{id}.json` behind, and every worker
 * would list it every heartbeat, forever. While the live workers list `workers/` anyway
 * (`Peers.refresh`), the one that is first of them in sorted order deletes heartbeats not
 * rewritten for {@link GONE_HEARTBEAT_MS}, at most {@link GONE_HEARTBEATS_PER_BEAT} per heartbeat
 * (one DeleteObjects request where the storage has it). One worker rather than each: N workers
 * do not all delete the same keys at once; when two briefly both believe they are first, they
 * delete the same keys, which is harmless.
 *
 * Only heartbeats directly under `workers/` are judged; anything deeper is another record's.
 * A worker frozen for a day whose heartbeat is deleted just as it writes a new one drops out of
 * the live list until its next heartbeat: shares shift for one interval, nothing else (peer
 * lists only save wasted reads; correctness never depends on them).
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import type { ObjectInfo, Storage } from "../storage/storage.ts";
import { mapLimit } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";

/** A heartbeat not rewritten for this long (server time) is a gone worker's, and is deleted: a day. */
export const GONE_HEARTBEAT_MS = 24 * 60 * 60 * 1000;

/** At most this many gone heartbeats are deleted per heartbeat of the deleting worker. */
export const GONE_HEARTBEATS_PER_BEAT = 100;

/** Parallel single deletes on a storage without `deleteMany`. */
const ONE_BY_ONE_PARALLEL = 4;

/** Collects, from the pages of a `workers/` listing, the heartbeats of workers gone a day. */
export class GoneHeartbeats {
  readonly #prefix: string;
  readonly #before: number;
  readonly #own: string;
  readonly #keys: string[] = [];

  /**
   * @param workersPrefix the `workers/` prefix (with the queue's prefix).
   * @param nowMs server time now, epoch ms.
   * @param ownKey this worker's own heartbeat key, never judged gone.
   */
  constructor(workersPrefix: string, nowMs: number, ownKey: string) {
    this.#prefix = workersPrefix;
    this.#before = nowMs - GONE_HEARTBEAT_MS;
    this.#own = ownKey;
  }

  /** Look at one listed object; keeps it when it is a heartbeat directly under `workers/` gone a day. */
  see(object: ObjectInfo): void {
    if (this.#keys.length >= GONE_HEARTBEATS_PER_BEAT || object.key === this.#own) return;
    const name = object.key.slice(this.#prefix.length);
    if (!object.key.startsWith(this.#prefix) || name.includes("/") || !name.endsWith(".json")) {
      return;
    }
    if (object.lastModified.getTime() < this.#before) this.#keys.push(object.key);
  }

  /** The keys collected so far (at most {@link GONE_HEARTBEATS_PER_BEAT}). */
  get keys(): readonly string[] {
    return this.#keys;
  }

  /** Delete the collected heartbeats; a failure is logged, not thrown (the next beat retries). */
  async delete(storage: Storage, logger: Logger): Promise<void> {
    const keys = this.#keys;
    if (keys.length === 0) return;
    try {
      if (storage.deleteMany !== undefined) await storage.deleteMany(keys);
      else await mapLimit(keys, ONE_BY_ONE_PARALLEL, (key) => storage.delete(key));
      logger.info(`deleted ${keys.length} heartbeat(s) of workers gone for a day`);
    } catch (error) {
      logger.warn(`could not delete heartbeats of gone workers: ${errorMessage(error)}`);
    }
  }
}
