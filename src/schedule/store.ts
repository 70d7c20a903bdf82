/**
 * Where a scheduler reads and writes schedule objects: the shared {@link DocumentStore} (so every
 * change is a compare-and-swap), plus a cache of the versions last seen so an idle tick costs one
 * LIST and no GET.
 *
 * @module
 */
import { MalformedObjectError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { type Storage, sameEtag } from "../storage/storage.ts";
import { DocumentStore, type UpdateOptions, type VersionedDocument } from "../store/documents.ts";
import { mapLimit } from "../util/async.ts";
import { encodeSchedule, parseSchedule, type ScheduleRecord } from "./record.ts";

/** A schedule with the ETag of the version read. */
export type VersionedSchedule = VersionedDocument<ScheduleRecord>;

/** Schedule objects under one prefix, with the versions last read or written cached by key. */
export class ScheduleStore {
  /** Reads and conditional writes that bypass the cache (single reads, creation). */
  readonly documents: DocumentStore<ScheduleRecord>;
  readonly #storage: Storage;
  readonly #prefix: string;
  readonly #logger: Logger;
  /** Schedules as last read, by key: a tick GETs only those whose ETag changed since. */
  readonly #cache = new Map<string, VersionedSchedule>();
  /** Key → ETag of schedule objects found malformed, so they are not re-read every tick. */
  readonly #malformed = new Map<string, string>();

  /** Schedules stored in `storage` under `prefix` (the queue's `schedules/` prefix). */
  constructor(storage: Storage, prefix: string, logger: Logger) {
    this.#storage = storage;
    this.#prefix = prefix;
    this.#logger = logger;
    this.documents = new DocumentStore(storage, {
      parse: parseSchedule,
      encode: encodeSchedule,
    });
  }

  /** The schedules as last read or written (after {@link ScheduleStore.readAll}: those listed). */
  cached(): IterableIterator<VersionedSchedule> {
    return this.#cache.values();
  }

  /** Read → change → compare-and-swap until it lands; caches the result. */
  async update(
    key: string,
    change: (
      current: VersionedSchedule,
    ) => ScheduleRecord | undefined | Promise<ScheduleRecord | undefined>,
    options: UpdateOptions<ScheduleRecord>,
  ): Promise<VersionedSchedule | undefined> {
    const stored = await this.documents.update(key, change, options);
    this.#remember(key, stored);
    return stored;
  }

  /** Delete a schedule object and forget it. */
  async delete(key: string): Promise<void> {
    await this.#storage.delete(key);
    this.#cache.delete(key);
  }

  /**
   * Every schedule object under the prefix. With `useCache`, a schedule whose listed ETag is the
   * one last read is not read again, so an idle tick costs one LIST.
   */
  async readAll(useCache: boolean): Promise<VersionedSchedule[]> {
    const listed = await this.#list();
    const seen = new Set(listed.map((l) => l.key));
    for (const key of this.#cache.keys()) if (!seen.has(key)) this.#cache.delete(key);
    for (const key of this.#malformed.keys()) if (!seen.has(key)) this.#malformed.delete(key);
    const read = await mapLimit(listed, 16, async ({ key, etag }) => {
      const cached = this.#cache.get(key);
      if (useCache && cached !== undefined && sameEtag(cached.etag, etag)) return cached;
      // A malformed object is read and reported once per version, not on every tick.
      if (sameEtag(this.#malformed.get(key), etag)) return undefined;
      try {
        return await this.#readKey(key);
      } catch (error) {
        if (error instanceof MalformedObjectError) {
          this.#malformed.set(key, etag);
          this.#logger.warn(`skipping ${key}: ${error.message}`);
          return undefined;
        }
        throw error;
      }
    });
    return read.filter((r): r is VersionedSchedule => r !== undefined);
  }

  /** The key and ETag of every `*.json` object directly under the prefix. */
  async #list(): Promise<{ key: string; etag: string }[]> {
    const prefix = this.#prefix;
    const listed: { key: string; etag: string }[] = [];
    let continuationToken: string | undefined;
    for (;;) {
      const page = await this.#storage.list({
        prefix,
        ...(continuationToken === undefined ? {} : { continuationToken }),
      });
      for (const o of page.objects) {
        const name = o.key.slice(prefix.length);
        if (!name.endsWith(".json") || name.includes("/")) continue;
        listed.push({ key: o.key, etag: o.etag });
      }
      if (!page.isTruncated) break;
      continuationToken = page.nextContinuationToken;
    }
    return listed;
  }

  async #readKey(key: string): Promise<VersionedSchedule | undefined> {
    const found = await this.documents.read(key);
    this.#remember(key, found);
    return found;
  }

  /** Cache the version just read or written (`undefined`: the schedule is gone). */
  #remember(key: string, found: VersionedSchedule | undefined): void {
    if (found === undefined) this.#cache.delete(key);
    else this.#cache.set(key, found);
  }
}
