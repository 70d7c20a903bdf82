/**
 * Repairing the ready index from the task objects (docs/protocol.md, "Repairing the index"). The
 * task objects are the truth and markers a projection of them, so the index can be rebuilt: every
 * non-terminal task gets the marker it names put back (or, when it names none, a new one through
 * the normal write path), then every marker no task names is swept once past the grace. Page by
 * page, in bounded memory, resumable from a cursor.
 *
 * @module
 */
import { MalformedObjectError, NotFoundError, ValidationError } from "../errors.ts";
import type { ReadyMarker } from "../keys.ts";
import { checkOptions, repairOptionsSchema } from "../options.ts";
import type { ObjectInfo } from "../storage/storage.ts";
import { isTerminal } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import type { QueueInternals } from "./internals.ts";
import { MARKER_GRACE_MS } from "./ready-index.ts";

/** Options of {@link Queue.repair}. */
export interface RepairOptions {
  /**
   * Continue after this key: the `cursor` of an earlier run (a key under `tasks/` resumes the
   * scan of task objects; one under `ready/`, the check of markers). Default: from the start.
   */
  startAfter?: string;
  /**
   * Stop after looking at this many objects (task objects and markers together) and return a
   * `cursor` to continue from. Default: no limit (one run does everything).
   */
  limit?: number;
  /** Only report what would be done; write and delete nothing. Default `false`. */
  dryRun?: boolean;
  /** Requests in flight at once, 1 to 100. Default 16. */
  concurrency?: number;
  /** Keys per listing page (and per step of progress), 1 to 1000. Default 1000. */
  pageSize?: number;
  /** After the task objects, check every marker under `ready/` and sweep stale ones. Default `true`. */
  checkMarkers?: boolean;
  /** Called after every page with the counts so far. Default: none. */
  onProgress?: (progress: RepairProgress) => void;
}

/** The counts of a repair so far (every `onProgress` call), and at its end. */
export interface RepairCounts {
  /** Objects listed under `tasks/` and looked at. */
  tasksScanned: number;
  /** Missing markers put back under the exact key their non-terminal task names. */
  markersRestored: number;
  /** Non-terminal tasks that named no marker (or a key that is not one) and were given one. */
  tasksReindexed: number;
  /** Markers under `ready/` looked at. */
  markersChecked: number;
  /**
   * Markers no task names (missing, terminal, naming another), and keys under `ready/` that are
   * not markers at all, deleted past the grace.
   */
  staleMarkersDeleted: number;
  /** The same, left alone: younger than the grace, their writer may be mid-write. */
  youngMarkersLeft: number;
  /** Stale markers kept because they are the only trace of a task written by hand with a mistake. */
  strandedMarkersKept: number;
  /** Objects that could not be read as what their key says: reported, never touched. */
  unreadable: number;
}

/** Progress of a repair, given to `onProgress` after every page. */
export interface RepairProgress extends RepairCounts {
  /** What the repair is going through: the task objects, then the markers. */
  phase: "tasks" | "markers";
  /** The last key handled: pass it as `startAfter` to continue from here. */
  cursor: string;
}

/** One thing a repair did (or, in a dry run, would do), or found for an operator. */
export interface RepairAction {
  /** What was done. */
  action:
    | "marker-restored"
    | "task-reindexed"
    | "stale-marker-deleted"
    | "young-marker-left"
    | "stranded-marker-kept"
    | "unreadable";
  /** The object it concerns (the marker, or the task object). */
  key: string;
  /** Why, or what to fix. */
  message?: string;
}

/** What {@link Queue.repair} did. */
export interface RepairResult extends RepairCounts {
  /** Whether it was a dry run (nothing written). */
  dryRun: boolean;
  /** Set when it stopped at `limit`: pass it as `startAfter` to continue. */
  cursor?: string;
  /** What it did, in order, at most the first 1,000 (the counts are complete). */
  actions: RepairAction[];
  /** Actions left out of `actions` beyond the first 1,000. */
  actionsOmitted: number;
}

/** At most this many actions are kept in a result: memory stays bounded on any bucket. */
const MAX_ACTIONS = 1000;

type Listed = ReadyMarker & { lastModified: Date };

/** Run a repair of `q`'s index (see {@link Queue.repair}). */
export async function repairIndex(q: QueueInternals, given: RepairOptions): Promise<RepairResult> {
  const options = checkOptions(repairOptionsSchema, given, "repair options");
  return new Repair(q, { ...options, onProgress: given.onProgress }).run();
}

/** One run of a repair: its options, counts and the actions it reports. */
class Repair {
  readonly #q: QueueInternals;
  readonly #o: RepairOptions;
  readonly #dryRun: boolean;
  readonly #pageSize: number;
  readonly #result: RepairResult;
  #budget: number;

