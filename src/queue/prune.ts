/**
 * Pruning: deleting finished tasks once their retention has passed (docs/protocol.md,
 * "Retention"). Driven by the finished journal, so it reads only journals past their retention
 * and the tasks they name, never a live task it was not pointed at. Each named task is read
 * before it is deleted, completed ones too: a journal is only a claim (a hand-written or buggy
 * one may name a live task), and only the record says whether the task is still finished as the
 * journal says. A scan of `tasks/` is the backstop for tasks the journal does not name (a writer
 * killed before its flush; tasks finished before the journal existed).
 *
 * @module
 */
import { NotFoundError, ThrottledError, ValidationError } from "../errors.ts";
import { checkTaskType, type FinishedStatus, type JournalKey } from "../keys.ts";
import { checkKnownKeys } from "../options.ts";
import type { TaskRecord } from "../task/record.ts";
import { isTerminal } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import type { QueueInternals } from "./internals.ts";
import type { JournalEntry, ReadJournal } from "./journal.ts";
import type { Manifest } from "./manifest.ts";
import { sweepPayloads } from "./payload-sweep.ts";
import { payloadKeys } from "./payloads.ts";
import {
  checkRetention,
  FINISHED_STATUSES,
  type RETENTION_RAISE_HOLD_MS,
  type RetentionInput,
  type RetentionSettings,
  retentionEndsAt,
  retentionMs,
  shortestRetentionMs,
} from "./retention.ts";

/** Options of `Queue.prune`. */
export interface PruneOptions {
  /** Only tasks of this type. Default: every type. */
  type?: string;
  /** Only tasks that ended in these statuses. Default: all four terminal statuses. */
  status?: FinishedStatus | readonly FinishedStatus[];
  /**
   * Retention for this run instead of the queue's settings (nothing is stored): per status a
   * duration (`"7d"`, seconds), `0` (delete every finished task), or `Infinity` (keep). Statuses
   * left out use the queue's settings. Default: the queue's settings (`Queue.setRetention`).
   */
  retention?: RetentionInput;
  /** Stop once this many tasks were deleted; the result then says `more`. Default: no limit. */
  limit?: number;
  /** Count what would be deleted and delete nothing. Default: false. */
  dryRun?: boolean;
  /**
   * Also walk every object under `tasks/` (one LIST per 1,000 objects, a GET per object older
   * than the shortest retention that applies), for finished tasks the journal does not name: a
   * worker killed within seconds of finishing them, or tasks finished by an oq without the
   * journal. Without `type`, it also walks `payloads/` (one LIST per 1,000 objects, a GET per
   * task with payloads older than a day) and deletes the payloads no task names. Default: false
   * (the journal alone).
   */
  scan?: boolean;
  /** Called after every journal and every page of the scan, with the counts so far. */
  onProgress?: (progress: PruneProgress) => void;
}

/** Every key of {@link PruneOptions} (the type makes the list whole). */
const PRUNE_OPTION_KEYS: Record<keyof PruneOptions, true> = {
  type: true,
  status: true,
  retention: true,
  limit: true,
  dryRun: true,
  scan: true,
  onProgress: true,
};

/** What a prune did so far. */
export interface PruneProgress {
  /** Task objects deleted (or, in a dry run, that would be). */
  deleted: number;
  /** Journals handled and deleted. */
  journals: number;
  /**
   * Journal entries whose task is not as the entry says (replayed or replaced since, gone, or
   * never finished: a journal written by hand): left alone.
   */
  skipped: number;
  /** Task objects looked at by the scan. */
  scanned: number;
}

/** What `Queue.prune` did. */
export interface PruneResult extends PruneProgress {
  /** True when it stopped at `limit` (or storage throttled it) with more to delete. */
  more: boolean;
  /**
   * With `scan` and no `type`: payload objects (large inputs and outputs) older than a day that
   * no task names, deleted (or, in a dry run, that would be).
   */
  orphanedPayloads?: number;
}

