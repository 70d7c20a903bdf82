/**
 * Finished counts: how many tasks of each type reached each terminal state, in per-minute and
 * per-hour buckets. A worker keeps them for the terminal states it wrote ({@link FinishedCounter})
 * and writes them in its heartbeat; `queue.stats()` sums the heartbeats' buckets
 * ({@link addWindows}). The format below is the heartbeat's `finished` field (docs/protocol.md,
 * "Heartbeats"), so the writer and the reader share one definition.
 *
 * @module
 */
import type { FinishedStatus } from "../keys.ts";
import type { TaskRecord } from "../task/record.ts";
import { ms, TERMINAL_STATUSES } from "../task/transitions.ts";
import { isCount } from "../util/stored-values.ts";

/** The terminal states counted, in the order a tally lists them. */
const FINISHED_STATES = TERMINAL_STATUSES as readonly FinishedStatus[];

/** How many tasks reached each terminal state. */
export type FinishedTally = Record<FinishedStatus, number>;

/** Minute buckets kept: the current minute and the 60 before it (the last hour, whole). */
export const MINUTE_BUCKETS = 61;
/** Hour buckets kept: the current hour and the 24 before it (the last day, whole). */
export const HOUR_BUCKETS = 25;

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/**
 * A heartbeat or stopped worker's file older than this holds no bucket of the last day: stats
 * skip it, and monitors delete stopped workers' files once they are older.
 */
export const FINISHED_KEEP_MS = HOUR_BUCKETS * HOUR_MS;

/**
 * The `finished` field of a heartbeat: bucket start (ISO 8601, server time) → task type → the
 * non-zero counts of the terminal states written in that minute or hour.
 */
export interface FinishedSnapshot {
  /** Per-minute buckets, at most {@link MINUTE_BUCKETS}. */
  minutes: Record<string, Record<string, Partial<FinishedTally>>>;
  /** Per-hour buckets, at most {@link HOUR_BUCKETS}. */
  hours: Record<string, Record<string, Partial<FinishedTally>>>;
}

/** All counts at zero. */
export function emptyTally(): FinishedTally {
  return { completed: 0, failed: 0, cancelled: 0, expired: 0 };
}

/** Buckets of one width: start (epoch ms) → type → counts. */
class Buckets {
  readonly #width: number;
  readonly #keep: number;
  readonly #buckets = new Map<number, Map<string, FinishedTally>>();

  constructor(width: number, keep: number) {
    this.#width = width;
    this.#keep = keep;
  }

  /** Forget every count. */
  clear(): void {
    this.#buckets.clear();
  }

