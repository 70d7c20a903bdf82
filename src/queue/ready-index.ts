/**
 * The ready index: one empty marker object under `ready/` per non-terminal task, named by the
 * task's `marker` field (docs/protocol.md, "The ready index"). Listing markers, putting and
 * deleting them (batched where a late delete is harmless), sweeping stale ones and putting back
 * those a task came to name meanwhile, and telling a stale marker from the only trace of a task
 * written by hand with a mistake. The task store keeps markers in step with task writes.
 *
 * @module
 */
import type { ServerClock } from "../clock.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { checkTaskId, checkTaskType, type Keys, partOf, type ReadyMarker } from "../keys.ts";
import type { Logger } from "../logger.ts";
import type { ListResult, ObjectInfo, Storage } from "../storage/storage.ts";
import type { TaskRecord } from "../task/record.ts";
import { isTerminal, ms } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import type { ManifestStore } from "./manifest.ts";
import { MarkerDeletes } from "./marker-deletes.ts";
import type { Versioned } from "./types.ts";

/** A marker not named by its task is deleted only after this long: its writer may be mid-move. */
export const MARKER_GRACE_MS = 120_000;

/** Options of {@link ReadyIndex.markers}. */
export interface MarkerListOptions {
  /**
   * List under this prefix: a partition (`Keys.partition`), a type (`Keys.readyType`). Default:
   * the whole index.
   */
  prefix?: string;
  /** Stop at the first marker due after this time (epoch ms). Only within one partition. */
  dueBy?: number;
  /** Start after this full key. */
  startAfter?: string;
  /** Read at most this many pages, then set `progress.capped`. */
  maxPages?: number;
  /**
   * Set to whether the listing stopped at `maxPages`, to how many pages it read (LISTs), and to
   * the due time of the marker it stopped at past `dueBy` (undefined when there was none).
   */
  progress?: { capped: boolean; pages?: number; nextDueMs?: number; paused?: boolean };
  /**
   * Yield nothing from a paused partition (docs/protocol.md, "Pause"): stop at its pause marker,
   * the first key of the partition. A listing resumed with `startAfter` would not see it, so it
   * first lists the partition's first key (one more LIST, only on such a resumed listing).
   */
  stopAtPause?: boolean;
  /** Called with each key under `ready/` that is not a marker (a monitor sweeps them). */
  onMalformed?: (object: ObjectInfo) => void;
}

/** What a {@link ReadyIndex} works with. */
export interface ReadyIndexDeps {
  storage: Storage;
  keys: Keys;
  clock: ServerClock;
  logger: Logger;
  randomHex: (length: number) => string;
  /** The queue's manifest (shards per type). */
  manifest: ManifestStore;
  /** Read a task (the sweep and the stranded check look at what a task names now). */
  read: (id: string) => Promise<Versioned | undefined>;
}

/**
 * The names one level below `parent` in a delimiter LIST page (`ready/` gives the types,
 * `ready/{type}/` the parts), rolled up from whole keys for a storage that ignores the delimiter.
 * Keys directly under `parent` are no child: they go to `onLoose`.
 */
export function childNames(
  parent: string,
  page: Pick<ListResult, "objects" | "prefixes">,
  onLoose?: (object: ObjectInfo) => void,
): string[] {
  const names = new Set<string>();
  for (const prefix of page.prefixes ?? []) names.add(prefix.slice(parent.length, -1));
  for (const o of page.objects) {
    const slash = o.key.indexOf("/", parent.length);
    if (slash < 0) onLoose?.(o);
    else names.add(o.key.slice(parent.length, slash));
  }
  return [...names];
}

/** The `ready/` markers of one queue. */
export class ReadyIndex {
  readonly #deps: ReadyIndexDeps;
  readonly #deletes: MarkerDeletes;
  readonly #warned = new Set<string>();

  constructor(deps: ReadyIndexDeps) {
    this.#deps = deps;
    this.#deletes = new MarkerDeletes(deps.storage, deps.logger);
  }

