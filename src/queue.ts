/**
 * The queue: submitting, reading, cancelling and replaying tasks, and the conditional-write
 * plumbing that the worker and the monitor share. The protocol is described in docs/protocol.md.
 *
 * @module
 */
import { type Now, ServerClock } from "./clock.ts";
import { parseDate, parseDuration } from "./duration.ts";
import {
  AmbiguousWriteError,
  ConflictError,
  InvalidStateError,
  isOqError,
  MalformedObjectError,
  NotFoundError,
  PreconditionFailedError,
  TimeoutError,
  ValidationError,
} from "./errors.ts";
import { checkTaskId, checkTaskType, Keys, type ReadyMarker } from "./keys.ts";
import { type Logger, silentLogger } from "./logger.ts";
import {
  checkOptions,
  listOptionsSchema,
  submitOptionsSchema,
  taskDefaultsSchema,
} from "./options.ts";
import { type ObjectInfo, type Storage, sameEtag } from "./storage/storage.ts";
import { DEFAULT_BACKOFF } from "./task/backoff.ts";
import {
  type Backoff,
  encodeTask,
  parseTask,
  type TaskRecord,
  type TaskStatus,
} from "./task/record.ts";
import {
  createTask,
  isTerminal,
  placeMarker,
  replayTask,
  requestCancel,
} from "./task/transitions.ts";

/** Options of {@link Queue}. */
export interface QueueOptions {
  /** Where tasks live. */
  storage: Storage;
  /** Key prefix of this queue inside the bucket (`""` or ending in `/`). */
  prefix?: string;
  /** Local clock in epoch ms (default `Date.now`); corrected by the server's `Date` headers. */
  now?: Now;
  /** Random numbers in [0, 1) for jitter and shuffling (default `Math.random`). */
  random?: () => number;
  /** Random hex ids and tokens (default from `crypto.getRandomValues`). */
  randomHex?: (length: number) => string;
  /** Where warnings about malformed objects and recoveries go (default: nowhere). */
  logger?: Logger;
  /** Largest accepted task input, serialized, in bytes. Default 256 KiB. */
  maxInputBytes?: number;
  /** Defaults for submitted tasks. */
  defaults?: TaskDefaults;
}

/** Defaults applied to tasks submitted without their own values. */
export interface TaskDefaults {
  /** Retries after the first run. Default 3. */
  maxRetries?: number;
  /** Backoff between attempts. Default 1 s doubling up to 300 s. */
  backoff?: Partial<Backoff>;
  /** Per-attempt time limit in seconds. Default: none (the worker's default applies). */
  timeoutSeconds?: number;
}

/** Options of {@link Queue.submit}. */
export interface SubmitOptions {
  /** Do not start before this time (a Date, epoch ms or ISO 8601 with timezone). */
  scheduleAt?: Date | number | string;
  /** Do not start before this delay from now (seconds, or `"90s"`, `"1h30m"`). */
  delay?: number | string;
  /** Expire if not started within this many seconds after it becomes available... from submission. */
  ttlSeconds?: number;
  /** Expire if not started by this time. */
  expiresAt?: Date | number | string;
  /** Per-attempt time limit in seconds. */
  timeoutSeconds?: number;
  /** Retries after the first run. */
  maxRetries?: number;
  /** Backoff between attempts. */
  backoff?: Partial<Backoff>;
  /** A second submit with the same key returns the first task instead of creating another. */
  idempotencyKey?: string;
}

/** A task together with the ETag of the version read. */
export interface Versioned {
  /** The task record. */
  task: TaskRecord;
  /** ETag of that version, exactly as returned. */
  etag: string;
}

/** Options of {@link Queue.write} and {@link Queue.update}. */
export interface WriteOptions {
  /** Delete the task's old marker in a later batch rather than now (workers finishing tasks). */
  batchMarkerDelete?: boolean;
}

