/**
 * The process soak's verdicts (scripts/soak-processes.ts), as pure functions of what it
 * recorded, so a test can show each of them failing (test/soak-processes-checks.test.ts):
 *
 * - {@link checkRssFlat}: a worker process's resident memory levels off.
 * - {@link checkSocketsFlat}: its open sockets do not pile up.
 * - {@link checkTasksEnded}: every task the stream submitted reached the terminal state it was
 *   meant to reach (as the witness saw, or as its object says at the end), or is still live and
 *   young.
 *
 * A process killed and restarted is a new process: each lifetime is judged on its own.
 *
 * @module
 */
import type { FinishedStatus } from "../src/keys.ts";
import { TERMINAL_STATUSES } from "../src/task/transitions.ts";
import type { TaskFate } from "./soak-checks.ts";

const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATUSES);

/** One reading of one worker process. */
export interface ProcessSample {
  /** Seconds since the stream started. */
  elapsedS: number;
  /** Resident set size, KiB (`VmRSS` of /proc/PID/status). */
  rssKb: number;
  /** Open file descriptors that are sockets (/proc/PID/fd entries linking to `socket:[...]`). */
  sockets: number;
}

/** Options of {@link checkRssFlat} and {@link checkSocketsFlat}. */
export interface FlatOptions {
  /** Seconds after spawn not judged (start-up: modules load, the heap and pools fill). */
  warmupS: number;
  /** Samples needed in each third of the judged window to judge at all. Default 3. */
  minPerThird?: number;
}

/** The verdict on one series of one process lifetime. */
export interface FlatVerdict {
  /** False when the lifetime was too short after its warm-up to judge (then `ok` is true). */
  judged: boolean;
  ok: boolean;
  /** The reference: RSS, the second third's median (KiB); sockets, the first third's high. */
  reference: number;
  /** The value judged: RSS, the last third's median (KiB); sockets, the last third's high. */
  late: number;
  /** The most `late` may be. */
  limit: number;
  /** Least-squares slope over the judged window, per minute (reported, not judged). */
  slopePerMinute: number;
  reason?: string;
}