/**
 * How long the stored settings read before one delete serve the next ones, ms: a delete must land
 * within {@link RETENTION_RAISE_HOLD_MS} of that read, so this is a small part of it.
 */
const STORED_REUSE_MS = 10_000;

/** How many tasks `oq prune` reads (or deletes one by one) at once. */
const PRUNE_IN_FLIGHT = 16;

/** How a {@link PruneRun} runs. */
export interface PruneRunOptions {
  /** Count what would be deleted and delete nothing. Default false. */
  dryRun?: boolean;
  /** Tasks deleted at most before it stops with `more`. Default: no limit. */
  limit?: number;
  /** Called after each journal handled and each page scanned. */
  onProgress?: (progress: PruneProgress) => void;
  /**
   * Requests in flight at most while reading tasks or deleting them one by one. Default 16;
   * the monitor uses fewer, as it shares the worker's connections with the work.
   */
  inFlight?: number;
  /**
   * The settings are a caller's override, not the stored ones: tasks past them are deleted
   * without the check against the settings stored now (see {@link PruneRun}). Default false.
   */
  override?: boolean;
}

/** Prune the whole queue (or a type, some statuses) as `Queue.prune` describes. */
export async function pruneTasks(
  q: QueueInternals,
  options: PruneOptions = {},
): Promise<PruneResult> {
  checkKnownKeys(options, PRUNE_OPTION_KEYS, "prune options");
  if (options.type !== undefined) checkTaskType(options.type);
  const statuses = checkStatuses(options.status);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  if (!(limit >= 1))
    throw new ValidationError(`Invalid limit ${options.limit}: give a positive number of tasks.`);
  const manifest = await q.manifest.load({ fresh: true });
  const settings = withOverride(manifest, options.retention);
  const run = new PruneRun(q, settings, {
    dryRun: options.dryRun === true,
    limit,
    override: options.retention !== undefined,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  });
  const types = options.type !== undefined ? [options.type] : await q.journal.types();
  for (const taskType of types) {
    for (const status of statuses) {
      if (run.stopped) break;
      await run.partition(taskType, status, Number.POSITIVE_INFINITY);
    }
  }
  if (options.scan === true && !run.stopped) await run.scan(options.type, statuses);
  // Payloads no task names: only a walk of the whole queue (no type) looks for them.
  if (options.scan === true && !run.stopped && options.type === undefined)
    return { ...run.result(), orphanedPayloads: await sweepPayloads(q, options.dryRun === true) };
  return run.result();
}

/** Retention settings with a run's override over the stored ones. */
function withOverride(manifest: Manifest, given: RetentionInput | undefined): RetentionSettings {
  const stored = manifest.retention ?? {};
  if (given === undefined) return stored;
  const change = checkRetention(given);
  const override: Partial<Record<FinishedStatus, number | null>> = {};
  for (const status of FINISHED_STATUSES) {
    if (!(status in given)) continue;
    override[status] = change[status] ?? null;
  }
  // The override wins over per-type settings too: it is what the caller asked for now.
  const types: Record<string, Partial<Record<FinishedStatus, number | null>>> = {};
  for (const [name, value] of Object.entries(stored.types ?? {}))
    types[name] = { ...value, ...override };
  return { default: { ...stored.default, ...override }, types };
}

function checkStatuses(given: PruneOptions["status"]): readonly FinishedStatus[] {
  if (given === undefined) return FINISHED_STATUSES;
  const list = [given].flat();
  for (const status of list) {
    if (!FINISHED_STATUSES.includes(status))
      throw new ValidationError(
        `Invalid status ${JSON.stringify(status)} to prune: use ${FINISHED_STATUSES.join(", ")}.`,
      );
  }
  return list;
}

