/**
 * The queue: submitting, reading, cancelling and replaying tasks. The protocol is described in
 * docs/protocol.md; the conditional writes and the ready index behind these calls are in
 * `./task-store.ts` and `./ready-index.ts`.
 *
 * @module
 */
import type { ServerClock } from "../clock.ts";
import { parseDuration } from "../duration.ts";
import { InvalidStateError, NotFoundError, TimeoutError } from "../errors.ts";
import type { Keys } from "../keys.ts";
import type { Logger } from "../logger.ts";
import type { Storage } from "../storage/storage.ts";
import type { TaskHistoryEntry, TaskRecord } from "../task/record.ts";
import { isTerminal, replayTask } from "../task/transitions.ts";
import { sleep } from "../util/async.ts";
import { type BulkCancelOptions, cancelTask, cancelTasks, cancelTasksOfType } from "./cancel.ts";
import { attachInternals, QueueInternals } from "./internals.ts";
import { iterateTasks, listTasks, taskHistory, taskVersions } from "./list.ts";
import type { Manifest } from "./manifest.ts";
import { type PruneOptions, type PruneResult, pruneTasks, replayMarginMs } from "./prune.ts";
import { type RepairOptions, type RepairResult, repairIndex } from "./repair.ts";
import { type RetentionInput, retentionMs } from "./retention.ts";
import { type QueueStats, queueStats, type StatsOptions } from "./stats.ts";
import { submitTask, submitTasks } from "./submit.ts";
import type {
  CancelOutcome,
  ListTasksOptions,
  QueueOptions,
  SubmitOptions,
  TaskPage,
  TaskVersion,
  Versioned,
} from "./types.ts";

/**
 * A queue over one storage and prefix. Create it with `connect()` (which also checks bucket
 * versioning) or directly with `new Queue({ storage })`.
 */
export class Queue {
  /** The storage this queue reads and writes. */
  readonly storage: Storage;
  /** The key layout under this queue's prefix. */
  readonly keys: Keys;
  /** Server time, from the storage's `Date` headers. */
  readonly clock: ServerClock;
  /** Where warnings go. */
  readonly logger: Logger;
  readonly #q: QueueInternals;