/** The judged window of a lifetime spawned at `spawnedS`, in thirds (by sample count). */
function thirds(
  samples: readonly ProcessSample[],
  spawnedS: number,
  options: FlatOptions,
): [ProcessSample[], ProcessSample[], ProcessSample[]] | undefined {
  const window = samples.filter((s) => s.elapsedS >= spawnedS + options.warmupS);
  const n = window.length;
  if (Math.floor(n / 3) < (options.minPerThird ?? 3)) return undefined;
  const a = Math.floor(n / 3);
  const b = Math.floor((2 * n) / 3);
  return [window.slice(0, a), window.slice(a, b), window.slice(b)];
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Least-squares slope of `value` over `elapsedS`, per minute (0 for fewer than two points). */
export function slopePerMinute(points: readonly { elapsedS: number; value: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.elapsedS, 0) / n;
  const my = points.reduce((s, p) => s + p.value, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.elapsedS - mx) * (p.value - my);
    den += (p.elapsedS - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

const NOT_JUDGED = { judged: false, ok: true, reference: 0, late: 0, limit: 0, slopePerMinute: 0 };

/**
 * Whether a process's RSS levelled off: leaving out its first `warmupS` seconds, the median RSS
 * of the last third of its lifetime is at most the median of the second third plus
 * `tolerance` (default 10%) or plus `slackKb` (default 10 MiB), whichever is more. A leak keeps
 * raising the median third by third; a process whose heap settled stays within its GC jitter.
 * Medians, not highs, so one sample taken just before a collection does not decide.
 */
export function checkRssFlat(
  samples: readonly ProcessSample[],
  spawnedS: number,
  options: FlatOptions & { tolerance?: number; slackKb?: number },
): FlatVerdict {
  const parts = thirds(samples, spawnedS, options);
  if (parts === undefined) return { ...NOT_JUDGED, reason: "too short to judge" };
  const [first, second, last] = parts;
  const reference = median(second.map((s) => s.rssKb));
  const late = median(last.map((s) => s.rssKb));
  const limit =
    reference + Math.max((options.tolerance ?? 0.1) * reference, options.slackKb ?? 10_240);
  const slope = slopePerMinute(
    [...first, ...second, ...last].map((s) => ({ elapsedS: s.elapsedS, value: s.rssKb })),
  );
  const verdict = {
    judged: true,
    ok: late <= limit,
    reference,
    late,
    limit,
    slopePerMinute: slope,
  };
  return verdict.ok
    ? verdict
    : {
        ...verdict,
        reason: `RSS still growing: last third's median ${mib(late)}, over the limit ${mib(limit)} (second third's median ${mib(reference)})`,
      };
}

/**
 * Whether a process's open sockets stayed flat: leaving out its first `warmupS` seconds, the
 * most it had open in the last third of its lifetime is at most the most it had in the first
 * third plus `slack` (default 8: each request in flight may hold its own connection, and a
 * worker's 4 slots, poll, heartbeat and monitor's batched deletes briefly open ten or so, as the
 * trial runs showed). Sockets that leak (a connection never closed, never reused) pile up, one
 * or more per task, and break through within minutes.
 */
export function checkSocketsFlat(
  samples: readonly ProcessSample[],
  spawnedS: number,
  options: FlatOptions & { slack?: number },
): FlatVerdict {
  const parts = thirds(samples, spawnedS, options);
  if (parts === undefined) return { ...NOT_JUDGED, reason: "too short to judge" };
  const [first, second, last] = parts;
  const reference = Math.max(...first.map((s) => s.sockets));
  const late = Math.max(...last.map((s) => s.sockets));
  const limit = reference + (options.slack ?? 8);
  const slope = slopePerMinute(
    [...first, ...second, ...last].map((s) => ({ elapsedS: s.elapsedS, value: s.sockets })),
  );
  const verdict = {
    judged: true,
    ok: late <= limit,
    reference,
    late,
    limit,
    slopePerMinute: slope,
  };
  return verdict.ok
    ? verdict
    : {
        ...verdict,
        reason: `sockets piling up: ${late} open in the last third, over the limit ${limit} (first third's high ${reference})`,
      };
}

const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;

/** A task the stream submitted, and the terminal status it must reach. */
export interface ExpectedTask {
  id: string;
  expected: FinishedStatus;
  /** Local epoch ms of its submit. */
  submittedMs: number;
}

/** What {@link checkTasksEnded} found. */
export interface TaskEndings {
  /** Tasks that reached the status they were meant to. */
  ended: number;
  /** Tasks not finished at the end, still stored, younger than the bound. */
  live: number;
  /** Every task lost, stuck or ended wrongly, one line each. */
  violations: string[];
  /**
   * Tasks that ended as meant by a write the witness never saw (its worker was killed before it
   * read the answer): found by reading the object at the end, one line each.
   */
  endedUnseen: string[];
}

/**
 * Whether no task was lost: every task in `tasks` reached its `expected` terminal state (seen
 * by the witness, whether or not it was pruned since, or stored so at the end: a fate's `stored`,
 * for an ending written by a worker killed before it read the answer, which the witness never
 * sees), or is not finished yet but is still stored and was submitted less than `liveBoundMs`
 * before `endMs`. A task stuck past the bound is reported with what its object says.
 */
export function checkTasksEnded(
  tasks: Iterable<ExpectedTask>,
  fates: ReadonlyMap<string, TaskFate>,
  options: { endMs: number; liveBoundMs: number },
): TaskEndings {
  const result: TaskEndings = { ended: 0, live: 0, violations: [], endedUnseen: [] };
  for (const t of tasks) {
    const fate = fates.get(t.id);
    const stored = fate?.stored;
    const storedEnd =
      stored !== undefined && TERMINAL.has(stored.status) ? stored.status : undefined;
    if (fate === undefined)
      result.violations.push(`${t.id}: submitted, but no write of it was seen`);
    else if (fate.finished !== undefined || storedEnd !== undefined) {
      const status = fate.finished?.status ?? storedEnd;
      if (status !== t.expected)
        result.violations.push(`${t.id}: ended ${status}, meant to end ${t.expected}`);
      else result.ended++;
      if (fate.finished === undefined && status === t.expected)
        result.endedUnseen.push(
          `${t.id}: ${stored!.status} at ${stored!.finishedAt} (attempt ${stored!.attempt}) by a write its worker never saw answered (killed); the witness last saw ${fate.lastStatus}`,
        );
    } else if (!fate.presentAtEnd)
      result.violations.push(
        `${t.id}: ${fate.lastStatus}, not finished and gone at the end (lost)`,
      );
    else if (options.endMs - t.submittedMs > options.liveBoundMs)
      result.violations.push(
        `${t.id}: still ${fate.lastStatus} ${Math.round((options.endMs - t.submittedMs) / 1000)} s after its submit (stuck; bound ${options.liveBoundMs / 1000} s)${stored === undefined ? "" : `; stored ${stored.status}, attempt ${stored.attempt}, lease until ${stored.leaseExpiresAt ?? "-"}, marker ${stored.marker ?? "none"}${stored.markerExists ? "" : " (missing)"}`}`,
      );
    else result.live++;
  }
  return result;
}