/** Options of {@link Queue.list}. */
export interface ListTasksOptions {
  /** Only tasks in this state (or these states). */
  status?: TaskStatus | TaskStatus[];
  /** Only tasks of this type. */
  type?: string;
  /** Page size (tasks returned at most). Default 100. */
  limit?: number;
  /** The `cursor` of the previous page. */
  cursor?: string;
}

/** One page of {@link Queue.list}. */
export interface TaskPage {
  /** Matching tasks, in key order. */
  tasks: TaskRecord[];
  /** Pass to get the next page; absent on the last page. */
  cursor?: string;
}

/** The outcome for one id of a bulk cancel. */
export interface CancelOutcome {
  /** The task id. */
  id: string;
  /** True when the task is now cancelled or will be once its handler stops. */
  ok: boolean;
  /**
   * `cancelled`, `cancel-requested` (running), or why not: `not-found`, `already-<status>`,
   * `invalid-id`, or `malformed` (the stored object is not a valid task; see `message`).
   */
  result: string;
  /** Why the stored object was rejected, for a `malformed` result. */
  message?: string;
  /** The task after the call, when it exists. */
  task?: TaskRecord;
}

/** One stored version of a task, as {@link Queue.getHistory} returns it. */
export interface HistoryEntry {
  /** The storage version id. */
  versionId: string;
  /** When the version was written (storage time). */
  lastModified: Date;
  /** The record, or null for a delete marker. */
  task: TaskRecord | null;
}

const encoder = new TextEncoder();

function defaultRandomHex(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil(length / 2)));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0"))
    .join("")
    .slice(0, length);
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** How many conflicting writers a read-modify-write outlasts before giving up. */
const MAX_CAS_ROUNDS = 20;

