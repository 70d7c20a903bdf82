/**
 * The queue: submitting, reading, cancelling and replaying tasks. The protocol is described in
 * docs/protocol.md; the conditional writes and the ready index behind these calls are in
 * `./task-store.ts` and `./ready-index.ts`.
 *
 * @module
 */
import type { ServerClock } from "../clock.ts";
import { parseDuration } from "../duration.ts";
import { InvalidStateError, NotFoundError, TimeoutError, ValidationError } from "../errors.ts";
import type { Keys } from "../keys.ts";
import type { Logger } from "../logger.ts";
import { checkOptions, retentionOptionsSchema, waitOptionsSchema } from "../options.ts";
import type { Storage } from "../storage/storage.ts";
import type {
  AnyTaskDefinition,
  TaskInput,
  TaskRecordOf,
  TypedTaskRecord,
} from "../task/definition.ts";
import type { TaskHistoryEntry, TaskRecord } from "../task/record.ts";
import { isTerminal, replayTask } from "../task/transitions.ts";
import { sleep } from "../util/async.ts";
import {
  type BulkCancelOptions,
  type CancelOptions,
  cancelTask,
  cancelTasks,
  cancelTasksOfType,
} from "./cancel.ts";
import { attachInternals, QueueInternals } from "./internals.ts";
import { setTypeLimits, typeLimits } from "./limit-settings.ts";
import type { LimitsInput, TypeLimits } from "./limits.ts";
import { iterateTasks, listTasks, taskHistory, taskVersions } from "./list.ts";
import type { Manifest } from "./manifest.ts";
import { isTypePaused, keepPaused, pauseType, resumeType } from "./pause.ts";
import { type PruneOptions, type PruneResult, pruneTasks } from "./prune.ts";
import { type RepairOptions, type RepairResult, repairIndex } from "./repair.ts";
import { replayHazard, replayRefusal } from "./replay-hazard.ts";
import type { RetentionInput } from "./retention.ts";
import { type QueueStats, queueStats, type StatsOptions } from "./stats.ts";
import { type SubmitEntry, submitTask, submitTaskResult, submitTasks } from "./submit.ts";
import type {
  CancelOutcome,
  ListTasksOptions,
  QueueOptions,
  SubmitOptions,
  SubmitResult,
  TaskPage,
  TaskVersion,
  Versioned,
} from "./types.ts";

/** Options of {@link Queue.wait}. */
type WaitOptions = {
  /** Give up with `TimeoutError` after this long (seconds or a duration string). */
  timeout?: number | string;
  /** Stop waiting when it aborts: the wait rejects with the signal's reason. */
  signal?: AbortSignal;
};

/**
 * The entries of `submitMany` as checked: an entry whose type is a definition must have that
 * definition's input.
 */