/**
 * One prune: its settings, counts and limit. The monitor runs one partition at a time.
 *
 * Before deleting, it reads the stored settings afresh and deletes only the tasks past them when
 * they were read: a replay decides by the stored settings, and those it lets go ahead are at
 * least the replay margin from their end, so a prune working from older settings (the monitor's
 * copy is up to 10 minutes old) would delete a task an operator raised the retention of and
 * replayed meanwhile. A run with an override deletes what it was asked to: it races replays of
 * the tasks the stored settings still keep (docs/protocol.md, "Retention").
 */
export class PruneRun {
  readonly #q: QueueInternals;
  readonly #settings: RetentionSettings;
  readonly #override: boolean;
  readonly #dryRun: boolean;
  readonly #limit: number;
  readonly #onProgress: ((progress: PruneProgress) => void) | undefined;
  readonly #inFlight: number;
  readonly #counts: PruneProgress = { deleted: 0, journals: 0, skipped: 0, scanned: 0 };
  #more = false;
  /** The stored settings as last read before a delete, with the local time of that read. */
  #stored: { manifest: Manifest; readAt: number } | undefined;

  constructor(q: QueueInternals, settings: RetentionSettings, options: PruneRunOptions = {}) {
    this.#q = q;
    this.#settings = settings;
    this.#override = options.override === true;
    this.#dryRun = options.dryRun === true;
    this.#limit = options.limit ?? Number.POSITIVE_INFINITY;
    this.#onProgress = options.onProgress;
    this.#inFlight = options.inFlight ?? PRUNE_IN_FLIGHT;
  }

  /** Whether it stopped early (limit, throttling) with more to do. */
  get stopped(): boolean {
    return this.#more;
  }

