/**
 * The soak run's verdicts, as pure functions of what the run recorded (scripts/soak.ts), so a
 * test can show each of them failing (test/soak-checks.test.ts):
 *
 * - {@link checkFates}: nothing live is ever deleted. Every task the run submitted is still
 *   stored, or its object was deleted by oq after it reached a terminal state and after that
 *   state's retention had passed; no attempt's handler ran twice.
 * - {@link checkPruned}: no finished task stays stored long after its retention.
 * - {@link checkPlateau}: the number of objects under the prefix stops growing.
 *
 * @module
 */

import type { FinishedStatus } from "../src/keys.ts";
import { TERMINAL_STATUSES } from "../src/task/transitions.ts";

/** Everything the run saw of one submitted task. */
export interface TaskFate {
  /** The task id. */
  id: string;
  /** The status of the last write of its object that landed (as the writer sent it). */
  lastStatus: string;
  /** Its terminal status and `finishedAt` (epoch ms), from the write that ended it. */
  finished?: { status: FinishedStatus; atMs: number };
  /** Local epoch ms at which oq first sent a delete of its object; absent: never deleted. */
  deletedMs?: number;
  /** `lastStatus` when that delete was sent. */
  statusAtDelete?: string;
  /** Handler executions per attempt number. */
  executions: Record<number, number>;
  /** Whether its object was listed under `tasks/` at the end of the run. */
  presentAtEnd: boolean;
  /**
   * The object as read at the end, for a task the witness did not see finish (see
   * {@link StoredAtEnd}); absent when it was not read.
   */
  stored?: StoredAtEnd;
}

/**
 * A task object read at the end of a run. The witness notes a write only once its writer read
 * the answer, so a write that landed just before its worker was SIGKILLed is never noted: the
 * ledger then says `running` for a task that storage holds as completed. Reading the object
 * tells such a task from one really stuck, and says where a stuck one is indexed.
 */
export interface StoredAtEnd {
  status: string;
  finishedAt: string | null;
  attempt: number;
  /** Its lease's expiry, when running. */
  leaseExpiresAt: string | null;
  /** The marker it names, and whether that object exists. */
  marker: string | null;
  markerExists: boolean;
  /**
   * True when the object was gone at the end and this is its last version before the delete
   * (from the versioned bucket's history): what the deleter deleted.
   */
  beforeDelete?: boolean;
}

/** Options of {@link checkFates}. */
export interface FateCheckOptions {
  /** Retention per terminal status, ms. */
  retentionMs: Record<FinishedStatus, number>;
  /**
   * How much earlier than `finishedAt + retention` a delete may be sent, ms: pruning compares
   * journal times (whole seconds) with server time read from a `Date` header (whole seconds).
   */
  toleranceMs: number;
}

const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATUSES);

/** Every broken "nothing live is deleted, nothing ran twice" rule, one line each. */
export function checkFates(fates: Iterable<TaskFate>, options: FateCheckOptions): string[] {
  const violations: string[] = [];
  for (const f of fates) {
    for (const [attempt, runs] of Object.entries(f.executions)) {
      if (runs > 1) violations.push(`${f.id}: attempt ${attempt} ran ${runs} times`);
    }
    if (f.deletedMs === undefined) {
      if (!f.presentAtEnd)
        violations.push(`${f.id}: gone at the end, but oq never deleted it (lost)`);
      continue;
    }
    // An ending whose writer was killed before it read the answer is not seen by the witness;
    // the version the delete removed says what was deleted.
    const deleted = f.stored?.beforeDelete === true ? f.stored : undefined;
    const storedEnd =
      deleted !== undefined && TERMINAL.has(deleted.status) && deleted.finishedAt !== null
        ? { status: deleted.status as FinishedStatus, atMs: Date.parse(deleted.finishedAt) }
        : undefined;
    const statusAtDelete =
      f.statusAtDelete !== undefined && TERMINAL.has(f.statusAtDelete)
        ? f.statusAtDelete
        : storedEnd?.status;
    if (statusAtDelete === undefined) {
      violations.push(
        `${f.id}: deleted while ${deleted?.status ?? f.statusAtDelete ?? "in an unknown state"} (live task deleted)`,
      );
      continue;
    }
    const finished = f.finished ?? storedEnd;
    if (finished === undefined) {
      violations.push(`${f.id}: deleted, but no write that finished it was seen`);
      continue;
    }
    const due = finished.atMs + options.retentionMs[finished.status];
    if (f.deletedMs < due - options.toleranceMs)
      violations.push(
        `${f.id}: ${finished.status} at ${new Date(finished.atMs).toISOString()}, deleted ${((due - f.deletedMs) / 1000).toFixed(1)} s before its retention passed`,
      );
  }
  return violations;
}