type CheckedEntries<T extends readonly SubmitEntry[]> = {
  [K in keyof T]: T[K] extends { type: infer D extends AnyTaskDefinition }
    ? { type: D; input: TaskInput<D>; options?: SubmitOptions }
    : T[K];
};

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
   * Submit a task of a definition ({@link defineTask}): the input is typed by its schema and
   * validated before anything is written (`ValidationError` naming each bad path; the stored
   * input is the schema's result), and the definition's defaults fill in options not given.
   * Returns the stored record (for an idempotency key seen before: the first task, unchanged). The ready marker is written before the task, so a crash in between leaves
   * a harmless orphan marker rather than an invisible task.
   */
  submit<D extends AnyTaskDefinition>(
    definition: D,
    input: TaskInput<D>,
    options?: SubmitOptions,
  ): Promise<TaskRecordOf<D>>;
  /**
   * Submit a task of a type given by name, its input unchecked beyond JSON and size (prefer a
   * definition: a misspelt type name is accepted and waits for a handler that never comes).
   */
  submit(type: string, input?: unknown, options?: SubmitOptions): Promise<TaskRecord>;
  submit(
    type: string | AnyTaskDefinition,
    input?: unknown,
    options: SubmitOptions = {},
  ): Promise<TaskRecord> {
    return submitTask(this.#q, type, input, options);
  }

  /**
   * Submit a task under an idempotency key and say whether this call created it:
   * `{ task, created: true }` for a new task, `{ task, created: false }` when the key already
   * names one (then `task` is that one, unchanged). Of concurrent submits with the same key
   * exactly one gets `created: true`. A task of another type or input under the key throws
   * `IdempotencyConflictError`; with `idempotencyWindow`, the key expires that long after its
   * task's creation (see {@link SubmitOptions.idempotencyWindow}). `submit` behaves the same
   * and returns only the task. A definition ({@link defineTask}) types and validates the input.
   */
  submitUnique<D extends AnyTaskDefinition>(
    definition: D,
    input: TaskInput<D>,
    options: SubmitOptions & { idempotencyKey: string },
  ): Promise<SubmitResult<TaskRecordOf<D>>>;
  /** Submit a task of a type given by name under an idempotency key (see above). */
  submitUnique(
    type: string,
    input: unknown,
    options: SubmitOptions & { idempotencyKey: string },
  ): Promise<SubmitResult>;
  async submitUnique(
    type: string | AnyTaskDefinition,
    input: unknown,
    options: SubmitOptions & { idempotencyKey: string },
  ): Promise<SubmitResult> {
    if (typeof options?.idempotencyKey !== "string")
      throw new ValidationError(
        "submitUnique needs options.idempotencyKey: the key that makes the task unique.",
      );
    return submitTaskResult(this.#q, type, input, options);
  }

  /**
   * Submit several tasks (bounded parallelism: `concurrency` at once, default 32). Returns them
   * in the order given. An entry's `type` may be a definition ({@link defineTask}): its input is
   * then typed and validated.
   */
  submitMany<const T extends readonly SubmitEntry[]>(
    tasks: T & CheckedEntries<T>,
    options: { concurrency?: number } = {},
  ): Promise<TaskRecord[]> {
    // Validates everything first so a bad entry fails the call before anything is written.
    return submitTasks(this.#q, tasks, options);
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
   * Throws `TimeoutError` after `timeout` (seconds or a duration string; default: wait forever),
   * and the signal's reason once `signal` aborts.
   * Given the record `submit` returned (typed for a definition's task), it returns the same type:
   * `(await queue.wait(await queue.submit(email, input))).output`.
   */
  wait<R extends TaskRecord | TypedTaskRecord<unknown, unknown>>(
    task: R,
    options?: WaitOptions,
  ): Promise<R>;
  /** Wait until task `id` is terminal and return it (see above). */
  wait(id: string, options?: WaitOptions): Promise<TaskRecord>;
  async wait(task: string | { id: string }, options: WaitOptions = {}): Promise<TaskRecord> {
    checkOptions(waitOptionsSchema, options, "wait options");
    const id = typeof task === "string" ? task : task.id;
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
      // sleep() returns at once on an aborted signal: without this the loop polled the storage
      // as fast as it answered, for ever.
      options.signal?.throwIfAborted();
      await sleep(Math.min(delay, left), options.signal);
      delay = Math.min(2000, delay * 1.5);
    }
  }

  /**
   * Cancel a task. A pending task is cancelled at once; a running one is marked, its handler's
   * signal fires when its worker next checks (at most a third of a lease later), and the task
   * ends cancelled. Throws `InvalidStateError` for a task already terminal, and
   * `ValidationError` for a reason that is not a string of at most 1,000 characters.
   */
  cancel(id: string, options: CancelOptions = {}): Promise<TaskRecord> {
    return cancelTask(this.#q, id, options);
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
  async setShards(type: string, shards: number): Promise<Manifest> {
    const manifest = await this.#q.manifest.setShards(type, shards);
    await keepPaused(this.#q, type);
    return manifest;
  }

  /**
   * Pause `type` (docs/protocol.md, "Pause"): workers stop claiming its tasks within one poll
   * (at most `listReuseMs`, 2 s, for a busy worker, or its idle pause); running tasks finish;
   * submits still work and their tasks wait until {@link Queue.resume}. One PUT per shard of the
   * type; costs the workers nothing.
   */
  pause(type: string): Promise<void> {
    return pauseType(this.#q, type);
  }

  /** Resume a type paused with {@link Queue.pause}: its waiting tasks run again. */
  resume(type: string): Promise<void> {
    return resumeType(this.#q, type);
  }

  /** Whether `type` is paused (one HEAD). */
  isPaused(type: string): Promise<boolean> {
    return isTypePaused(this.#q, type);
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
   * `InvalidStateError` for a task in another state, for one whose retention ends within the
   * hour (or half its retention, when shorter): a prune may be deleting it (raise the retention
   * with `setRetention` first), and within 2 minutes of a raise of the retention that governs
   * it: a prune that read the earlier setting may still be deleting it.
   */
  async replay(id: string): Promise<TaskRecord> {
    const manifest = await this.#q.manifest.load({ fresh: true });
    let old: TaskRecord | undefined;
    const done = await this.#q.update(id, (task) => {
      const next = replayTask(task, this.now());
      old = task;
      const hazard = replayHazard(task, manifest, this.clock);
      if (hazard !== undefined)
        throw new InvalidStateError(replayRefusal(task, hazard), { key: id });
      return next;
    });
    // The earlier run's output object is named by nothing now, and no later run writes its key.
    if (old?.outputRef !== undefined) await this.#q.payloads.remove(old.outputRef.key);
    return done.task;
  }

  /**
   * Delete finished tasks whose retention has passed (see `setRetention`; defaults: completed
   * 7 days, failed, cancelled and expired 30 days), through the finished journal: it walks no
   * live tasks, and deletes a task a journal names only after reading it, while it is still
   * finished as the journal says (a replayed task, or a live one a hand-written journal names,
   * is left alone). Workers with the monitor on do this on their own, in small batches; this is
   * for operators and for queues without one. Before deleting, it reads the stored settings again
   * and leaves a task they keep (raised meanwhile). A `retention` override deletes what it
   * names, and races a replay of a task the stored settings still keep: replay nothing while
   * such a prune runs. Cost: a LIST per 1,000 journals, per journal past retention 1 GET and
   * 1 DELETE, per task 1 GET, per 1,000 tasks one `DeleteObjects`, and a GET of the manifest at
   * most every 10 s of deleting. With `scan`, also the walk of `tasks/` described at
   * {@link PruneOptions.scan}.
   */
  prune(options: PruneOptions = {}): Promise<PruneResult> {
    return pruneTasks(this.#q, options);
  }

  /**
   * Set how long finished tasks are kept, for the whole queue or (with `type`) one task type: per
   * status a duration (`"7d"`, or seconds), `0` to keep nothing, `Infinity` to keep everything,
   * `null` to fall back (to the queue's setting, then the default). Stored in the manifest, so
   * every worker and `oq prune` use it (workers within 10 minutes; a prune checks it afresh
   * before deleting). For 2 minutes after a raise, tasks it governs cannot be replayed (nor
   * replaced by a submit with their idempotency key): a prune that read the earlier setting may
   * still be deleting them. Returns the manifest.
   */
  async setRetention(
    retention: RetentionInput,
    options: { type?: string } = {},
  ): Promise<Manifest> {
    const { type } = checkOptions(retentionOptionsSchema, options, "retention options");
    return this.#q.manifest.setRetention(retention, type);
  }

  /**
   * Limit `type` across every worker of the queue: at most `concurrency` tasks running at once,
   * at most `ratePerSecond` starts per second (`null` removes a limit, absent keeps it). Enforced
   * with conditional writes to the type's limit object; a claim of a limited type costs 1 GET
   * and 1 PUT more, and with a concurrency limit 1 GET and 1 PUT more to free the slot and per
   * lease renewal (docs/protocol.md, "Concurrency and rate limits"). A change applies at the next
   * claim; a type limited for the first time, within 10 minutes (workers' manifest refresh).
   * Returns the type's limits and their use now. This is also how to repair a malformed limit
   * object (not JSON, the wrong shape), which blocks the type in every worker: it is replaced
   * by one holding the limits given, conditionally on its ETag (a concurrent writer is not
   * overwritten), with a warning logged and `replaced` in the result saying what it was.
   */
  setLimits(type: string, limits: LimitsInput): Promise<TypeLimits> {
    return setTypeLimits(this.#q, type, limits);
  }

  /** The fleet-wide limits of `type`, or of every limited type, with their use now. */
  limits(type?: string): Promise<TypeLimits[]> {
    return typeLimits(this.#q, type);
  }
}