  /** The counts and whether more is left. */
  result(): PruneResult {
    return { ...this.#counts, more: this.#more };
  }

  /**
   * Prune the journals of `type` tasks that reached `status` whose retention has passed, oldest
   * first (after the key `startAfter`, when given), at most `maxJournals` of them. Says whether
   * journals past retention are left, the time of the oldest journal left (server ms; the time
   * of this look when there is none: anything written later is younger), so a caller can tell
   * when the partition can next hold one past retention, and the key of the last journal it
   * handled (deleted, or left in place on purpose), so a caller can go on after it.
   */
  async partition(
    taskType: string,
    status: FinishedStatus,
    maxJournals: number,
    startAfter?: string,
  ): Promise<{ more: boolean; oldestMs: number; last?: string }> {
    const keep = retentionMs(this.#settings, taskType, status);
    const now = this.#q.now();
    if (keep === Number.POSITIVE_INFINITY) return { more: false, oldestMs: now };
    const cutoff = now - keep;
    const beyond: { timeMs?: number } = {};
    let handled = 0;
    let last: string | undefined;
    const done = (more: boolean, oldestMs: number) =>
      last === undefined ? { more, oldestMs } : { more, oldestMs, last };
    for await (const journal of this.#q.journal.list(taskType, status, {
      untilMs: cutoff,
      beyond,
      ...(startAfter === undefined ? {} : { startAfter }),
    })) {
      if (this.#more || handled >= maxJournals) return done(true, journal.timeMs);
      handled++;
      await this.#journal(journal, cutoff);
      // A journal stopped at (throttled, or at `limit`) is not handled: it comes again.
      if (!this.#more) last = journal.key;
    }
    return done(this.#more, this.#more ? cutoff : (beyond.timeMs ?? now));
  }

  /**
   * Delete the tasks one journal names (those still as it says), then the journal, unless it
   * holds entries left undeleted: not yet due, or with an id that is no task id (warned about
   * once, the good entries pruned all the same: the journal stays for an operator).
   */
  async #journal(journal: JournalKey, cutoff: number): Promise<void> {
    const q = this.#q;
    let read: ReadJournal;
    try {
      read = await q.journal.read(journal.key);
    } catch (error) {
      if (error instanceof NotFoundError) return; // another pruner got there first
      if (error instanceof ValidationError) {
        q.warnOnce(journal.key, `${errorMessage(error)}; left for an operator`);
        return;
      }
      throw error;
    }
    const { entries, invalid } = read;
    if (invalid !== undefined)
      q.warnOnce(
        journal.key,
        `${invalid.message}; its other entries are pruned as usual, the journal is left for an operator`,
      );
    // A journal written by hand may name tasks that finished later than its key says.
    const due = entries.filter((e) => Date.parse(e.at) <= cutoff);
    const { tasks, skipped } = await this.#deletable(journal, due);
    const kept = await this.#pastStoredRetention(tasks);
    this.#counts.skipped += skipped;
    if (!(await this.#delete(kept.tasks))) return;
    // A task kept by settings raised since this run read its own: its entry is still needed.
    if (kept.held > 0 || due.length < entries.length || invalid !== undefined) return;
    if (!this.#dryRun) await q.storage.delete(journal.key);
    this.#counts.journals++;
    this.#onProgress?.({ ...this.#counts });
  }

  /**
   * The task keys of `entries` that may be deleted, with the payload objects of those tasks.
   * Every task is read first and deleted only while its record is still what the journal says:
   * of the journal's type, in its status, with the same `finishedAt`. A journal is only a claim
   * (one written by hand, or by a buggy writer, may name a live task); the record decides. So a
   * failed, cancelled or expired task replayed since, a completed one replaced by a submit with
   * its idempotency key, or a task that never finished is left alone, and the payloads deleted
   * are the ones the record names, never a journal's list. A replay (or a replacing submit) that
   * could land after that read is refused: it would have to decide before the retention's end
   * minus the replay margin (`./replay-hazard.ts`) and land after it, and both refuse from there
   * on.
   */
  async #deletable(
    journal: JournalKey,
    entries: readonly JournalEntry[],
  ): Promise<{ tasks: { task: TaskRecord; readMs: number }[]; skipped: number }> {
    const q = this.#q;
    const room = this.#limit - this.#counts.deleted;
    if (entries.length > room) {
      this.#more = true;
      entries = entries.slice(0, Math.max(0, room));
    }
    const readMs = q.now();
    const still = await mapLimit(entries, this.#inFlight, async (e) => {
      const found = await q.read(e.id).catch((error: unknown) => {
        if (error instanceof ValidationError) return undefined; // malformed: not ours to delete
        throw error;
      });
      const task = found?.task;
      return task?.type === journal.type &&
        task.status === journal.status &&
        task.finishedAt === e.at
        ? task
        : undefined;
    });
    const tasks: { task: TaskRecord; readMs: number }[] = [];
    for (const task of still) if (task !== undefined) tasks.push({ task, readMs });
    return { tasks, skipped: still.length - tasks.length };
  }

  /**
   * Of `tasks`, each with the server time before it was read, those past the retention stored
   * now (one GET of the manifest, at most every {@link STORED_REUSE_MS}) at that time, and how
   * many are not (held for later). All of them in a run with an override, and in a dry run
   * (which deletes nothing).
   */
  async #pastStoredRetention(
    tasks: readonly { task: TaskRecord; readMs: number }[],
  ): Promise<{ tasks: TaskRecord[]; held: number }> {
    const all = tasks.map((t) => t.task);
    if (this.#override || this.#dryRun || tasks.length === 0) return { tasks: all, held: 0 };
    const local = this.#q.clock.localNow();
    if (this.#stored === undefined || local - this.#stored.readAt > STORED_REUSE_MS)
      this.#stored = { manifest: await this.#q.manifest.load({ fresh: true }), readAt: local };
    const { retention } = this.#stored.manifest;
    const past = tasks.filter(({ task, readMs }) => retentionEndsAt(task, retention) <= readMs);
    return { tasks: past.map((t) => t.task), held: tasks.length - past.length };
  }

  /**
   * Delete `tasks` and the payload objects they name (batched together; only tasks are counted);
   * false when storage throttled it (try again later).
   */
  async #delete(tasks: readonly TaskRecord[]): Promise<boolean> {
    const q = this.#q;
    const keys = tasks.map((t) => q.keys.task(t.id));
    const payloads = tasks.flatMap((t) => payloadKeys(t).map((k) => q.keys.full(k)));
    if (keys.length === 0) return !this.#more;
    if (!this.#dryRun) {
      const storage = this.#q.storage;
      const all = [...keys, ...payloads];
      try {
        for (let i = 0; i < all.length; i += 1000) {
          const batch = all.slice(i, i + 1000);
          if (storage.deleteMany !== undefined && batch.length > 1) await storage.deleteMany(batch);
          else await mapLimit(batch, this.#inFlight, (key) => storage.delete(key));
          this.#counts.deleted += Math.max(0, Math.min(keys.length - i, batch.length));
        }
      } catch (error) {
        if (!(error instanceof ThrottledError)) throw error;
        this.#q.logger.warn(`prune throttled by storage; continuing later: ${errorMessage(error)}`);
        this.#more = true;
        return false;
      }
    } else this.#counts.deleted += keys.length;
    return !this.#more;
  }

  /**
   * The backstop: walk `tasks/` and delete the finished tasks past their retention, reading only
   * objects older than the shortest retention that applies (a LIST says when each was written).
   */
  async scan(onlyType: string | undefined, statuses: readonly FinishedStatus[]): Promise<void> {
    let continuationToken: string | undefined;
    do {
      const page = await this.scanPage(onlyType, statuses, continuationToken);
      if (page === undefined) return;
      continuationToken = page.next;
    } while (continuationToken !== undefined);
  }

  /**
   * One page of the {@link scan}, from `continuationToken` (the first page without one). Reads
   * only objects written more than the shortest retention plus `marginMs` ago. Undefined when
   * nothing can be past retention (none set) or the run stopped (limit, throttling); else the
   * token of the next page, if any.
   */
  async scanPage(
    onlyType: string | undefined,
    statuses: readonly FinishedStatus[],
    continuationToken?: string,
    marginMs = 0,
  ): Promise<{ next?: string } | undefined> {
    const q = this.#q;
    const shortest = shortestRetentionMs(this.#settings, statuses, onlyType);
    if (shortest === Number.POSITIVE_INFINITY) return undefined;
    const page = await q.storage.list({
      prefix: q.keys.tasks,
      ...(continuationToken === undefined ? {} : { continuationToken }),
    });
    const now = q.now();
    const old = page.objects.filter(
      (o) =>
        q.keys.parseTaskKey(o.key) !== undefined &&
        o.lastModified.getTime() <= now - shortest - marginMs,
    );
    this.#counts.scanned += page.objects.length;
    const found = await mapLimit(old, this.#inFlight, (o) =>
      q.read(q.keys.parseTaskKey(o.key)!).catch(() => undefined),
    );
    const tasks: { task: TaskRecord; readMs: number }[] = [];
    for (const entry of found) {
      const task = entry?.task;
      if (task === undefined || !this.#pastRetention(task, onlyType, statuses, now)) continue;
      tasks.push({ task, readMs: now });
    }
    const room = this.#limit - this.#counts.deleted;
    if (tasks.length > room) this.#more = true;
    const { tasks: taken } = await this.#pastStoredRetention(tasks.slice(0, Math.max(0, room)));
    const deleted = await this.#delete(taken);
    if (!deleted) return undefined;
    this.#onProgress?.({ ...this.#counts });
    return page.isTruncated && page.nextContinuationToken !== undefined
      ? { next: page.nextContinuationToken }
      : {};
  }

  #pastRetention(
    task: TaskRecord,
    onlyType: string | undefined,
    statuses: readonly FinishedStatus[],
    now: number,
  ): boolean {
    if (!isTerminal(task.status) || task.finishedAt === null) return false;
    if (onlyType !== undefined && task.type !== onlyType) return false;
    const status = task.status as FinishedStatus;
    if (!statuses.includes(status)) return false;
    return retentionEndsAt(task, this.#settings) <= now;
  }
}
