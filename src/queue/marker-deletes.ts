/**
 * Deleting ready markers (docs/protocol.md, "Deleting markers"): at once, or retired into a batch
 * (one `DeleteObjects` per 1,000 markers, at most 500 ms later) where a late delete is harmless.
 *
 * A marker whose writer got a version id back is removed by that version. On a versioned bucket
 * a plain delete leaves a delete marker, and every LIST of the partition walks past the delete
 * markers until a lifecycle rule expires them, a day or more later: on MinIO a LIST that passed
 * 1,900 of them cost as much server time as one that returned 1,000 live keys (about 30 ms
 * against 3), so a busy queue's listings, idle polls included, grew with the tasks it finished.
 * Removing the version leaves nothing behind. Where the storage refuses that (no
 * `s3:DeleteObjectVersion` on AWS), markers are deleted plainly from then on, with one warning.
 *
 * @module
 */
import { AccessDeniedError, ThrottledError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { Storage } from "../storage/storage.ts";
import { mapLimit } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";

/** Retired markers that trigger a batch at once rather than at the timer. */
const BATCH_AT = 200;
/** How long a retired marker waits for others to share its batch, ms. */
const BATCH_WAIT_MS = 500;
/** Keys per `DeleteObjects` request (S3's limit). */
const PER_REQUEST = 1000;

/** A marker to delete: its full key, and the version its writer got back, if any. */
export interface MarkerToDelete {
  /** The marker's full key (the queue prefix included). */
  key: string;
  /** The version its writer got back; without one the marker is deleted plainly. */
  versionId?: string | undefined;
}

/** The marker deletes of one queue object. */
export class MarkerDeletes {
  readonly #storage: Storage;
  readonly #logger: Logger;
  readonly #retired: MarkerToDelete[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Cleared once the storage refused a version delete: plain deletes from then on. */
  #byVersion = true;

  constructor(storage: Storage, logger: Logger) {
    this.#storage = storage;
    this.#logger = logger;
  }

  /** Delete `marker` now; a failure is logged (the stale sweep retries it), never thrown. */
  async now(marker: MarkerToDelete): Promise<void> {
    const storage = this.#storage;
    try {
      if (marker.versionId !== undefined && this.#byVersion && storage.deleteVersion) {
        try {
          return await storage.deleteVersion(marker.key, marker.versionId);
        } catch (error) {
          if (!(error instanceof AccessDeniedError)) throw error;
          this.#refused(error);
        }
      }
      await storage.delete(marker.key);
    } catch (error) {
      this.#logger.warn(
        `could not delete ${marker.key} (the sweep will retry): ${errorMessage(error)}`,
      );
    }
  }

  /** Delete `marker` in a later batch, with the markers retired within the next 500 ms. */
  retire(marker: MarkerToDelete): void {
    this.#retired.push(marker);
    if (this.#retired.length >= BATCH_AT) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), BATCH_WAIT_MS);
  }

  /** Delete the retired markers now. Workers call it when they stop. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.all(this.#retired.splice(0));
  }

  /**
   * Delete `markers` in batches (one by one where the storage cannot batch). A batch the storage
   * refuses as throttled is not split into one request per key, which would send N requests to
   * the very partition that asked for fewer (the scale model saw a refused batch storm grow that
   * way): its keys are left in the index, where a later listing finds them stale again. Returns
   * the keys left so.
   */
  async all(markers: readonly MarkerToDelete[]): Promise<string[]> {
    const byVersion = this.#byVersion && this.#storage.deleteVersions !== undefined;
    const versions = byVersion ? markers.filter((m) => m.versionId !== undefined) : [];
    const plain = byVersion ? markers.filter((m) => m.versionId === undefined) : [...markers];
    const left: string[] = [];
    // One marker alone goes as a DELETE, as a plain one does: free on AWS, where a POST is not.
    if (versions.length === 1) await this.now(versions.pop()!);
    for (let i = 0; i < versions.length; i += PER_REQUEST) {
      const batch = versions.slice(i, i + PER_REQUEST);
      try {
        await this.#storage.deleteVersions!(
          batch.map((m) => ({ key: m.key, versionId: m.versionId! })),
        );
      } catch (error) {
        if (error instanceof ThrottledError) left.push(...this.#throttled(batch, error));
        else if (error instanceof AccessDeniedError) {
          this.#refused(error);
          plain.push(...batch);
        } else {
          // Most of the batch may be gone already (a quiet DeleteObjects reports only failures,
          // such as a version id written by hand that is no version id at all): a plain delete
          // of those keys would add a delete marker each. One by one instead, by version.
          this.#logger.warn(
            `batched marker delete failed, deleting one by one: ${errorMessage(error)}`,
          );
          await mapLimit(batch, 8, (m) => this.now(m));
        }
      }
    }
    for (let i = 0; i < plain.length; i += PER_REQUEST) {
      left.push(...(await this.#deletePlainly(plain.slice(i, i + PER_REQUEST))));
    }
    return left;
  }

  /** One batch of plain deletes; returns the keys left when it was throttled. */
  async #deletePlainly(batch: readonly MarkerToDelete[]): Promise<string[]> {
    const storage = this.#storage;
    if (storage.deleteMany !== undefined && batch.length > 1) {
      try {
        await storage.deleteMany(batch.map((m) => m.key));
        return [];
      } catch (error) {
        if (error instanceof ThrottledError) return this.#throttled(batch, error);
        this.#logger.warn(
          `batched marker delete failed, deleting one by one: ${errorMessage(error)}`,
        );
      }
    }
    await mapLimit(batch, 8, (m) => this.now({ key: m.key }));
    return [];
  }

  #throttled(batch: readonly MarkerToDelete[], error: unknown): string[] {
    this.#logger.warn(
      `batched marker delete throttled; ${batch.length} markers stay until a later sweep: ${errorMessage(error)}`,
    );
    return batch.map((m) => m.key);
  }

  #refused(error: AccessDeniedError): void {
    if (!this.#byVersion) return;
    this.#byVersion = false;
    this.#logger.warn(
      `deleting markers by version was refused (${errorMessage(error)}): deleting them plainly, which leaves a delete marker each until a lifecycle rule expires it and slows listings meanwhile; allow s3:DeleteObjectVersion on the queue's prefix`,
    );
  }
}