/** Options of {@link checkPruned}. */
export interface PruneCheckOptions {
  /** When the workers stopped (local epoch ms): nothing prunes after it. */
  endMs: number;
  /** Retention per terminal status, ms. */
  retentionMs: Record<FinishedStatus, number>;
  /**
   * How long after its retention a finished task may still be stored, ms: its journal is
   * written within seconds, or, when its worker died first, by a monitor once the stale-marker
   * grace is over; then a monitor round prunes it.
   */
  lateMs: number;
}

/**
 * Every finished task still stored long after its retention passed: one that escaped pruning
 * (issue 16: a worker killed before writing its finished journal left its tasks in no journal).
 */
export function checkPruned(fates: Iterable<TaskFate>, options: PruneCheckOptions): string[] {
  const violations: string[] = [];
  for (const f of fates) {
    if (!f.presentAtEnd) continue;
    const stored = f.stored?.finishedAt == null ? undefined : Date.parse(f.stored.finishedAt);
    const status = f.finished?.status ?? (f.stored?.status as FinishedStatus | undefined);
    const atMs = f.finished?.atMs ?? stored;
    if (atMs === undefined || status === undefined || !TERMINAL.has(status)) continue;
    const late = options.endMs - (atMs + options.retentionMs[status]);
    if (late > options.lateMs)
      violations.push(
        `${f.id}: ${status} at ${new Date(atMs).toISOString()}, still stored ${(late / 1000).toFixed(0)} s after its retention passed (never pruned)`,
      );
  }
  return violations;
}

/** One point of a series: seconds since the start, and a count. */
export interface Point {
  elapsedS: number;
  value: number;
}

/** The verdict of {@link checkPlateau}. */
export interface PlateauVerdict {
  /** True when the series stopped growing (see {@link checkPlateau}). */
  ok: boolean;
  /** Highest value over the second quarter of the run (the reference). */
  referenceMax: number;
  /** Highest value over the last half of the run. */
  lastHalfMax: number;
  /** The most the last half may reach: `referenceMax + max(tolerance × referenceMax, slack)`. */
  limit: number;
  /** Least-squares slope over the last half, per minute (reported, not judged). */
  slopePerMinute: number;
  /** Why it failed, when it did. */
  reason?: string;
}

/** Options of {@link checkPlateau}. */
export interface PlateauOptions {
  /** Growth allowed over the reference, as a fraction. Default 0.1. */
  tolerance?: number;
  /** Growth always allowed, in objects (small series jitter by a few tens). Default 50. */
  slack?: number;
}

/**
 * Whether a series stopped growing: its highest value over the last half of the run is at most
 * its highest value over the second quarter plus 10% (or plus 50, whichever is more). A series
 * that grows without bound keeps setting new highs, so its last half goes past the second
 * quarter's high by the growth of a quarter of the run; one that levelled off by the end of the
 * first quarter stays within the jitter. Needs at least two samples in each window.
 */
export function checkPlateau(
  points: readonly Point[],
  options: PlateauOptions = {},
): PlateauVerdict {
  const tolerance = options.tolerance ?? 0.1;
  const slack = options.slack ?? 50;
  const end = points.at(-1)?.elapsedS ?? 0;
  const reference = points.filter((p) => p.elapsedS >= end / 4 && p.elapsedS < end / 2);
  const lastHalf = points.filter((p) => p.elapsedS >= end / 2);
  const referenceMax = Math.max(0, ...reference.map((p) => p.value));
  const lastHalfMax = Math.max(0, ...lastHalf.map((p) => p.value));
  const limit = referenceMax + Math.max(tolerance * referenceMax, slack);
  const slopePerMinute = slope(lastHalf) * 60;
  if (reference.length < 2 || lastHalf.length < 2)
    return {
      ok: false,
      referenceMax,
      lastHalfMax,
      limit,
      slopePerMinute,
      reason: `too few samples to judge (${reference.length} in the second quarter, ${lastHalf.length} in the last half; need 2 each)`,
    };
  if (lastHalfMax > limit)
    return {
      ok: false,
      referenceMax,
      lastHalfMax,
      limit,
      slopePerMinute,
      reason: `still growing: ${lastHalfMax} in the last half, over the limit ${Math.round(limit)} (second quarter's high ${referenceMax})`,
    };
  return { ok: true, referenceMax, lastHalfMax, limit, slopePerMinute };
}

/** Least-squares slope of the points, per second (0 for fewer than two). */
function slope(points: readonly Point[]): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.elapsedS, 0) / n;
  const my = points.reduce((s, p) => s + p.value, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.elapsedS - mx) * (p.value - my);
    den += (p.elapsedS - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
