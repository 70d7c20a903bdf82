/**
 * The monitor's part of a worker: recovery transitions (lease recovery, TTL expiry) and stale
 * markers. A marker its task does not name is collected here and deleted in one batch at the
 * next listing; keys under `ready/` that sort after every due time are found by a listing of
 * the index's tail every 10 minutes (see "Stale markers" in docs/protocol.md).
 *
 * @module
 */
import type { ReadyMarker } from "../keys.ts";
import type { QueueInternals } from "../queue/internals.ts";
import { MARKER_GRACE_MS } from "../queue/ready-index.ts";
import type { Versioned } from "../queue/types.ts";
import type { TaskRecord } from "../task/record.ts";
import { isTerminal } from "../task/transitions.ts";
import type { Emit, WorkerStats } from "./events.ts";
import type { SkipList } from "./skip.ts";

/** A due marker from a listing, with its storage time. */
export type Candidate = ReadyMarker & { lastModified: Date };

/**
 * How often a monitor lists the keys under `ready/` that sort after every due time (a listing
 * for work stops at the first future marker, so garbage there is never seen otherwise).
 */
export const TAIL_SWEEP_MS = 10 * 60_000;

/** A marker kept because its task was written by hand with a mistake is read again after this. */
const STRANDED_RECHECK_MS = 10 * 60_000;

/** What the monitor needs from its worker. */
export interface MonitorOptions {
  /** Whether this worker runs the monitor (else it only acts on tasks of its own types). */
  enabled: boolean;
  stats: WorkerStats;
  emit: Emit;
  skip: SkipList;
}

/** Recovery transitions and the stale-marker sweep of one worker. */
export class Monitor {
  readonly #queue: QueueInternals;
  readonly #enabled: boolean;
  readonly #stats: WorkerStats;
  readonly #emit: Emit;
  readonly #skip: SkipList;
  /** Stale markers and malformed keys found, deleted in one batch per listing. */
  readonly #sweep = new Map<string, Pick<ReadyMarker, "key"> & Partial<ReadyMarker>>();
  /** When the tail of `ready/` (after every possible due time) was last listed, local ms. */
  #tailListedAt = Number.NEGATIVE_INFINITY;

  constructor(queue: QueueInternals, options: MonitorOptions) {
    this.#queue = queue;
    this.#enabled = options.enabled;
    this.#stats = options.stats;
    this.#emit = options.emit;
    this.#skip = options.skip;
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

  /** List the index's tail for garbage, at most every {@link TAIL_SWEEP_MS} (local `localMs`). */
  async listTail(now: number, localMs: number): Promise<void> {
    if (!this.#enabled || localMs - this.#tailListedAt <= TAIL_SWEEP_MS) return;
    this.#tailListedAt = localMs;
    const tail = `${this.#queue.keys.ready}9999~`;
    for await (const _ of this.#queue.markers({
      startAfter: tail,
      onMalformed: this.malformed(now),
    }));
  }

  /**
   * A marker whose task is missing, does not name it, or is terminal (`found` as read). A task
   * written by hand with a mistake (a wrong shard, a wrong "marker") would be lost with its only
   * marker: past the grace such a marker is kept, with a warning saying what to fix.
   */
  async unnamed(marker: Candidate, found: Versioned | undefined, now: number): Promise<void> {
    const q = this.#queue;
    const pastGrace = marker.lastModified.getTime() + MARKER_GRACE_MS <= now;
    if (pastGrace && this.#enabled && !(found && isTerminal(found.task.status))) {
      const stranded = await q.strandedTask(marker, found);
      if (stranded !== undefined) {
        q.warnOnce(marker.key, stranded);
        this.#skip.set(marker.key, q.clock.localNow() + STRANDED_RECHECK_MS);
        return;
      }
    }
    this.stale(marker, now, false);
  }

  /**
   * A marker its task does not name (an interrupted submit or move, a finished task whose
   * marker was not deleted, or a malformed task object). Its writer may still be mid-way, so it
   * is swept (in a batch, at the next listing) only after the grace period.
   */
  stale(marker: Candidate, now: number, malformed: boolean): void {
    const staleAt = marker.lastModified.getTime() + MARKER_GRACE_MS;
    if (staleAt <= now && this.#enabled) {
      this.#sweep.set(marker.key, marker);
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
    if (kind === "expired") this.#stats.expired++;
    else this.#stats.recovered++;
    q.logger.warn(`${kind} task ${next.id} (${next.type}): now ${next.status}`);
    this.#emit({ kind, id: next.id, type: next.type, attempt: next.attempt });
  }
}
