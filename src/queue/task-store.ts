/**
 * Task records in storage, kept in step with the ready index: read, create, write and update a
 * task over the one document store (`../store/documents.ts`, which owns compare-and-swap, the
 * read-back of ambiguous writes and the round limit). What this adds is the marker protocol of
 * docs/protocol.md ("Write order", "Markers we wrote"): a new marker is put before the task write
 * that names it, the old one is deleted (or retired in a batch) after, and a marker we wrote is
 * deleted after a lost write only when the task provably will never name it.
 *
 * @module
 */
import type { ServerClock } from "../clock.ts";
import { MalformedObjectError, NotFoundError, PreconditionFailedError } from "../errors.ts";
import { checkTaskId, type Keys } from "../keys.ts";
import { sameEtag } from "../storage/storage.ts";
import {
  DocumentStore,
  MAX_CAS_ROUNDS,
  type WriteLost,
  type WriteResult,
} from "../store/documents.ts";
import { encodeTask, parseTask, type TaskRecord } from "../task/record.ts";
import { isTerminal, placeMarker } from "../task/transitions.ts";
import type { FinishedJournal } from "./journal.ts";
import type { ManifestStore } from "./manifest.ts";
import { ReadyIndex, type ReadyIndexDeps } from "./ready-index.ts";
import type { Versioned, WriteOptions } from "./types.ts";

/** Hears of every task write the store won (the metrics recorder); must not throw. */
export interface TaskWriteObserver {
  /** `after` was written over `before` (`null`: created). */
  onTaskWrite(before: TaskRecord | null, after: TaskRecord): void;
}

/** One round of a task write: what it was written over, and the markers it moves. */
interface WriteRound {
  /** The version written over. */
  current: Versioned;
  /** `current`'s record as placed (a hand-written marker key counts as none). */
  prev: TaskRecord;
  /** The marker put for this write, if it moves the task to a new one. */
  newMarker: string | undefined;
  /** Local time before the new marker was put (for `ReadyIndex.heal`). */
  startedLocal: number;
}

/** The tasks of one queue and their ready markers. */
export class TaskStore {
  /** The conditional documents the task records are. */
  readonly documents: DocumentStore<TaskRecord>;
  /** The ready markers, kept in step with the records. */
  readonly index: ReadyIndex;
  readonly #keys: Keys;
  readonly #clock: ServerClock;
  readonly #manifest: ManifestStore;
  readonly #journal: FinishedJournal | undefined;
  readonly #metrics: TaskWriteObserver | undefined;
  /** Writes whose PUT may still land, by the record each sent (see `WriteLost.mayLand`). */
  readonly #unsettled = new WeakMap<TaskRecord, WriteRound>();

  constructor(
    deps: Omit<ReadyIndexDeps, "read"> & {
      journal?: FinishedJournal;
      metrics?: TaskWriteObserver | undefined;
    },
  ) {
    this.#keys = deps.keys;
    this.#journal = deps.journal;
    this.#metrics = deps.metrics;
    this.#clock = deps.clock;
    this.#manifest = deps.manifest;
    this.documents = new DocumentStore(deps.storage, {
      parse: (body, key) => parseStoredTask(body, key, deps.keys),
      encode: encodeTask,
    });
    this.index = new ReadyIndex({ ...deps, read: (id) => this.read(id) });
  }