  /**
   * A new marker key (relative) for `task`, to be looked at from `dueMs`: in the type's hash
   * shard per the manifest (shard 0 before it was read: always listed), carrying the TTL of a
   * pending task, or marked as a running task's lease marker.
   */
  newMarker(
    task: Pick<TaskRecord, "type" | "id" | "status" | "expiresAt" | "priority">,
    dueMs: number,
  ): string {
    const { keys, manifest, randomHex } = this.#deps;
    return keys.newReadyMarker({
      type: task.type,
      id: task.id,
      part: partOf(task.id, manifest.shardsOf(task.type)),
      dueMs,
      ...(task.status === "pending" && task.expiresAt !== null
        ? { expiresMs: ms(task.expiresAt) }
        : {}),
      ...(task.status === "running" ? { lease: true } : {}),
      nonce: randomHex(8),
      ...(task.priority === undefined ? {} : { priority: task.priority }),
    });
  }

  /**
   * Put the marker `marker` (relative key). Returns the version id the storage gave it, if any:
   * the task names it beside the marker, so that whoever deletes the marker removes exactly
   * that version and leaves no delete marker (`./marker-deletes.ts`).
   */
  async put(marker: string): Promise<string | undefined> {
    const put = await this.#deps.storage.put(this.#deps.keys.full(marker), new Uint8Array(0));
    return put.versionId ?? undefined;
  }

  /**
   * A write that took longer than half the stale-marker grace may have landed after a sweeper
   * judged its new marker stale and deleted it: put the marker again (an extra marker is
   * harmless; a missing one hides the task). `startedLocal` is the local time the write began.
   * The new version is not the one the task names: deleting that one leaves this, which the
   * stale sweep removes once the task no longer names the marker.
   */
  async heal(marker: string, startedLocal: number): Promise<void> {
    if (this.#deps.clock.localNow() - startedLocal <= MARKER_GRACE_MS / 2) return;
    this.#deps.logger.warn(
      `a write took over ${MARKER_GRACE_MS / 2000} s: putting ${marker} again`,
    );
    await this.put(marker);
  }