/** A marker not named by its task is deleted only after this long: its writer may be mid-move. */
export const MARKER_GRACE_MS = 120_000;

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
  /** Random numbers in [0, 1). */
  readonly random: () => number;
  /** Random hex strings. */
  readonly randomHex: (length: number) => string;
  /** Where warnings go. */
  readonly logger: Logger;
  readonly #maxInputBytes: number;
  readonly #retired: string[] = [];
  readonly #warned = new Set<string>();
  #retireTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #defaults: { maxRetries: number; backoff: Backoff; timeoutSeconds: number | null };

  constructor(options: QueueOptions) {
    this.storage = options.storage;
    this.keys = new Keys(options.prefix);
    this.clock = new ServerClock(options.storage, options.now);
    this.random = options.random ?? Math.random;
    this.randomHex = options.randomHex ?? defaultRandomHex;
    this.logger = options.logger ?? silentLogger;
    this.#maxInputBytes = options.maxInputBytes ?? 256 * 1024;
    const d = checkOptions(taskDefaultsSchema, options.defaults, "defaults");
    this.#defaults = {
      maxRetries: d.maxRetries ?? 3,
      backoff: { ...DEFAULT_BACKOFF, ...d.backoff },
      timeoutSeconds: d.timeoutSeconds ?? null,
    };
  }

  /** The current server time (epoch ms). */
  now(): number {
    return this.clock.now();
  }

  /** A new marker key (relative) for a task becoming due at `dueMs`. */
  newMarker(type: string, id: string, dueMs: number): string {
    return this.keys.newReadyMarker(dueMs, type, id, this.randomHex(8));
  }

  // ---- submitting -------------------------------------------------------------------------

  /**
   * Submit a task. Returns the stored record (for an idempotency key seen before: the first
   * task, unchanged). The ready marker is written before the task, so a crash in between leaves
   * a harmless orphan marker rather than an invisible task.
   */
  async submit(type: string, input?: unknown, given: SubmitOptions = {}): Promise<TaskRecord> {
    checkTaskType(type);
    const options = checkOptions(submitOptionsSchema, given, "submit options");
    const inputValue = this.checkInput(type, input);
    const now = this.now();
    const availableAt = this.#availableAt(options, now);
    const expiresAt = this.#expiresAt(options, now, availableAt);
    const idempotencyKey = options.idempotencyKey ?? null;
    const id =
      idempotencyKey === null
        ? this.randomHex(32)
        : (await sha256Hex(`oq-idempotency:${idempotencyKey}`)).slice(0, 32);
    const key = this.keys.task(id);
    if (idempotencyKey !== null) {
      const existing = await this.read(id);
      if (existing !== undefined) return existing.task;
    }
    const maxRetries = options.maxRetries ?? this.#defaults.maxRetries;
    const timeoutSeconds = options.timeoutSeconds ?? this.#defaults.timeoutSeconds;
    const backoff: Backoff = { ...this.#defaults.backoff, ...options.backoff };
    const marker = this.newMarker(type, id, availableAt);
    const task = createTask(
      {
        id,
        type,
        input: inputValue,
        maxRetries,
        backoff,
        timeoutSeconds,
        availableAt,
        expiresAt,
        idempotencyKey,
        marker,
      },
      now,
    );
    const startedLocal = this.clock.localNow();
    await this.storage.put(this.keys.full(marker), new Uint8Array(0));
    const body = encodeTask(task);
    for (let round = 0; ; round++) {
      try {
        await this.storage.put(key, body, { ifNoneMatch: "*", contentType: "application/json" });
        await this.#healMarker(marker, startedLocal);
        return task;
      } catch (error) {
        if (
          error instanceof PreconditionFailedError ||
          error instanceof AmbiguousWriteError ||
          error instanceof ConflictError
        ) {
          const current = await this.read(id);
          if (current !== undefined) {
            // Another task holds the id, so our create can never land: our marker is unused.
            if (current.task.marker !== marker) await this.#deleteQuietly(this.keys.full(marker));
            else await this.#healMarker(marker, startedLocal);
            return current.task;
          }
          if (round < 5) continue;
        }
        throw error;
      }
    }
  }

  /** Submit several tasks (bounded parallelism). Returns them in the order given. */
  async submitMany(
    tasks: readonly { type: string; input?: unknown; options?: SubmitOptions }[],
    options: { concurrency?: number } = {},
  ): Promise<TaskRecord[]> {
    // Validate everything first so a bad entry fails the call before anything is written.
    for (const [i, t] of tasks.entries()) {
      try {
        checkTaskType(t.type);
        this.checkInput(t.type, t.input);
        checkOptions(submitOptionsSchema, t.options, "submit options");
      } catch (error) {
        if (error instanceof ValidationError)
          throw new ValidationError(`Task #${i}: ${error.message}`);
        throw error;
      }
    }
    const out: TaskRecord[] = new Array(tasks.length);
    await mapLimit(tasks, options.concurrency ?? 16, async (t, i) => {
      out[i] = await this.submit(t.type, t.input, t.options);
    });
    return out;
  }

  /**
   * Check that `input` can be stored as the input of a `type` task: JSON-serializable and within
   * the size limit. Returns the value as it will be stored (a JSON round trip). Throws
   * `ValidationError` saying what to fix.
   */
  checkInput(type: string, input: unknown): unknown {
    let text: string | undefined;
    try {
      text = JSON.stringify(input === undefined ? null : input, (_k, v) => {
        if (typeof v === "bigint")
          throw new ValidationError(
            "BigInt values cannot be stored as JSON; convert them to strings.",
          );
        if (typeof v === "function" || typeof v === "symbol")
          throw new ValidationError(`a ${typeof v} is not JSON-serializable`);
        if (typeof v === "number" && !Number.isFinite(v))
          throw new ValidationError(`the number ${v} is not JSON-serializable`);
        return v;
      });
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new ValidationError(`Input of ${type} task is not JSON-serializable: ${why}`);
    }
    const size = encoder.encode(text).length;
    if (size > this.#maxInputBytes) {
      throw new ValidationError(
        `Input of ${type} task is ${size} bytes; the limit is ${this.#maxInputBytes}. Store large data in its own object and pass its key.`,
      );
    }
    return JSON.parse(text!);
  }

  #availableAt(options: SubmitOptions, now: number): number {
    if (options.scheduleAt !== undefined && options.delay !== undefined) {
      throw new ValidationError("Give either scheduleAt or delay, not both.");
    }
    if (options.scheduleAt !== undefined) return parseDate(options.scheduleAt, "scheduleAt");
    if (options.delay !== undefined) return now + parseDuration(options.delay, "delay");
    return now;
  }

  #expiresAt(options: SubmitOptions, now: number, availableAt: number): number | null {
    if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) {
      throw new ValidationError("Give either ttlSeconds or expiresAt, not both.");
    }
    if (options.ttlSeconds !== undefined) {
      return Math.max(now, availableAt) + options.ttlSeconds * 1000;
    }
    if (options.expiresAt !== undefined) return parseDate(options.expiresAt, "expiresAt");
    return null;
  }

  // ---- reading ----------------------------------------------------------------------------

  /** Read a task with its ETag; `undefined` when it does not exist. */
  async read(id: string): Promise<Versioned | undefined> {
    const key = this.keys.task(checkTaskId(id));
    try {
      const got = await this.storage.get(key);
      const task = parseTask(got.body, key);
      // A body copied from another task's key names that task: writing it back (If-Match on
      // the other key) would fail on every pass or, worse, touch the other task. Malformed here
      // (found by the chaos tests' hostile client).
      if (task.id !== id) {
        throw new MalformedObjectError(
          `Object ${key} is not a valid task: it names task ${task.id}`,
          {
            key,
          },
        );
      }
      return { task, etag: got.etag };
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * The key of an object for task `id` stored under a wrong shard (see {@link Keys.misplacedTasks}),
   * or `undefined` when there is none. One HEAD per candidate key (about 18): only the monitor
   * calls it, once per marker whose task is missing, before it deletes that marker.
   */
  async findMisplaced(id: string): Promise<string | undefined> {
    const candidates = this.keys.misplacedTasks(checkTaskId(id));
    const found = await mapLimit(candidates, 8, async (key) => {
      try {
        await this.storage.head(key);
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
      return `task ${marker.id} is stored at ${misplaced}, but oq reads it from ${this.keys.task(marker.id)}: move it there (${guide}); its marker ${marker.key} is kept meanwhile`;
    }
    const named = found.task.marker;
    if (isTerminal(found.task.status) || named === marker.relative) return undefined;
    if (named !== null) {
      try {
        await this.storage.head(this.keys.full(named));
        return undefined;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
    }
    // A move may have replaced the named marker since the task was read: only a task that still
    // names a missing marker is stranded.
    const again = await this.read(marker.id);
    if (again === undefined || again.task.marker !== named || isTerminal(again.task.status))
      return undefined;
    return `task ${marker.id} is ${again.task.status} but its "marker" ${JSON.stringify(named)} does not exist, so no worker can find it: set "marker" to ${JSON.stringify(marker.relative)} (the key without the prefix; ${guide}); its marker ${marker.key} is kept meanwhile`;
  }

  /** Read a task. Throws `NotFoundError` when it does not exist. */
  async get(id: string): Promise<TaskRecord> {
    const found = await this.read(id);
    if (found === undefined) throw new NotFoundError(`Task ${id} not found.`, { key: id });
    return found.task;
  }

  /**
   * List tasks, oldest key first, filtered by status and type. It reads each task object, so it
   * costs one GET per stored task scanned: meant for operators, not hot paths.
   */
  async list(given: ListTasksOptions = {}): Promise<TaskPage> {
    const options = checkOptions(listOptionsSchema, given, "list options");
    if (options.type !== undefined) checkTaskType(options.type);
    const statuses = options.status === undefined ? undefined : [options.status].flat();
    const limit = options.limit ?? 100;
    let token = options.cursor;
    const tasks: TaskRecord[] = [];
    for (;;) {
      const page = await this.storage.list({
        prefix: this.keys.tasks,
        ...(token === undefined ? {} : { startAfter: token }),
        maxKeys: Math.min(1000, Math.max(limit, 100)),
      });
      const read = await mapLimit(page.objects, 16, async (o) => {
        const id = this.keys.parseTaskKey(o.key);
        if (id === undefined) return undefined;
        try {
          return (await this.read(id))?.task;
        } catch (error) {
          if (error instanceof MalformedObjectError) {
            this.logger.warn(`skipping ${o.key}: ${error.message}`);
            return undefined;
          }
          throw error;
        }
      });
      for (const [i, task] of read.entries()) {
        token = page.objects[i]!.key;
        if (task === undefined) continue;
        if (statuses !== undefined && !statuses.includes(task.status)) continue;
        if (options.type !== undefined && task.type !== options.type) continue;
        tasks.push(task);
        if (tasks.length === limit) {
          const more = i < read.length - 1 || page.isTruncated;
          return more ? { tasks, cursor: token } : { tasks };
        }
      }
      if (!page.isTruncated) return { tasks };
    }
  }

  /**
   * Every stored version of a task, oldest first, across all pages of the version listing.
   * Needs a versioned bucket; on an unversioned one it returns only the current version.
   */
  async getHistory(id: string): Promise<HistoryEntry[]> {
    const key = this.keys.task(checkTaskId(id));
    const versions: { versionId: string; lastModified: Date; deleteMarker: boolean }[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      const page = await this.storage.listVersions({
        prefix: key,
        ...(keyMarker === undefined ? {} : { keyMarker }),
        ...(versionIdMarker === undefined ? {} : { versionIdMarker }),
      });
      for (const v of page.versions) {
        if (v.key === key)
          versions.push({
            versionId: v.versionId,
            lastModified: v.lastModified,
            deleteMarker: v.isDeleteMarker,
          });
      }
      if (!page.isTruncated) break;
      keyMarker = page.nextKeyMarker;
      versionIdMarker = page.nextVersionIdMarker;
    }
    if (versions.length === 0) throw new NotFoundError(`Task ${id} not found.`, { key: id });
    // Listings are newest first; history reads oldest first.
    versions.reverse();
    return mapLimit(versions, 8, async (v) => {
      if (v.deleteMarker)
        return { versionId: v.versionId, lastModified: v.lastModified, task: null };
      const got = await this.storage.get(
        key,
        v.versionId === "null" ? {} : { versionId: v.versionId },
      );
      return {
        versionId: v.versionId,
        lastModified: v.lastModified,
        task: parseTask(got.body, key),
      };
    });
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
      const task = await this.get(id);
      if (isTerminal(task.status)) return task;
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

  // ---- changing -----------------------------------------------------------------------------

  /**
   * Read-modify-write a task with compare-and-swap, re-reading after every lost race. `change`
   * returns the next record, or `undefined` to leave the task as it is. Markers are kept in step:
   * a new marker is written before the task names it, and the old one is deleted after.
   * Returns the task as stored afterwards (with its ETag).
   */
  async update(
    id: string,
    change: (current: TaskRecord) => TaskRecord | undefined,
    known?: Versioned,
    options: WriteOptions = {},
  ): Promise<Versioned> {
    let current = known;
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      current ??= await this.read(id);
      if (current === undefined) throw new NotFoundError(`Task ${id} not found.`, { key: id });
      const changed = change(current.task);
      if (changed === undefined) return current;
      const written = await this.write(current, changed, options);
      if (written !== undefined) return written;
      current = undefined;
    }
    throw new ConflictError(
      `Task ${id} kept changing under ${MAX_CAS_ROUNDS} attempts to update it; try again.`,
      {
        key: id,
      },
    );
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
    const key = this.keys.task(proposed.id);
    const next = placeMarker(current.task, proposed, (due) =>
      this.newMarker(proposed.type, proposed.id, due),
    );
    const newMarker =
      next.marker !== null && next.marker !== current.task.marker ? next.marker : undefined;
    const startedLocal = this.clock.localNow();
    if (newMarker !== undefined)
      await this.storage.put(this.keys.full(newMarker), new Uint8Array(0));
    const body = encodeTask(next);
    let etag: string | undefined;
    let markerUnused = true;
    try {
      etag = (
        await this.storage.put(key, body, {
          ifMatch: current.etag,
          contentType: "application/json",
        })
      ).etag;
    } catch (error) {
      if (
        !(
          error instanceof AmbiguousWriteError ||
          error instanceof PreconditionFailedError ||
          error instanceof ConflictError
        )
      ) {
        throw error;
      }
      // A 412 or 409 on a write that moves no marker is taken at face value (a lost claim race
      // is common and must not cost a GET); only an unknown outcome or a marker at stake is
      // worth the read.
      if (error instanceof AmbiguousWriteError || newMarker !== undefined)
        ({ etag, markerUnused } = await this.#settle(key, current.etag, body, newMarker));
    }
    if (etag === undefined) {
      // Delete the new marker only when the task provably will never name it; otherwise the
      // stale sweep removes it after the grace period (docs/protocol.md, "Stale markers").
      if (newMarker !== undefined && markerUnused)
        await this.#deleteQuietly(this.keys.full(newMarker));
      return undefined;
    }
    if (newMarker !== undefined) await this.#healMarker(newMarker, startedLocal);
    const oldMarker = current.task.marker;
    if (oldMarker !== null && oldMarker !== next.marker) {
      if (options.batchMarkerDelete) this.#retire(this.keys.full(oldMarker));
      else await this.#deleteQuietly(this.keys.full(oldMarker));
    }
    return { task: next, etag };
  }

  /**
   * After a 409, 412 or unknown outcome: did our write of `body` (over the version `baseEtag`)
   * land, and may the new marker it names be deleted? The marker is unused only when a read
   * shows a version that is neither ours nor the one we wrote over (our conditional PUT can
   * then never land any more) and does not name it, or shows the task gone. A read that still
   * shows the version we wrote over proves nothing: an unanswered PUT may land after it.
   */
  async #settle(
    key: string,
    baseEtag: string,
    body: Uint8Array,
    newMarker: string | undefined,
  ): Promise<{ etag: string | undefined; markerUnused: boolean }> {
    const seen = await this.#readBack(key);
    if (seen === undefined) return { etag: undefined, markerUnused: true };
    if (bytesEqual(seen.body, body)) return { etag: seen.etag, markerUnused: false };
    if (newMarker === undefined || sameEtag(seen.etag, baseEtag))
      return { etag: undefined, markerUnused: false };
    let named: string | null;
    try {
      named = parseTask(seen.body, key).marker;
    } catch {
      return { etag: undefined, markerUnused: false };
    }
    // Our write may have landed and been built on since (a claim keeps the marker).
    return { etag: undefined, markerUnused: named !== newMarker };
  }

  /**
   * A write that took longer than half the stale-marker grace may have landed after a sweeper
   * judged its new marker stale and deleted it: put the marker again (an extra marker is
   * harmless; a missing one hides the task).
   */
  async #healMarker(marker: string, startedLocal: number): Promise<void> {
    if (this.clock.localNow() - startedLocal <= MARKER_GRACE_MS / 2) return;
    this.logger.warn(`a write took over ${MARKER_GRACE_MS / 2000} s: putting ${marker} again`);
    await this.storage.put(this.keys.full(marker), new Uint8Array(0));
  }

  async #readBack(key: string): Promise<{ body: Uint8Array; etag: string } | undefined> {
    for (let round = 0; ; round++) {
      try {
        return await this.storage.get(key);
      } catch (error) {
        if (error instanceof NotFoundError) return undefined;
        // Throttling and 5xx too, not only outages: giving up leaves a claim that did land
        // unknown to its worker, so the task waits out a whole lease (found by the chaos tests).
        const transient =
          isOqError(error, "UNAVAILABLE") ||
          isOqError(error, "THROTTLED") ||
          (isOqError(error, "STORAGE") && (error.status === undefined || error.status >= 500));
        if (round >= 5 || !transient) throw error;
        await sleep(200 * 2 ** round);
      }
    }
  }

  /**
   * Queue a dead marker for a batched delete (one `DeleteObjects` request for many keys). A
   * marker that outlives its task briefly is harmless: readers see the task no longer names it.
   */
  #retire(key: string): void {
    this.#retired.push(key);
    if (this.#retired.length >= 200) void this.flush();
    else this.#retireTimer ??= setTimeout(() => void this.flush(), 500);
  }

  /** Delete the markers queued by batched writes now. Workers call it when they stop. */
  async flush(): Promise<void> {
    if (this.#retireTimer !== undefined) clearTimeout(this.#retireTimer);
    this.#retireTimer = undefined;
    await this.#deleteAll(this.#retired.splice(0));
  }

  /** Delete keys in `DeleteObjects` batches of up to 1,000 (one by one without it). */
  async #deleteAll(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      if (this.storage.deleteMany !== undefined && batch.length > 1) {
        try {
          await this.storage.deleteMany(batch);
          continue;
        } catch (error) {
          this.logger.warn(
            `batched marker delete failed, deleting one by one: ${error instanceof Error ? error.message : error}`,
          );
        }
      }
      await mapLimit(batch, 8, (key) => this.#deleteQuietly(key));
    }
  }

  /**
   * Delete markers a monitor found stale after the grace period (their task is missing,
   * malformed, or names another marker) or malformed keys under `ready/`, in batches. Then
   * read each one's task again and put back the markers a live task now names: a move or submit whose
   * task write landed after the sweeper's read (a pause longer than the grace) must not lose
   * its task. A task that cannot be read keeps its marker too. Returns the keys put back.
   */
  async sweepMarkers(
    markers: readonly (Pick<ReadyMarker, "key"> & Partial<ReadyMarker>)[],
  ): Promise<string[]> {
    if (markers.length === 0) return [];
    await this.#deleteAll(markers.map((m) => m.key));
    const restored: string[] = [];
    await mapLimit(markers, 8, async (m) => {
      if (m.id === undefined || m.relative === undefined) return;
      let names: boolean;
      try {
        const task = (await this.read(m.id))?.task;
        names = task?.marker === m.relative && !isTerminal(task.status);
      } catch (error) {
        names = !(error instanceof ValidationError);
      }
      if (!names) return;
      this.logger.warn(`${m.key} was swept while its task came to name it: putting it back`);
      try {
        await this.storage.put(m.key, new Uint8Array(0));
        restored.push(m.key);
      } catch (error) {
        this.logger.error(
          `could not put back ${m.key}; task ${m.id} is not in the index until it is: ${error instanceof Error ? error.message : error}`,
        );
      }
    });
    return restored;
  }

  async #deleteQuietly(key: string): Promise<void> {
    try {
      await this.storage.delete(key);
    } catch (error) {
      this.logger.warn(
        `could not delete ${key} (the sweep will retry): ${error instanceof Error ? error.message : error}`,
      );
    }
  }

  /**
   * Cancel a task. A pending task is cancelled at once; a running one is marked, its handler's
   * signal fires when its worker next checks (at most a third of a lease later), and the task
   * ends cancelled. Throws `InvalidStateError` for a task already terminal.
   */
  async cancel(id: string, options: { reason?: string } = {}): Promise<TaskRecord> {
    const reason = options.reason ?? null;
    const done = await this.update(id, (task) => {
      const next = requestCancel(task, reason, this.now());
      return next === task ? undefined : next;
    });
    return done.task;
  }

  /** Cancel several tasks; reports for each id what happened and why. */
  async cancelMany(
    ids: readonly string[],
    options: { reason?: string; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<CancelOutcome[]> {
    let done = 0;
    return mapLimit(ids, 8, async (id): Promise<CancelOutcome> => {
      const outcome = await this.#cancelOne(id, options.reason);
      options.onProgress?.(++done, ids.length);
      return outcome;
    });
  }

  async #cancelOne(id: string, reason: string | undefined): Promise<CancelOutcome> {
    try {
      checkTaskId(id);
    } catch {
      return { id, ok: false, result: "invalid-id" };
    }
    try {
      const task = await this.cancel(id, reason === undefined ? {} : { reason });
      return {
        id,
        ok: true,
        result: task.status === "cancelled" ? "cancelled" : "cancel-requested",
        task,
      };
    } catch (error) {
      if (error instanceof NotFoundError) return { id, ok: false, result: "not-found" };
      // A corrupt object is reported and skipped, as list() does: one bad object must not stop
      // a bulk cancel halfway with the remaining tasks untouched and nothing reported.
      if (error instanceof ValidationError) {
        this.logger.warn(`skipping task ${id}: ${error.message}`);
        return { id, ok: false, result: "malformed", message: error.message };
      }
      if (error instanceof InvalidStateError) {
        const task = (await this.read(id))?.task;
        return {
          id,
          ok: false,
          result: `already-${task?.status ?? "gone"}`,
          ...(task ? { task } : {}),
        };
      }
      throw error;
    }
  }

  /**
   * Cancel every pending or running task of a type. Finds them through the ready index (only
   * non-terminal tasks have markers, and markers name their type), so it reads no finished task.
   */
  async cancelByType(
    type: string,
    options: { reason?: string; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<CancelOutcome[]> {
    checkTaskType(type);
    const ids = new Set<string>();
    for await (const marker of this.markers()) {
      if (marker.type === type) ids.add(marker.id);
    }
    const outcomes = await this.cancelMany([...ids], options);
    // A marker can outlive its task's last transition; only report tasks that were live.
    return outcomes.filter(
      (o) =>
        o.result !== "not-found" && !(o.result.startsWith("already-") && o.task?.type !== type),
    );
  }

  /** Put a failed, expired or cancelled task back to pending with a fresh retry budget. */
  async replay(id: string): Promise<TaskRecord> {
    const done = await this.update(id, (task) => replayTask(task, this.now()));
    return done.task;
  }

  /**
   * Well-formed ready markers in key order (due time first), across pages. Stops at the first
   * marker due after `dueBy`; starts after `startAfter`; reads at most `maxPages` pages and then
   * sets `progress.capped` (so a caller can resume from the last key next time). Malformed keys
   * are reported once each and skipped.
   */
  async *markers(
    options: {
      dueBy?: number;
      startAfter?: string;
      maxPages?: number;
      progress?: { capped: boolean };
      /** Called with each key under `ready/` that is not a marker (a monitor sweeps them). */
      onMalformed?: (object: ObjectInfo) => void;
    } = {},
  ): AsyncGenerator<ReadyMarker & { lastModified: Date }> {
    let continuationToken: string | undefined;
    if (options.progress) options.progress.capped = false;
    for (let pages = 1; ; pages++) {
      const page = await this.storage.list({
        prefix: this.keys.ready,
        ...(continuationToken === undefined
          ? options.startAfter === undefined
            ? {}
            : { startAfter: options.startAfter }
          : { continuationToken }),
      });
      for (const o of page.objects) {
        const marker = this.keys.parseReadyMarker(o.key);
        if (marker === undefined) {
          this.warnOnce(
            o.key,
            `skipping ${o.key}: not a ready marker (expected ready/<time>/<type>/<id>.<nonce>)`,
          );
          options.onMalformed?.(o);
          continue;
        }
        if (options.dueBy !== undefined && marker.dueMs > options.dueBy) return;
        yield { ...marker, lastModified: o.lastModified };
      }
      if (!page.isTruncated) return;
      if (options.maxPages !== undefined && pages >= options.maxPages) {
        if (options.progress) options.progress.capped = true;
        return;
      }
      continuationToken = page.nextContinuationToken;
    }
  }

  /**
   * Log a warning about `key` once (per queue object, for the first 10,000 keys): a malformed
   * object seen on every poll must not flood the log.
   */
  warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    if (this.#warned.size < 10_000) this.#warned.add(key);
    this.logger.warn(message);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Run `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}

/** Sleep, ending early (without error) when `signal` aborts. */
export function sleep(msToWait: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, msToWait);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
