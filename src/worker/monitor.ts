/**
 * The monitor's part of a worker: recovery transitions (lease recovery, TTL expiry) and stale
 * markers. A marker its task does not name is collected here and deleted in one batch at the
 * next listing. Every 10 minutes a monitor also makes a round, one request per poll: it re-reads
 * the manifest, lists which types have markers (one delimiter LIST), and, for the partitions of
 * types this worker has no handler for that fall in its share, lists their due markers and
 * expires the tasks whose TTL ran out and recovers the leases that expired (both told by the
 * marker key), reading only those; the monitor whose share holds `workers/stopped/` also deletes
 * the stopped workers' files older than 25 hours. See "Recovery" in docs/protocol.md.
 *
 * @module
 */
import { type ReadyMarker, timeKey } from "../keys.ts";
import type { LogFields } from "../logger.ts";
import { FINISHED_KEEP_MS, type FinishedCounter } from "../queue/finished-counts.ts";
import type { QueueInternals } from "../queue/internals.ts";
import { MARKER_GRACE_MS } from "../queue/ready-index.ts";
import type { Versioned } from "../queue/types.ts";
import type { TaskRecord } from "../task/record.ts";
import {
  expireLease,
  expireTask,
  isExpired,
  isLeaseExpired,
  isTerminal,
} from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import type { Emit, WorkerStats } from "./events.ts";
import { Pruner } from "./pruner.ts";
import type { SkipList } from "./skip.ts";

/**
 * When a marker not named by its task became stale (server ms), for the grace: the later of the
 * marker's `LastModified` and the task's last write (not after `now`). A task that moved off an
 * old marker, or finished, a moment ago has a writer that deletes the marker itself right after
 * that write; judged by the marker's age alone, every worker listing the partition swept it too
 * (the scale model's end-of-backlog burst: a few dozen keys of backlog markers deleted by dozens
 * of workers in one second, over the partition's write limit).
 */
function staleSince(marker: Candidate, found: Versioned | undefined, now: number): number {
  const written = marker.lastModified.getTime();
  if (found === undefined) return written;
  const updated = Date.parse(found.task.updatedAt);
  return Number.isFinite(updated) ? Math.max(written, Math.min(updated, now)) : written;
}

/** A due marker from a listing, with its storage time. */
export type Candidate = ReadyMarker & { lastModified: Date };

/**
 * How often a monitor starts a round (manifest, types, partitions of types nobody here runs,
 * pruning), by default.
 */
export const MONITOR_ROUND_MS = 10 * 60_000;

/** A marker kept because its task was written by hand with a mistake is read again after this. */
const STRANDED_RECHECK_MS = 10 * 60_000;

/** What the monitor needs from its worker. */
export interface MonitorOptions {
  /** Whether this worker runs the monitor (else it only acts on tasks of its own types). */
  enabled: boolean;
  /** Time between the starts of rounds, ms. Default {@link MONITOR_ROUND_MS}. */
  roundMs?: number;
  stats: WorkerStats;
  /** The worker's finished counts (its heartbeat reports them). */
  finished: FinishedCounter;
  emit: Emit;
  skip: SkipList;
  /** Whether this worker has a handler for a type. */
  handles: (type: string) => boolean;
  /** Whether a partition (its key prefix) falls in this worker's share of the live workers. */
  owns: (partition: string) => boolean;
  /** Whether a task id falls in this worker's share (see `Peers.mine`). Default: all do. */
  mine?: (id: string) => boolean;
  /** This worker's id, for its log entries. */
  workerId?: string;
}

/** Recovery transitions and the stale-marker sweep of one worker. */
export class Monitor {
  readonly #queue: QueueInternals;
  readonly #enabled: boolean;
  readonly #stats: WorkerStats;
  readonly #finished: FinishedCounter;
  readonly #emit: Emit;
  readonly #skip: SkipList;
  readonly #handles: (type: string) => boolean;
  readonly #owns: (partition: string) => boolean;
  readonly #mine: (id: string) => boolean;
  readonly #roundMs: number;
  /** What every log entry of this monitor carries: its worker's id. */
  readonly #logFields: LogFields;
  readonly #pruner: Pruner;
  /** Stale markers and malformed keys found, deleted in one batch per listing. */
  readonly #sweep = new Map<string, Pick<ReadyMarker, "key"> & Partial<ReadyMarker>>();
  /** When the current round started, local ms. */
  #roundAt = Number.NEGATIVE_INFINITY;
  /** The steps left in this round, each one request (more only when there is work). */
  #steps: (() => Promise<void>)[] = [];