  /**
   * Delete the marker `marker` (relative key) now, or, with `batch`, in a later batched delete
   * (one `DeleteObjects` request for many keys); by `versionId` when its writer got one. A marker
   * that outlives its task briefly is harmless: readers see the task no longer names it.
   */
  async remove(
    marker: string,
    options: { batch?: boolean; versionId?: string | undefined } = {},
  ): Promise<void> {
    const target = { key: this.#deps.keys.full(marker), versionId: options.versionId };
    if (options.batch === true) this.#deletes.retire(target);
    else await this.#deletes.now(target);
  }

  /** Delete the markers queued by batched writes now. Workers call it when they stop. */
  async flush(): Promise<void> {
    await this.#deletes.flush();
  }

  /**
   * Delete markers a monitor found stale after the grace period (their task is missing,
   * malformed, or names another marker) or malformed keys under `ready/`, in batches. Then
   * read each one's task again and put back the markers a live task now names: a move or submit whose
   * task write landed after the sweeper's read (a pause longer than the grace) must not lose
   * its task. A task that cannot be read keeps its marker too. Returns the keys put back.
   */
  async sweep(
    markers: readonly (Pick<ReadyMarker, "key"> & Partial<ReadyMarker>)[],
  ): Promise<string[]> {
    if (markers.length === 0) return [];
    const left = new Set(await this.#deletes.all(markers.map((m) => ({ key: m.key }))));
    const restored: string[] = [];
    await mapLimit(markers, 8, async (m) => {
      if (left.has(m.key)) return;
      if (m.id === undefined || m.relative === undefined) return;
      if (await this.#putBackIfNamed(m.key, m.id, m.relative)) restored.push(m.key);
    });
    return restored;
  }

  /** Put back the swept marker `key` when its task now names it; true when it was put back. */
  async #putBackIfNamed(key: string, id: string, relative: string): Promise<boolean> {
    let names: boolean;
    try {
      const task = (await this.#deps.read(id))?.task;
      names = task?.marker === relative && !isTerminal(task.status);
    } catch (error) {
      names = !(error instanceof ValidationError);
    }
    if (!names) return false;
    this.#deps.logger.warn(`${key} was swept while its task came to name it: putting it back`);
    try {
      await this.#deps.storage.put(key, new Uint8Array(0));
      return true;
    } catch (error) {
      this.#deps.logger.error(
        `could not put back ${key}; task ${id} is not in the index until it is: ${errorMessage(error)}`,
      );
      return false;
    }
  }

  /**
   * The key of an object for task `id` stored under a wrong shard (see {@link Keys.misplacedTasks}),
   * or `undefined` when there is none. One HEAD per candidate key (about 18): only the monitor
   * calls it, once per marker whose task is missing, before it deletes that marker.
   */
  async findMisplaced(id: string): Promise<string | undefined> {
    const candidates = this.#deps.keys.misplacedTasks(checkTaskId(id));
    const found = await mapLimit(candidates, 8, async (key) => {
      try {
        await this.#deps.storage.head(key);
        return key;
      } catch (error) {
        if (error instanceof NotFoundError) return undefined;
        throw error;
      }
    });
    return found.find((key) => key !== undefined);
  }

  /**
   * Why a stale marker (older than the grace period, not named by its task) must be kept, or
   * `undefined` when it may be deleted. oq's own writes never need it kept; a task written by hand
   * with a mistake can: stored under a wrong shard, or naming a marker that does not exist. Then
   * this marker is the only trace of a task no worker would ever find, and deleting it would lose
   * the task silently. The answer says what is wrong and how to fix it. Costs one HEAD (a task
   * naming another marker) or {@link findMisplaced} (a missing task): only the monitor calls it,
   * on markers it is about to delete.
   */
  async strandedTask(
    marker: ReadyMarker,
    found: Versioned | undefined,
  ): Promise<string | undefined> {
    const guide = `docs/protocol.md, "Writing a task by hand"`;
    if (found === undefined) {
      const misplaced = await this.findMisplaced(marker.id);
      if (misplaced === undefined) return undefined;
      return `task ${marker.id} is stored at ${misplaced}, but oq reads it from ${this.#deps.keys.task(marker.id)}: move it there (${guide}); its marker ${marker.key} is kept meanwhile`;
    }
    const named = found.task.marker;
    if (isTerminal(found.task.status) || named === marker.relative) return undefined;
    if (named !== null) {
      try {
        await this.#deps.storage.head(this.#deps.keys.full(named));
        return undefined;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
    }
    // A move may have replaced the named marker since the task was read: only a task that still
    // names a missing marker is stranded.
    const again = await this.#deps.read(marker.id);
    if (again === undefined || again.task.marker !== named || isTerminal(again.task.status))
      return undefined;
    return `task ${marker.id} is ${again.task.status} but its "marker" ${JSON.stringify(named)} does not exist, so no worker can find it: set "marker" to ${JSON.stringify(marker.relative)} (the key without the prefix; ${guide}); its marker ${marker.key} is kept meanwhile`;
  }

  /**
   * The names one level below `parent` (a prefix under `ready/`), across pages of a delimiter
   * LIST: one LIST per 1,000 names.
   */
  async children(parent: string): Promise<string[]> {
    const storage = this.#deps.storage;
    const names = new Set<string>();
    let continuationToken: string | undefined;
    do {
      const page = await storage.list({
        prefix: parent,
        delimiter: "/",
        ...(continuationToken === undefined ? {} : { continuationToken }),
      });
      for (const name of childNames(parent, page)) names.add(name);
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken !== undefined);
    return [...names].sort();
  }

  /**
   * Well-formed ready markers in key order (due time first), across pages. Stops at the first
   * marker due after `dueBy`; starts after `startAfter`; reads at most `maxPages` pages and then
   * sets `progress.capped` (so a caller can resume from the last key next time). Malformed keys
   * are reported once each and skipped.
   */
  async *markers(
    options: MarkerListOptions = {},
  ): AsyncGenerator<ReadyMarker & { lastModified: Date }> {
    const { storage, keys } = this.#deps;
    let continuationToken: string | undefined;
    if (options.progress) {
      options.progress.capped = false;
      options.progress.nextDueMs = undefined;
      options.progress.paused = false;
    }
    let extra = 0;
    if (options.stopAtPause === true && options.startAfter !== undefined) {
      extra = 1;
      if (await this.#pausedAtStart(options.prefix ?? keys.ready)) {
        if (options.progress) Object.assign(options.progress, { pages: 1, paused: true });
        return;
      }
    }
    for (let pages = 1 + extra; ; pages++) {
      if (options.progress) options.progress.pages = pages;
      const page = await storage.list({
        prefix: options.prefix ?? keys.ready,
        ...(continuationToken === undefined
          ? options.startAfter === undefined
            ? {}
            : { startAfter: options.startAfter }
          : { continuationToken }),
      });
      for (const o of page.objects) {
        if (keys.isPauseMarker(o.key)) {
          if (options.progress) options.progress.paused = true;
          if (options.stopAtPause === true) return;
          continue;
        }
        const marker = keys.parseReadyMarker(o.key);
        if (marker === undefined) {
          this.warnOnce(
            o.key,
            `skipping ${o.key}: not a ready marker (expected ready/<type>/<shard>/<time>/<id>.<nonce>)`,
          );
          options.onMalformed?.(o);
          continue;
        }
        if (options.dueBy !== undefined && marker.dueMs > options.dueBy) {
          if (options.progress) options.progress.nextDueMs = marker.dueMs;
          return;
        }
        yield { ...marker, lastModified: o.lastModified };
      }
      if (!page.isTruncated) return;
      if (options.maxPages !== undefined && pages - extra >= options.maxPages) {
        if (options.progress) options.progress.capped = true;
        return;
      }
      continuationToken = page.nextContinuationToken;
    }
  }

  /** Whether the first key under `partition` is its pause marker: one LIST of one key. */
  async #pausedAtStart(partition: string): Promise<boolean> {
    const page = await this.#deps.storage.list({ prefix: partition, maxKeys: 1 });
    return page.objects.some((o) => this.#deps.keys.isPauseMarker(o.key));
  }

  /**
   * One page of the types that have markers: a LIST of `ready/` with delimiter `/` (1,000 types
   * a page). A storage that ignores the delimiter returns whole keys: they are rolled up here,
   * and a key under a type's prefix is never taken for junk at the top. Keys directly under
   * `ready/` are not markers: returned as `strays` (a monitor sweeps them after the grace).
   * Prefixes that are not task types are skipped with a warning. `next` continues the listing.
   */
  async typesPage(
    continuationToken?: string,
  ): Promise<{ types: string[]; strays: ObjectInfo[]; next: string | undefined }> {
    const { storage, keys } = this.#deps;
    const page = await storage.list({
      prefix: keys.ready,
      delimiter: "/",
      ...(continuationToken === undefined ? {} : { continuationToken }),
    });
    const strays: ObjectInfo[] = [];
    // A storage that ignores the delimiter returns whole keys: childNames rolls them up, and
    // never takes a key under a type's prefix for junk at the top.
    const names = childNames(keys.ready, page, (o) => {
      this.warnOnce(o.key, `skipping ${o.key}: not a ready marker (it is not under a type)`);
      strays.push(o);
    });
    const types: string[] = [];
    for (const type of names) {
      try {
        types.push(checkTaskType(type));
      } catch {
        const prefix = keys.readyType(type);
        this.warnOnce(prefix, `${prefix} holds keys that are not ready markers (not a task type)`);
      }
    }
    const next = page.isTruncated ? page.nextContinuationToken : undefined;
    return { types, strays, next };
  }

  /**
   * Log a warning about `key` once (per queue object, for the first 10,000 keys): a malformed
   * object seen on every poll must not flood the log.
   */
  warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    if (this.#warned.size < 10_000) this.#warned.add(key);
    this.#deps.logger.warn(message);
  }
}