  constructor(options: QueueOptions) {
    this.#q = new QueueInternals(options);
    this.storage = this.#q.storage;
    this.keys = this.#q.keys;
    this.clock = this.#q.clock;
    this.logger = this.#q.logger;
    attachInternals(this, this.#q);
  }

  /** The current server time (epoch ms). */
  now(): number {
    return this.#q.now();
  }

  /**
   * Submit a task. Returns the stored record (for an idempotency key seen before: the first
   * task, unchanged). The ready marker is written before the task, so a crash in between leaves
   * a harmless orphan marker rather than an invisible task.
   */
  submit(type: string, input?: unknown, options: SubmitOptions = {}): Promise<TaskRecord> {
    return submitTask(this.#q, type, input, options);
  }

  /** Submit several tasks (bounded parallelism). Returns them in the order given. */
  submitMany(
    tasks: readonly { type: string; input?: unknown; options?: SubmitOptions }[],
    options: { concurrency?: number } = {},
  ): Promise<TaskRecord[]> {
    // Validates everything first so a bad entry fails the call before anything is written.
    return submitTasks(this.#q, tasks, options.concurrency ?? 16);
  }

  /** Read a task with the ETag of the version read; `undefined` when it does not exist. */
  read(id: string): Promise<Versioned | undefined> {
    return this.#q.read(id);
  }

  /**
   * Read a task, with its input and output as submitted and returned: a large one stored apart
   * (`inputRef`, `outputRef`) is read from its object (one more GET each). Throws
   * `NotFoundError` when the task does not exist or names a payload that does not, and
   * `MalformedObjectError` when a payload is not what the task recorded. `read` and `list`
   * return records as stored (a large value as `null` beside its reference).
   */
  async get(id: string): Promise<TaskRecord> {
    return this.#q.payloads.resolve(await this.#stored(id));
  }

  async #stored(id: string): Promise<TaskRecord> {
    const found = await this.#q.read(id);
    if (found === undefined) throw new NotFoundError(`Task ${id} not found.`, { key: id });
    return found.task;
  }

  /**
   * List tasks, oldest first, filtered by status and type, a page at a time. It never reads every
   * stored task: pending and running tasks are found through the ready index, finished ones
   * through the finished journal (bounded by `since`), and each task listed costs one GET. With
   * `status: "failed"` and a `type` this is the dead-letter list. A task finished by another
   * process within the last few seconds may not be listed yet (its journal is written at most 5 s
   * later). Cost: docs/protocol.md, "Listing tasks".
   */
  list(options: ListTasksOptions = {}): Promise<TaskPage> {
    return listTasks(this.#q, options);
  }

  /**
   * Every task {@link list} would return over all its pages, oldest first, read a page at a time
   * (bounded memory): e.g. `listAll({ status: "failed", type })` walks a type's dead letters.
   */
  listAll(options: Omit<ListTasksOptions, "limit" | "cursor"> = {}): AsyncGenerator<TaskRecord> {
    return iterateTasks(this.#q, options);
  }

  /**
   * The task's event log, oldest first: its last `TASK_HISTORY_LIMIT` (20) transitions with time,
   * worker, attempt and error, kept inside the record (consecutive lease renewals as one entry).
   * One GET, on every backend (R2 included), and unaffected by lifecycle rules that expire old
   * versions. Throws `NotFoundError` when the task does not exist.
   */
  getHistory(id: string): Promise<TaskHistoryEntry[]> {
    return taskHistory(this.#q, id);
  }

  /**
   * Every stored version of a task, oldest first, across all pages of the version listing: the
   * full record after each write, renewals included. Costs a LIST per 1,000 versions and a GET
   * per version. Needs a versioned bucket and lasts only as long as it keeps the versions; on an
   * unversioned one (R2) it returns only the current version.
   */
  getVersions(id: string): Promise<TaskVersion[]> {
    return taskVersions(this.#q, id);
  }

  /**
   * Wait until the task is terminal and return it. Polls with backoff (0.2 s up to 2 s).
   * Throws `TimeoutError` after `timeout` (seconds or a duration string; default: wait forever).
   */
  async wait(
    id: string,
    options: { timeout?: number | string; signal?: AbortSignal } = {},
  ): Promise<TaskRecord> {
    const limitMs =
      options.timeout === undefined
        ? Number.POSITIVE_INFINITY
        : parseDuration(options.timeout, "timeout");
    const start = this.clock.localNow();
    let delay = 200;
    for (;;) {
      const task = await this.#stored(id);
      if (isTerminal(task.status)) return this.#q.payloads.resolve(task);
      const left = limitMs - (this.clock.localNow() - start);
      if (left <= 0) {
        throw new TimeoutError(`Task ${id} is still ${task.status} after ${options.timeout}.`, {
          key: id,
        });
      }
      await sleep(Math.min(delay, left), options.signal);
      delay = Math.min(2000, delay * 1.5);
    }
  }

  /**
   * Cancel a task. A pending task is cancelled at once; a running one is marked, its handler's
   * signal fires when its worker next checks (at most a third of a lease later), and the task
   * ends cancelled. Throws `InvalidStateError` for a task already terminal.
   */
  cancel(id: string, options: { reason?: string } = {}): Promise<TaskRecord> {
    return cancelTask(this.#q, id, options.reason ?? null);
  }

  /** Cancel several tasks; reports for each id what happened and why. */
  cancelMany(ids: readonly string[], options: BulkCancelOptions = {}): Promise<CancelOutcome[]> {
    return cancelTasks(this.#q, ids, options);
  }

  /**
   * Cancel every pending or running task of a type. Finds them through the ready index (only
   * non-terminal tasks have markers, and markers name their type), so it reads no finished task.
   */
  cancelByType(type: string, options: BulkCancelOptions = {}): Promise<CancelOutcome[]> {
    return cancelTasksOfType(this.#q, type, options);
  }

  /**
   * The queue's manifest (`{prefix}queue.json`): its protocol version and the hash shards of each
   * task type. Creates it when the queue has none. Throws `ProtocolMismatchError` for a queue
   * written by an oq of another protocol.
   */
  manifest(): Promise<Manifest> {
    return this.#q.manifest.load({ fresh: true });
  }

  /**
   * Split the ready index of `type` into `shards` hash shards (1 to 256), so that a hot type's
   * submits, deletes and listings spread over that many key ranges. Shards can only be added
   * (`ValidationError` otherwise). Workers pick the change up within 10 minutes. Returns the
   * manifest.
   */
  setShards(type: string, shards: number): Promise<Manifest> {
    return this.#q.manifest.setShards(type, shards);
  }

  /**
   * Rebuild the ready index from the task objects (docs/protocol.md, "Repairing the index"):
   * for every object under `tasks/`, a non-terminal task whose marker is missing gets that exact
   * marker put back, and one that names no marker (or a key that is not one) gets a new marker
   * through the normal write path; then every marker under `ready/` that no task names is
   * deleted once older than the stale-marker grace (120 s). Terminal tasks need nothing;
   * malformed objects are reported, never touched. Page by page in bounded memory; with `limit`
   * it stops early and returns a `cursor` to continue from (`startAfter`).
   *
   * Cost: 1 LIST per 1,000 task objects and 1 GET each, 1 HEAD per non-terminal task, 1 PUT
   * per marker put back and 2 PUT (marker, task) per task re-indexed; then 1 LIST per 1,000
   * markers and 1 GET each, and per stale marker a share of one `DeleteObjects`, 1 GET (the
   * sweep's re-read) and, unless its task is terminal, 1 HEAD (about 18 when its task is
   * missing: the misplaced-task check). On AWS a million task objects cost about $0.40 of GETs.
   */
  repair(options: RepairOptions = {}): Promise<RepairResult> {
    return repairIndex(this.#q, options);
  }

  /**
   * Counts per task type: pending (due and delayed) and running tasks and the age of the oldest
   * due one, from the ready index; tasks completed, failed, cancelled and expired in the last hour
   * and day, and throughput, from the counts workers write in their heartbeats. Approximate:
   * a task claimed less than a second ago still counts as pending, a stale marker counts until it
   * is swept, finished counts lag by up to one heartbeat interval, and a worker killed without
   * stopping loses those since its last heartbeat.
   *
   * Cost, whatever the number of finished tasks: 1 LIST per 1,000 types (none with `types`), per
   * type 1 LIST per 1,000 markers (at most `maxPagesPerType`), and 2 LISTs plus 1 GET per
   * heartbeat or stopped worker's file of the last 25 hours. `requests` in the result says what
   * this call cost.
   */
  stats(options: StatsOptions = {}): Promise<QueueStats> {
    return queueStats(this.#q, options);
  }

  /**
   * Put a failed, expired or cancelled task back to pending with a fresh retry budget. Throws
   * `InvalidStateError` for a task in another state, and for one whose retention ends within
   * the hour (or half its retention, when shorter): a prune may be deleting it (raise the
   * retention with `setRetention` first).
   */
  async replay(id: string): Promise<TaskRecord> {
    const { retention } = await this.#q.manifest.load({ fresh: true });
    let old: TaskRecord | undefined;
    const done = await this.#q.update(id, (task) => {
      const next = replayTask(task, this.now());
      old = task;
      const keep = retentionMs(retention, task.type, task.status as "failed");
      const endsAt = Date.parse(task.finishedAt ?? task.updatedAt) + keep;
      if (endsAt - replayMarginMs(keep) <= this.now())
        throw new InvalidStateError(
          `Cannot replay task ${id}: it is ${task.status} and its retention ends ${keep === 0 ? "at once" : `at ${new Date(endsAt).toISOString()}`}, so a prune may be deleting it. Raise the ${task.status} retention of ${task.type} (oq retention) and replay it again.`,
          { key: id },
        );
      return next;
    });
    // The earlier run's output object is named by nothing now, and no later run writes its key.
    if (old?.outputRef !== undefined) await this.#q.payloads.remove(old.outputRef.key);
    return done.task;
  }

  /**
   * Delete finished tasks whose retention has passed (see `setRetention`; defaults: completed
   * 7 days, failed, cancelled and expired 30 days), through the finished journal: it reads no
   * live task and, for completed tasks, not even those it deletes. Workers with the monitor on
   * do this on their own, in small batches; this is for operators and for queues without one.
   * Cost: a LIST per 1,000 journals, per journal past retention 1 GET and 1 DELETE, per 1,000
   * tasks one `DeleteObjects`, and per failed, cancelled or expired task 1 GET (a replayed task
   * is left alone). With `scan`, also the walk of `tasks/` described at {@link PruneOptions.scan}.
   */
  prune(options: PruneOptions = {}): Promise<PruneResult> {
    return pruneTasks(this.#q, options);
  }

  /**
   * Set how long finished tasks are kept, for the whole queue or (with `type`) one task type: per
   * status a duration (`"7d"`, or seconds), `0` to keep nothing, `Infinity` to keep everything,
   * `null` to fall back (to the queue's setting, then the default). Stored in the manifest, so
   * every worker and `oq prune` use it (workers within 10 minutes). Returns the manifest.
   */
  setRetention(retention: RetentionInput, options: { type?: string } = {}): Promise<Manifest> {
    return this.#q.manifest.setRetention(retention, options.type);
  }
}