  constructor(q: QueueInternals, options: RepairOptions) {
    this.#q = q;
    this.#o = options;
    this.#dryRun = options.dryRun ?? false;
    this.#pageSize = options.pageSize ?? 1000;
    this.#budget = options.limit ?? Number.POSITIVE_INFINITY;
    this.#result = {
      dryRun: this.#dryRun,
      tasksScanned: 0,
      markersRestored: 0,
      tasksReindexed: 0,
      markersChecked: 0,
      staleMarkersDeleted: 0,
      youngMarkersLeft: 0,
      strandedMarkersKept: 0,
      unreadable: 0,
      actions: [],
      actionsOmitted: 0,
    };
  }

  async run(): Promise<RepairResult> {
    const { tasks, ready } = this.#q.keys;
    const start = this.#o.startAfter;
    if (start !== undefined && !start.startsWith(tasks) && !start.startsWith(ready)) {
      throw new ValidationError(
        `Invalid repair options: startAfter must be the cursor of an earlier repair (a key under ${tasks} or ${ready}), was ${JSON.stringify(start)}.`,
      );
    }
    // A queue of another protocol is refused (ProtocolMismatchError) before anything is
    // touched: its markers would all look like junk here. A dry run creates no manifest.
    if (!this.#dryRun || (await this.#exists(this.#q.keys.manifest))) await this.#q.manifest.load();
    let cursor = start?.startsWith(ready) ? start : await this.#tasks(start);
    if (cursor?.startsWith(tasks)) return { ...this.#result, cursor };
    if (this.#o.checkMarkers === false) return this.#result;
    if (this.#budget <= 0) return { ...this.#result, cursor: cursor ?? ready };
    cursor = await this.#markers(cursor === ready ? undefined : cursor);
    return cursor === undefined ? this.#result : { ...this.#result, cursor };
  }

  /**
   * Every task object after `startAfter`, a page at a time. Returns the cursor to continue from:
   * the last task key when the budget ran out first, `ready/` when the task objects are done but
   * no budget is left for the markers, else `undefined`.
   */
  async #tasks(startAfter: string | undefined): Promise<string | undefined> {
    const q = this.#q;
    let after = startAfter;
    for (;;) {
      if (this.#budget <= 0) return after ?? q.keys.tasks;
      const page = await q.storage.list({
        prefix: q.keys.tasks,
        maxKeys: Math.min(this.#pageSize, this.#budget),
        ...(after === undefined ? {} : { startAfter: after }),
      });
      const keys = page.objects.map((o) => o.key);
      await mapLimit(keys, this.#o.concurrency ?? 16, (key) => this.#task(key));
      this.#budget -= keys.length;
      this.#result.tasksScanned += keys.length;
      after = keys.at(-1) ?? after;
      if (after !== undefined) this.#progress("tasks", after);
      if (!page.isTruncated) return this.#budget > 0 ? undefined : q.keys.ready;
    }
  }

  /** Put back the marker of the task object at `key`, or give it one, when it needs it. */
  async #task(key: string): Promise<void> {
    const q = this.#q;
    const id = q.keys.parseTaskKey(key);
    if (id === undefined) {
      return this.#unreadable(
        key,
        "not a task key: oq reads a task from tasks/{shard}/{id}.json (docs/protocol.md, Objects)",
      );
    }
    let found: Awaited<ReturnType<QueueInternals["read"]>>;
    try {
      found = await q.read(id);
    } catch (error) {
      if (error instanceof MalformedObjectError) return this.#unreadable(key, error.message);
      throw error;
    }
    if (found === undefined || isTerminal(found.task.status)) return;
    const own = q.tasks.ownMarker(found.task);
    if (own === null) return this.#reindex(id, key);
    if (await this.#exists(q.keys.full(own))) return;
    if (!this.#dryRun) await q.index.put(own);
    this.#result.markersRestored++;
    this.#act({ action: "marker-restored", key: q.keys.full(own), message: `task ${id}` });
  }

  /**
   * Give task `id` (non-terminal, naming no marker of its own) a marker, through the normal write
   * path: it places the marker and writes it before the task names it.
   */
  async #reindex(id: string, key: string): Promise<void> {
    const q = this.#q;
    if (this.#dryRun) {
      this.#result.tasksReindexed++;
      return this.#act({ action: "task-reindexed", key, message: "would get a new marker" });
    }
    let ours: string | undefined;
    let after: Awaited<ReturnType<QueueInternals["update"]>>;
    try {
      after = await q.update(id, (t) => {
        ours = undefined;
        if (isTerminal(t.status) || q.tasks.ownMarker(t) !== null) return undefined;
        ours = new Date(q.now()).toISOString();
        return { ...t, updatedAt: ours };
      });
    } catch (error) {
      if (error instanceof NotFoundError) return;
      throw error;
    }
    if (ours === undefined || after.task.updatedAt !== ours) return;
    this.#result.tasksReindexed++;
    this.#act({ action: "task-reindexed", key, message: `now names ${after.task.marker}` });
  }

  /**
   * Every marker after `startAfter`, a page at a time: those no task names are swept past the
   * grace (the sweep puts back any a task came to name meanwhile). Returns the cursor to continue
   * from when the budget ran out first.
   */
  async #markers(startAfter: string | undefined): Promise<string | undefined> {
    const q = this.#q;
    let batch: Listed[] = [];
    const junk: { key: string }[] = [];
    for await (const marker of q.markers({
      ...(startAfter === undefined ? {} : { startAfter }),
      onMalformed: (o) => this.#junk(o, junk),
    })) {
      batch.push(marker);
      if (batch.length >= Math.min(this.#pageSize, this.#budget)) {
        await this.#markerPage(batch, junk.splice(0));
        if (this.#budget <= 0) return batch.at(-1)!.key;
        batch = [];
      }
    }
    if (batch.length + junk.length > 0) await this.#markerPage(batch, junk.splice(0));
    return undefined;
  }

  /**
   * A key under `ready/` that is not a marker: nothing can name it, but whatever wrote it gets
   * the grace, as from the monitor. Past it, it goes into `junk`, swept with the next page.
   */
  #junk(o: ObjectInfo, junk: { key: string }[]): void {
    if (o.lastModified.getTime() + MARKER_GRACE_MS <= this.#q.now()) {
      junk.push({ key: o.key });
      return;
    }
    this.#result.youngMarkersLeft++;
    this.#act({ action: "young-marker-left", key: o.key, message: "not a ready marker" });
  }

  /** Check one page of markers and sweep the stale ones, with the junk keys found meanwhile. */
  async #markerPage(batch: readonly Listed[], junk: readonly { key: string }[]): Promise<void> {
    const now = this.#q.now();
    const verdicts = await mapLimit(batch, this.#o.concurrency ?? 16, (m) => this.#marker(m, now));
    this.#budget -= batch.length;
    this.#result.markersChecked += batch.length;
    const stale = [...batch.filter((_m, i) => verdicts[i]), ...junk];
    const restored = new Set(this.#dryRun ? [] : await this.#q.sweepMarkers(stale));
    for (const m of stale) {
      if (restored.has(m.key)) continue;
      this.#result.staleMarkersDeleted++;
      const why = "id" in m ? {} : { message: "not a ready marker" };
      this.#act({ action: "stale-marker-deleted", key: m.key, ...why });
    }
    this.#progress("markers", batch.at(-1)?.key ?? junk.at(-1)!.key);
  }

  /** Whether marker `m` is stale and may be swept now (server time `now`); reports the others. */
  async #marker(m: Listed, now: number): Promise<boolean> {
    const q = this.#q;
    let found: Awaited<ReturnType<QueueInternals["read"]>>;
    try {
      found = await q.read(m.id);
    } catch (error) {
      // The task object is reported by the task scan; its marker is left with it.
      if (error instanceof MalformedObjectError) return false;
      throw error;
    }
    const task = found?.task;
    if (task !== undefined && !isTerminal(task.status) && task.marker === m.relative) return false;
    if (m.lastModified.getTime() + MARKER_GRACE_MS > now) {
      this.#result.youngMarkersLeft++;
      this.#act({ action: "young-marker-left", key: m.key, message: "younger than the grace" });
      return false;
    }
    if (task !== undefined && isTerminal(task.status)) return true;
    const stranded = await q.strandedTask(m, found);
    if (stranded === undefined) return true;
    this.#result.strandedMarkersKept++;
    this.#act({ action: "stranded-marker-kept", key: m.key, message: stranded });
    return false;
  }

  async #exists(key: string): Promise<boolean> {
    try {
      await this.#q.storage.head(key);
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) return false;
      throw error;
    }
  }

  #unreadable(key: string, message: string): void {
    this.#result.unreadable++;
    this.#act({ action: "unreadable", key, message });
  }

  #act(action: RepairAction): void {
    if (this.#result.actions.length < MAX_ACTIONS) this.#result.actions.push(action);
    else this.#result.actionsOmitted++;
  }

  #progress(phase: RepairProgress["phase"], cursor: string): void {
    const { actions: _a, actionsOmitted: _o, dryRun: _d, ...counts } = this.#result;
    this.#o.onProgress?.({ ...counts, phase, cursor });
  }
}