  add(type: string, state: FinishedStatus, at: number): void {
    const start = Math.floor(at / this.#width) * this.#width;
    let types = this.#buckets.get(start);
    if (types === undefined) {
      types = new Map();
      this.#buckets.set(start, types);
    }
    let tally = types.get(type);
    if (tally === undefined) {
      tally = emptyTally();
      types.set(type, tally);
    }
    tally[state]++;
  }

  /** Drop the buckets that ended before the kept window at `now`, then write the rest. */
  snapshot(now: number): Record<string, Record<string, Partial<FinishedTally>>> {
    const oldest = (Math.floor(now / this.#width) - (this.#keep - 1)) * this.#width;
    const out: Record<string, Record<string, Partial<FinishedTally>>> = {};
    for (const [start, types] of [...this.#buckets].sort((a, b) => a[0] - b[0])) {
      if (start < oldest) {
        this.#buckets.delete(start);
        continue;
      }
      const bucket: Record<string, Partial<FinishedTally>> = {};
      for (const [type, tally] of types) {
        const nonZero: Partial<FinishedTally> = {};
        for (const state of FINISHED_STATES) if (tally[state] > 0) nonZero[state] = tally[state];
        bucket[type] = nonZero;
      }
      out[new Date(start).toISOString()] = bucket;
    }
    return out;
  }
}

/**
 * The terminal states one worker wrote, by type, in per-minute and per-hour buckets of server
 * time. Memory stays bounded: each {@link snapshot} drops the buckets past the kept window.
 */
export class FinishedCounter {
  readonly #minutes = new Buckets(MINUTE_MS, MINUTE_BUCKETS);
  readonly #hours = new Buckets(HOUR_MS, HOUR_BUCKETS);
  #sinceSnapshot = 0;
  readonly #now: () => number;

  /** `now`: server time (epoch ms), to drop old buckets when many are recorded between snapshots. */
  constructor(now: () => number) {
    this.#now = now;
  }

  /**
   * Count `task` as written, when it is terminal, in the buckets of its `finishedAt` (the server
   * time of the write). A task still pending or running is not counted.
   */
  record(task: Pick<TaskRecord, "type" | "status" | "finishedAt">): void {
    const state = task.status;
    if (state === "pending" || state === "running") return;
    const at = task.finishedAt === null ? this.#now() : ms(task.finishedAt);
    this.#minutes.add(task.type, state, at);
    this.#hours.add(task.type, state, at);
    // A worker without heartbeats never snapshots: prune now and then so memory stays bounded.
    if (++this.#sinceSnapshot >= 10_000) this.snapshot(this.#now());
  }

  /** Forget every count (once they were written where they are kept). */
  clear(): void {
    this.#minutes.clear();
    this.#hours.clear();
  }

  /** The buckets still in the kept window at server time `now`, as a heartbeat writes them. */
  snapshot(now: number): FinishedSnapshot {
    this.#sinceSnapshot = 0;
    return { minutes: this.#minutes.snapshot(now), hours: this.#hours.snapshot(now) };
  }
}

/** The windows `queue.stats()` reports, summed over heartbeats with {@link addWindows}. */
export interface FinishedWindows {
  /** Tally of the current minute and the 59 before it. */
  lastHour: FinishedTally;
  /** Tally of the current hour and the 23 before it. */
  lastDay: FinishedTally;
  /** Completed plus failed in the `throughputMinutes` whole minutes before the current one. */
  recent: number;
  /** The tally of each minute of `lastHour`, oldest first: 60, the current minute last. */
  minutes: FinishedTally[];
  /** The tally of each hour of `lastDay`, oldest first: 24, the current hour last. */
  hours: FinishedTally[];
}

/** A heartbeat's `finished` field as read: `undefined` when it is missing or not that shape. */
export function parseSnapshot(value: unknown): FinishedSnapshot | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const isMap = (m: unknown) => typeof m === "object" && m !== null && !Array.isArray(m);
  if (!isMap(v.minutes) || !isMap(v.hours)) return undefined;
  return {
    minutes: v.minutes as FinishedSnapshot["minutes"],
    hours: v.hours as FinishedSnapshot["hours"],
  };
}

/**
 * Add one heartbeat's buckets that fall in the windows at server time `now` to `into` (by type),
 * creating a type's windows on first sight. Buckets are whole minutes and hours, so "the last
 * hour" is the current minute and the 59 before it, "the last day" the current hour and the 23
 * before it. Counts that are not whole numbers from 1 to `Number.MAX_SAFE_INTEGER` are ignored,
 * and sums stop at that number: a heartbeat is anyone's to write, and one holding `1e308` twice
 * would otherwise sum to Infinity, which JSON writes as `null`.
 */
export function addWindows(
  into: Map<string, FinishedWindows>,
  snapshot: FinishedSnapshot,
  now: number,
  throughputMinutes: number,
): void {
  const minute = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const hour = Math.floor(now / HOUR_MS) * HOUR_MS;
  const windows = (type: string) => {
    let w = into.get(type);
    if (w === undefined) {
      w = {
        lastHour: emptyTally(),
        lastDay: emptyTally(),
        recent: 0,
        minutes: Array.from({ length: 60 }, emptyTally),
        hours: Array.from({ length: 24 }, emptyTally),
      };
      into.set(type, w);
    }
    return w;
  };
  const each = (
    buckets: FinishedSnapshot["minutes"],
    visit: (start: number, type: string, state: FinishedStatus, n: number) => void,
  ) => {
    for (const [at, types] of Object.entries(buckets)) {
      const start = Date.parse(at);
      if (Number.isNaN(start) || typeof types !== "object" || types === null) continue;
      for (const [type, tally] of Object.entries(types)) {
        if (typeof tally !== "object" || tally === null) continue;
        for (const state of FINISHED_STATES) {
          const n = tally[state];
          if (isCount(n) && n > 0) visit(start, type, state, n);
        }
      }
    }
  };
  each(snapshot.minutes, (start, type, state, n) => {
    if (start > minute) return;
    if (start > minute - 60 * MINUTE_MS) {
      const w = windows(type);
      add(w.lastHour, state, n);
      add(w.minutes[59 - Math.floor((minute - start) / MINUTE_MS)]!, state, n);
    }
    if (
      start < minute &&
      start >= minute - throughputMinutes * MINUTE_MS &&
      (state === "completed" || state === "failed")
    )
      windows(type).recent = sum(windows(type).recent, n);
  });
  each(snapshot.hours, (start, type, state, n) => {
    if (start <= hour && start > hour - 24 * HOUR_MS) {
      const w = windows(type);
      add(w.lastDay, state, n);
      add(w.hours[23 - Math.floor((hour - start) / HOUR_MS)]!, state, n);
    }
  });
}

/** `a + b`, stopped at `Number.MAX_SAFE_INTEGER` (past it, counts no longer add up exactly). */
function sum(a: number, b: number): number {
  return Math.min(a + b, Number.MAX_SAFE_INTEGER);
}

/** Add `n` to `tally[state]` with {@link sum}. */
function add(tally: FinishedTally, state: FinishedStatus, n: number): void {
  tally[state] = sum(tally[state], n);
}