  /** Read a task with its ETag; `undefined` when it does not exist. */
  async read(id: string): Promise<Versioned | undefined> {
    const found = await this.documents.read(this.#keys.task(checkTaskId(id)));
    return found === undefined ? undefined : { task: found.value, etag: found.etag };
  }

  /**
   * Store a new task. Its marker is written before the task, so a crash in between leaves a
   * harmless orphan marker rather than an invisible task. Returns the task stored under its id
   * afterwards: ours, or the one that already held the id (then our marker is deleted unless
   * that task names it).
   */
  async create(proposed: TaskRecord): Promise<TaskRecord> {
    await this.#manifest.load();
    const marker = proposed.marker!;
    const key = this.#keys.task(proposed.id);
    const startedLocal = this.#clock.localNow();
    const version = await this.index.put(marker);
    const task = withMarkerVersion(proposed, version);
    for (let round = 0; ; round++) {
      const result = await this.documents.write(key, null, task);
      if (result.won) {
        this.#metrics?.onTaskWrite(null, task);
        await this.index.heal(marker, startedLocal);
        return task;
      }
      const current =
        result.readBack === undefined
          ? (await this.read(task.id))?.task
          : (result.readBack?.value ?? undefined);
      if (current !== undefined) {
        // Another task holds the id, so our create can never land: our marker is unused.
        if (current.marker !== marker) await this.index.remove(marker, { versionId: version });
        else {
          // Only our task names our new marker: our create landed, its answer was lost.
          this.#metrics?.onTaskWrite(null, current);
          await this.index.heal(marker, startedLocal);
        }
        return current;
      }
      if (round >= 5) throw result.error;
    }
  }

  /**
   * Write `proposed` over `current` if the task has not changed since it was read. Returns the
   * new version, or `undefined` when another writer got there first (re-read and decide again).
   * The record gets its marker here ({@link placeMarker}: none once terminal, a new one when it
   * moves), so every path to a terminal state clears it. A failed or ambiguous answer is settled
   * by reading the task back: every version carries a fresh `updatedAt` (and claims a fresh
   * lease token), so our write is recognised exactly, even behind a 412 that a layer below
   * produced by re-sending a PUT that had committed.
   */
  async write(
    current: Versioned,
    proposed: TaskRecord,
    options: WriteOptions = {},
  ): Promise<Versioned | undefined> {
    const result = await this.#writeRound(current, proposed, options);
    return result.won ? { task: result.value, etag: result.etag } : undefined;
  }

  /**
   * Read-modify-write a task with compare-and-swap, re-reading after every lost race. `change`
   * returns the next record, or `undefined` to leave the task as it is. Markers are kept in step
   * as in {@link write}. Returns the task as stored afterwards (with its ETag); throws
   * `NotFoundError` when it does not exist, `ConflictError` after {@link MAX_CAS_ROUNDS} lost rounds.
   */
  async update(
    id: string,
    change: (current: TaskRecord) => TaskRecord | undefined,
    known?: Versioned,
    options: WriteOptions = {},
  ): Promise<Versioned> {
    const done = await this.documents.update(
      this.#keys.task(checkTaskId(id)),
      (current) => change(current.value),
      {
        ...(known === undefined ? {} : { known: { value: known.task, etag: known.etag } }),
        write: (current, next) =>
          this.#writeRound({ task: current.value, etag: current.etag }, next, options),
        landedLate: async (sent, stored) => {
          const round = this.#unsettled.get(sent);
          if (round !== undefined) await this.#written(round, stored.value, options);
        },
        conflictMessage: `Task ${id} kept changing under ${MAX_CAS_ROUNDS} attempts to update it; try again.`,
      },
    );
    if (done === undefined) throw new NotFoundError(`Task ${id} not found.`, { key: id });
    return { task: done.value, etag: done.etag };
  }

  /** One round of {@link write}: new marker, task CAS, then the old marker or the unused new one. */
  async #writeRound(
    current: Versioned,
    proposed: TaskRecord,
    options: WriteOptions,
  ): Promise<WriteResult<TaskRecord>> {
    await this.#manifest.load();
    // A record naming a key that is not a marker of this task (written by hand) is placed as
    // if it named none: it gets a real marker, and the key it names is neither put nor deleted
    // (it may be any object under the prefix; docs/protocol.md, "Repairing the index").
    const named = this.ownMarker(current.task);
    const prev = named === current.task.marker ? current.task : { ...current.task, marker: null };
    const wanted =
      proposed.marker === current.task.marker ? { ...proposed, marker: named } : proposed;
    const placed = placeMarker(prev, wanted, (due) => this.index.newMarker(proposed, due));
    const newMarker =
      placed.marker !== null && placed.marker !== prev.marker ? placed.marker : undefined;
    const startedLocal = this.#clock.localNow();
    const version = newMarker === undefined ? undefined : await this.index.put(newMarker);
    // The version goes with the marker: a new one's, the one kept, or none once there is none.
    const next =
      newMarker !== undefined || placed.marker === null
        ? withMarkerVersion(placed, version)
        : placed;
    const result = await this.#compareAndSwap(current.etag, next, newMarker, options);
    const round: WriteRound = { current, prev, newMarker, startedLocal };
    if (!result.won) {
      if (result.mayLand !== undefined) {
        // Its PUT may still land: what a won write does then waits for someone to see it.
        this.#unsettled.set(result.mayLand, round);
        options.onUnsettled?.();
      }
      // Delete the new marker only when the task provably will never name it; otherwise the
      // stale sweep removes it after the grace period (docs/protocol.md, "Stale markers").
      if (newMarker !== undefined && markerUnused(result, current.etag, newMarker))
        await this.index.remove(newMarker, { versionId: version });
      return result;
    }
    await this.#written(round, result.value, options);
    return result;
  }