  constructor(queue: QueueInternals, options: MonitorOptions) {
    this.#queue = queue;
    this.#enabled = options.enabled;
    this.#stats = options.stats;
    this.#finished = options.finished;
    this.#emit = options.emit;
    this.#skip = options.skip;
    this.#handles = options.handles;
    this.#owns = options.owns;
    this.#mine = options.mine ?? (() => true);
    this.#roundMs = options.roundMs ?? MONITOR_ROUND_MS;
    this.#logFields = options.workerId === undefined ? {} : { worker: options.workerId };
    this.#pruner = new Pruner(queue, options.owns, this.#roundMs);
  }

  /** Whether this worker runs the monitor. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** Keys waiting for the next batched delete (for tests). */
  get pendingSweep(): string[] {
    return [...this.#sweep.keys()];
  }

  /** Delete the markers collected since the last listing, in one batch. */
  async sweep(): Promise<void> {
    if (this.#sweep.size === 0) return;
    const swept = [...this.#sweep.values()];
    this.#sweep.clear();
    for (const key of await this.#queue.sweepMarkers(swept)) this.#skip.delete(key);
  }

  /**
   * The `onMalformed` callback of a listing at server time `now`: nothing can name a malformed
   * key; still, whatever wrote it gets the grace period before it is swept.
   */
  malformed(now: number): (o: { key: string; lastModified: Date }) => void {
    return (o) => {
      if (this.#enabled && o.lastModified.getTime() + MARKER_GRACE_MS <= now)
        this.#sweep.set(o.key, { key: o.key });
    };
  }

  /**
   * Take one step of the monitor's round when one is due (server time `now`). True when it made
   * a request, so an idle poll spends no other.
   */
  async step(now: number): Promise<boolean> {
    if (!this.#enabled) return false;
    const local = this.#queue.clock.localNow();
    if (this.#steps.length === 0) {
      if (local - this.#roundAt < this.#roundMs) return false;
      this.#roundAt = local;
      this.#steps = [
        () => this.#queue.manifest.load({ fresh: true }).then(() => {}),
        () => this.#types(now),
        this.#pruner.start((step) => this.#steps.push(step)),
      ];
      if (this.#owns(this.#queue.keys.stoppedWorkers)) this.#steps.push(() => this.#pruneStopped());
    }
    const next = this.#steps.shift()!;
    try {
      await next();
    } catch (error) {
      this.#queue.logger.warn(`monitor round: ${errorMessage(error)}`, {
        ...this.#logFields,
        error,
      });
    }
    return true;
  }

  /**
   * One delimiter LIST of `ready/` (a page per step): the types with markers. Each shard of a type
   * this worker has no handler for and whose partition is in its share gets a step of its own.
   * Keys directly under `ready/` are not markers: swept after the grace.
   */
  async #types(now: number, continuationToken?: string): Promise<void> {
    const q = this.#queue;
    const { types, strays, next } = await q.index.typesPage(continuationToken);
    for (const o of strays) this.malformed(now)(o);
    for (const type of types) {
      if (this.#handles(type)) continue;
      for (let part = 0; part < q.manifest.shardsOf(type); part++) {
        const partition = q.keys.partition(type, part);
        if (this.#owns(partition)) this.#steps.push(() => this.#expireIn(partition));
      }
    }
    if (next !== undefined) this.#steps.unshift(() => this.#types(now, next));
  }

  /**
   * Delete the stopped workers' files older than {@link FINISHED_KEEP_MS} (stats no longer read
   * them): one LIST of the oldest 1,000 (keys sort by the time a worker stopped) and, when any
   * are that old, one `DeleteObjects`. Only the monitor whose share holds `workers/stopped/`
   * does it, once a round, so `workers/stopped/` holds about a day of stops.
   */
  async #pruneStopped(): Promise<void> {
    const q = this.#queue;
    const before = `${q.keys.stoppedWorkers}${timeKey(q.now() - FINISHED_KEEP_MS)}`;
    const page = await q.storage.list({ prefix: q.keys.stoppedWorkers });
    const old = page.objects.map((o) => o.key).filter((key) => key < before);
    if (old.length === 0) return;
    if (q.storage.deleteMany !== undefined && old.length > 1) await q.storage.deleteMany(old);
    else await mapLimit(old, 8, (key) => q.storage.delete(key));
  }

  /**
   * List the due markers of a partition nobody here runs (one page) and act on those whose key
   * says there is something to do, reading only those: a TTL that ran out (expire), or a lease
   * marker come due (the lease expired: recover the task to pending with backoff, or fail it when
   * out of retries). Tasks of a type no live worker runs still end on time, and the others cost
   * nothing.
   */
  async #expireIn(partition: string): Promise<void> {
    const q = this.#queue;
    const now = q.now();
    const due: Candidate[] = [];
    for await (const marker of q.markers({ prefix: partition, dueBy: now, maxPages: 1 })) {
      if (marker.lease === true || (marker.expiresMs !== undefined && marker.expiresMs <= now))
        due.push(marker);
    }
    for (const marker of due) {
      let found: Versioned | undefined;
      try {
        found = await q.read(marker.id);
      } catch {
        continue; // unreadable now (or malformed): the next round looks again
      }
      // No worker lists this type: a marker its task does not name, or names though finished
      // (written by an older version), is this monitor's to sweep once the grace is over.
      if (
        found === undefined ||
        found.task.marker !== marker.relative ||
        isTerminal(found.task.status)
      ) {
        await this.unnamed(marker, found, q.now());
        continue;
      }
      const at = q.now();
      if (isExpired(found.task, at)) {
        await this.apply(found, (t) => expireTask(t, q.now()), "expired");
      } else if (found.task.status === "running" && isLeaseExpired(found.task, at)) {
        await this.apply(found, (t) => expireLease(t, q.now(), q.random()), "recovered");
      }
    }
  }

  /**
   * A marker whose task is missing, does not name it, or is terminal (`found` as read). A task
   * written by hand with a mistake (a wrong shard, a wrong "marker") would be lost with its only
   * marker: past the grace such a marker is kept, with a warning saying what to fix.
   */
  async unnamed(marker: Candidate, found: Versioned | undefined, now: number): Promise<void> {
    const q = this.#queue;
    const since = staleSince(marker, found, now);
    const pastGrace = since + MARKER_GRACE_MS <= now;
    if (pastGrace && this.#enabled && !(found && isTerminal(found.task.status))) {
      const stranded = await q.strandedTask(marker, found);
      if (stranded !== undefined) {
        q.warnOnce(marker.key, stranded);
        this.#skip.set(marker.key, q.clock.localNow() + STRANDED_RECHECK_MS);
        return;
      }
    }
    this.stale(marker, now, false, since);
  }

  /**
   * A marker its task does not name (an interrupted submit or move, a finished task whose
   * marker was not deleted, or a malformed task object). Its writer may still be mid-way, so it
   * is swept (in a batch, at the next listing) only after the grace period, counted from
   * `since` (server ms; default the marker's `LastModified`, see {@link staleSince}).
   */
  stale(
    marker: Candidate,
    now: number,
    malformed: boolean,
    since = marker.lastModified.getTime(),
  ): void {
    const staleAt = since + MARKER_GRACE_MS;
    // Every worker of the type lists the same stale markers: the one whose share holds the id
    // sweeps it, the others only a grace later (its owner may be gone). Otherwise each of N
    // workers deletes each key, N write units per key on one partition (the scale model met
    // the write limit that way at 250 workers).
    const sweepAt = this.#mine(marker.id) ? staleAt : staleAt + MARKER_GRACE_MS;
    if (sweepAt <= now && this.#enabled) {
      this.#sweep.set(marker.key, marker);
      return;
    }
    if (staleAt <= now && this.#enabled) {
      this.#skip.untilServer(marker.key, sweepAt);
      return;
    }
    // A young marker is most likely a submit or move between its two writes: its task may
    // name it any moment, and skipping it for the whole grace delayed such tasks by up to 2
    // minutes on a slow link (found by the chaos tests' latency run). So a marker younger than
    // 10 s is looked at again after twice its age (at least 1 s); an older one, or one whose
    // task is malformed, only when the grace is over (the sweep heals a late write anyway).
    const age = Math.max(0, now - marker.lastModified.getTime());
    const young = !malformed && age < 10_000;
    this.#skip.untilServer(
      marker.key,
      young
        ? Math.min(staleAt, now + Math.max(1000, 2 * age))
        : staleAt > now
          ? staleAt
          : now + 60_000, // only a worker without the monitor gets here: a monitor sweeps it
    );
  }

  /** Apply a monitor transition; losing the race to another monitor or worker is fine. */
  async apply(
    found: Versioned,
    change: (t: TaskRecord) => TaskRecord,
    kind: "expired" | "recovered",
  ): Promise<void> {
    const q = this.#queue;
    let next: TaskRecord;
    try {
      next = change(found.task);
    } catch {
      return;
    }
    // write() places the marker: none once terminal (its old one is deleted in the next batch),
    // a new one when lease recovery moves the task to its backoff time.
    const written = await q.write(found, next, { batchMarkerDelete: true });
    if (written === undefined) return;
    next = written.task;
    // Lease recovery ends the task failed (out of retries) or cancelled (a cancel was requested).
    this.#finished.record(next);
    if (kind === "expired") this.#stats.expired++;
    else this.#stats.recovered++;
    const holder = found.task.lease?.workerId;
    q.logger.warn(`${kind} task ${next.id} (${next.type}): now ${next.status}`, {
      taskId: next.id,
      type: next.type,
      attempt: next.attempt,
      ...this.#logFields,
      event: kind,
      status: next.status,
      ...(kind === "recovered" && holder !== undefined ? { leaseWorker: holder } : {}),
    });
    this.#emit({ kind, id: next.id, type: next.type, attempt: next.attempt });
  }
}