  /**
   * What follows a write of `value` that landed (at once, or late: see `landedLate`): count it,
   * heal its new marker, journal a task that just finished, delete the marker it moved from.
   */
  async #written(round: WriteRound, value: TaskRecord, options: WriteOptions): Promise<void> {
    const { current, prev, newMarker, startedLocal } = round;
    this.#metrics?.onTaskWrite(current.task, value);
    if (newMarker !== undefined) await this.index.heal(newMarker, startedLocal);
    // A task that just finished goes into the finished journal (retention, dead letters).
    if (isTerminal(value.status) && !isTerminal(current.task.status)) this.#journal?.record(value);
    const oldMarker = prev.marker;
    if (oldMarker !== null && oldMarker !== value.marker)
      await this.index.remove(oldMarker, {
        batch: options.batchMarkerDelete === true,
        versionId: prev.markerVersion,
      });
  }

  /**
   * The marker `task` names when it is a ready marker of this very task (its id and type) in a
   * shard workers list, else `null`. Only such a key is ever deleted as the task's old marker. A
   * marker in a shard beyond the type's count (a manifest lost or edited by hand) is never
   * listed: the task's next write, or `oq repair`, gives it one that is.
   */
  ownMarker(task: TaskRecord): string | null {
    if (task.marker === null) return null;
    const parsed = this.#keys.parseReadyMarker(this.#keys.full(task.marker));
    if (parsed?.id !== task.id || parsed.type !== task.type) return null;
    return this.#manifest.lists(parsed.type, parsed.part) ? task.marker : null;
  }

  /**
   * The conditional write of `next` over the version `baseEtag`. A 412 or 409 on a write that
   * moves no marker is taken at face value (a lost claim race is common and must not cost a
   * GET); only an unknown outcome or a marker at stake is worth the read-back.
   */
  async #compareAndSwap(
    baseEtag: string,
    next: TaskRecord,
    newMarker: string | undefined,
    options: WriteOptions,
  ): Promise<WriteResult<TaskRecord>> {
    const key = this.#keys.task(next.id);
    try {
      const result = await this.documents.write(key, baseEtag, next);
      if (!result.won && result.error instanceof PreconditionFailedError)
        options.onPreconditionFailed?.();
      if (result.won || newMarker === undefined || result.readBack !== undefined) return result;
      return await this.documents.confirm(key, next, result.error, baseEtag);
    } catch (error) {
      // The read-back found a version that is neither ours nor a valid task: we lost, and what
      // it names is unknown, so our new marker stays for the sweep.
      if (error instanceof MalformedObjectError) return { won: false, error };
      throw error;
    }
  }
}

/**
 * `task` naming `version` as its marker's version: none when the storage gave none or the task
 * names no marker (a version of another marker must never be deleted in its place).
 */
function withMarkerVersion(task: TaskRecord, version: string | undefined): TaskRecord {
  const { markerVersion: _, ...rest } = task;
  return version === undefined || task.marker === null ? rest : { ...rest, markerVersion: version };
}

/**
 * May the new marker of a lost write be deleted? Only when a read showed the task gone, or a
 * version that is neither ours nor the one we wrote over (our conditional PUT can then never
 * land any more) and does not name it. A read that still shows the version we wrote over proves
 * nothing: an unanswered PUT may land after it.
 */
function markerUnused(lost: WriteLost<TaskRecord>, baseEtag: string, marker: string): boolean {
  const seen = lost.readBack;
  if (seen === undefined) return false;
  if (seen === null) return true;
  if (sameEtag(seen.etag, baseEtag)) return false;
  // Our write may have landed and been built on since (a claim keeps the marker).
  return seen.value.marker !== marker;
}

/**
 * Parse the task stored at `key`. A body copied from another task's key names that task:
 * writing it back (If-Match on the other key) would fail on every pass or, worse, touch the
 * other task. Malformed here (found by the chaos tests' hostile client).
 */
function parseStoredTask(body: Uint8Array, key: string, keys: Keys): TaskRecord {
  const task = parseTask(body, key);
  if (task.id !== keys.parseTaskKey(key)) {
    throw new MalformedObjectError(`Object ${key} is not a valid task: it names task ${task.id}`, {
      key,
    });
  }
  return task;
}
