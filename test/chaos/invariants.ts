/**
 * The invariants a chaos run must keep, checked from the bucket's history after the run. Used by
 * the chaos tests and by `scripts/chaos.ts`; it asserts nothing itself (no test framework), it
 * returns a report whose `violations` say exactly what went wrong.
 *
 * What is checked, for every submitted task:
 * - **Nothing lost**: the task exists and is terminal (never left pending or running), in the
 *   expected state (`completed` unless told otherwise).
 * - **Exactly one terminal state**: exactly one terminal version in its history (these runs never
 *   replay), and it is the current one.
 * - **Completed once**: at most one `completed` version, and at most one worker reports a
 *   completion. At-least-once means a handler MAY run twice (after a lost lease), never that a
 *   task is recorded completed twice.
 * - **Valid transitions**: the history starts with `submitted` and every step is allowed by
 *   `TRANSITIONS` (src/task/transitions.ts).
 * - **The event log agrees**: the current record's own log (`history`) lists the versions'
 *   events, consecutive renewals as one, the last `TASK_HISTORY_LIMIT` of them.
 * - **Only the lease holder writes a running task**: every claim starts a new attempt with a new
 *   token; every version written by a lease holder (renewal, completion, retry, failure, release)
 *   continues the attempt and the lease of the version before it. A worker whose lease was taken
 *   over works from its own stale copy, so a write of it landing after the takeover would carry
 *   the old attempt or token and is caught here.
 * - **No early runs, no premature steals**: by the storage's own clock (each version's
 *   `lastModified`), a claim of a pending task happens at or after its `availableAt`, and a
 *   takeover or lease recovery at or after the lease's expiry.
 * - **Handlers ran only under a claim**: every recorded handler execution matches a claim (same
 *   worker, same attempt) in the history, and every completion a worker reported matches the
 *   completed version (written by that worker's attempt).
 *
 * @module
 */
import { NotFoundError } from "../../src/errors.ts";
import type { Queue } from "../../src/queue/queue.ts";
import type { TaskVersion } from "../../src/queue/types.ts";
import { TASK_HISTORY_LIMIT } from "../../src/task/event-log.ts";
import type { TaskEvent, TaskRecord, TaskStatus } from "../../src/task/record.ts";
import { ms, TERMINAL_STATUSES, TRANSITIONS } from "../../src/task/transitions.ts";
import { mapLimit } from "../../src/util/async.ts";

/** One handler execution, as the worker that ran it recorded it. */
export interface Execution {
  /** Task id. */
  id: string;
  /** The worker that ran it. */
  workerId: string;
  /** `ctx.attempt`. */
  attempt: number;
  /** Real (unskewed) epoch ms at which the handler started, when known. */
  at?: number;
}

/** A completion a worker reported (its `completed` event). */
export interface Completion {
  /** Task id. */
  id: string;
  /** The worker that reported it. */
  workerId: string;
  /** The attempt it completed. */
  attempt: number;
}

/** What happened during a run, from the workers' side. */
export interface RunLog {
  /** Ids of every task submitted (and acknowledged) during the run. */
  submitted: string[];
  /** Every handler execution. */
  executions: Execution[];
  /** Every completion reported by a worker. */
  completions: Completion[];
}

/** Options of {@link checkRun}. */
export interface CheckOptions {
  /** The terminal state every task must end in. Default `completed`; `null`: any terminal state. */
  expectStatus?: TaskStatus | null;
  /**
   * How far a version's `lastModified` may lag the times it is compared with, ms. 0 for
   * storages that keep millisecond times (memory, file, MinIO); 1000 for second precision.
   */
  clockToleranceMs?: number;
  /** Also list `tasks/` and report task objects nobody submitted (e.g. a duplicate submit). */
  scanForStrays?: boolean;
  /** Histories read at once. Default 8. */
  concurrency?: number;
}

/** The outcome of {@link checkRun}. */
export interface InvariantReport {
  /** Tasks checked. */
  tasks: number;
  /** Tasks by final state (`missing` for tasks that do not exist). */
  finalStates: Record<string, number>;
  /** Tasks not terminal or missing after the run. */
  lost: string[];
  /** Tasks with more than one completion (versions or reports). */
  completedTwice: string[];
  /** Tasks whose handler ran more than once (allowed: at-least-once). */
  duplicated: string[];
  /** Handler executions in total. */
  executions: number;
  /** Claims of a running task whose lease had expired. */
  takeovers: number;
  /** Running tasks moved back to pending or failed by a monitor. */
  recoveries: number;
  /** Lease renewals (handlers that outlived half their lease). */
  renewals: number;
  /** Task versions read. */
  versions: number;
  /** Task objects under `tasks/` that were never submitted (with `scanForStrays`). */
  strays: string[];
  /** Every broken invariant, one line each. */
  violations: string[];
  /** True when there is no violation. */
  ok: boolean;
}

/** Events written by the holder of the lease of the version before. */
const HOLDER_EVENTS: ReadonlySet<TaskEvent> = new Set<TaskEvent>([
  "lease-renewed",
  "completed",
  "retry-scheduled",
  "failed",
  "released",
]);

/**
 * Check a run. `queue` must reach the bucket without injected faults (the verdict must not depend
 * on the weather). Reads every submitted task's full history: about one LIST and a few GETs per
 * task.
 */
export async function checkRun(
  queue: Queue,
  log: RunLog,
  options: CheckOptions = {},
): Promise<InvariantReport> {
  const expectStatus = options.expectStatus === undefined ? "completed" : options.expectStatus;
  const tolerance = options.clockToleranceMs ?? 0;
  const violations: string[] = [];
  const lost: string[] = [];
  const completedTwice = new Set<string>();
  const finalStates: Record<string, number> = {};
  let takeovers = 0;
  let recoveries = 0;
  let renewals = 0;
  let versions = 0;

  const runsById = groupBy(log.executions, (e) => e.id);
  const completionsById = groupBy(log.completions, (c) => c.id);
  const submitted = new Set(log.submitted);
  for (const id of runsById.keys())
    if (!submitted.has(id)) violations.push(`${id}: a handler ran a task that was not submitted`);

  const histories = await mapLimit([...submitted], options.concurrency ?? 8, async (id) => {
    try {
      return { id, history: await queue.getVersions(id) };
    } catch (error) {
      if (error instanceof NotFoundError) return { id, history: undefined };
      throw error;
    }
  });

  for (const { id, history } of histories) {
    const bad = (why: string) => violations.push(`${id}: ${why}`);
    if (history === undefined || history.length === 0) {
      lost.push(id);
      finalStates.missing = (finalStates.missing ?? 0) + 1;
      bad("missing: the task does not exist");
      continue;
    }
    versions += history.length;
    const entries = history.filter((h): h is TaskVersion & { task: TaskRecord } => {
      if (h.task === null) bad(`version ${h.versionId} is a delete marker`);
      return h.task !== null;
    });
    const last = entries.at(-1);
    const status = last?.task.status ?? "missing";
    finalStates[status] = (finalStates[status] ?? 0) + 1;
    if (last === undefined || !TERMINAL_STATUSES.includes(last.task.status)) {
      lost.push(id);
      bad(`lost: still ${status} after the run (${events(entries)})`);
    } else if (expectStatus !== null && last.task.status !== expectStatus) {
      bad(`ended ${last.task.status}, expected ${expectStatus} (${events(entries)})`);
    }
    const terminals = entries.filter((e) => TERMINAL_STATUSES.includes(e.task.status));
    if (terminals.length > 1 && !entries.some((e) => e.task.event === "replayed"))
      bad(`reached a terminal state ${terminals.length} times (${events(entries)})`);
    const completed = entries.filter((e) => e.task.event === "completed");
    const reports = completionsById.get(id) ?? [];
    if (completed.length > 1 || reports.length > 1) {
      completedTwice.add(id);
      bad(`completed ${completed.length} times, reported by ${reports.length} workers`);
    }

    // The event log in the record tells the versions' story: one entry per version (consecutive
    // renewals as one), the last TASK_HISTORY_LIMIT of them; no write appended twice or skipped.
    if (last !== undefined && entries[0]!.task.history.length > 0) {
      const told = events(entries)
        .split(",")
        .filter((e, i, all) => !(e === "lease-renewed" && all[i + 1] === "lease-renewed"))
        .slice(-TASK_HISTORY_LIMIT)
        .join(",");
      const logged = last.task.history.map((e) => e.event).join(",");
      if (logged !== told) bad(`its event log reads ${logged}, its versions ${told}`);
    }

    // Transitions, and who wrote each version.
    if (entries[0]?.task.event !== "submitted")
      bad(`history starts with ${entries[0]?.task.event}`);
    const claims: { workerId: string; attempt: number }[] = [];
    let completedBy: { workerId: string; attempt: number } | undefined;
    for (let i = 1; i < entries.length; i++) {
      const prev = entries[i - 1]!.task;
      const cur = entries[i]!.task;
      const at = entries[i]!.lastModified.getTime() + tolerance;
      const step = `${prev.event} -> ${cur.event} (version ${i})`;
      if (!TRANSITIONS[prev.event]?.includes(cur.event)) bad(`invalid transition ${step}`);
      if (cur.id !== id) bad(`${step} names task ${cur.id}`);
      if (cur.event === "claimed") {
        if (cur.lease === null) {
          bad(`${step}: a claim without a lease`);
          continue;
        }
        claims.push({ workerId: cur.lease.workerId, attempt: cur.attempt });
        if (cur.attempt !== prev.attempt + 1)
          bad(`${step}: attempt ${prev.attempt} -> ${cur.attempt}, expected +1`);
        if (prev.lease !== null && prev.lease.token === cur.lease.token)
          bad(`${step}: the claim reused the previous lease token`);
        if (prev.status === "running") {
          takeovers++;
          if (prev.lease === null) bad(`${step}: took over a running task without a lease`);
          else if (ms(prev.lease.expiresAt) > at)
            bad(
              `${step}: premature takeover from ${prev.lease.workerId}: its lease ran to ${prev.lease.expiresAt}, the claim was written at ${entries[i]!.lastModified.toISOString()}`,
            );
        } else if (prev.status === "pending") {
          if (ms(prev.availableAt) > at)
            bad(
              `${step}: early run: due at ${prev.availableAt}, claimed at ${entries[i]!.lastModified.toISOString()}`,
            );
        } else bad(`${step}: claimed a ${prev.status} task`);
      } else if (isRecovery(cur)) {
        // A monitor's write: only once the lease has run out, by the storage's clock.
        recoveries++;
        if (prev.status !== "running" || prev.lease === null)
          bad(`${step}: recovered a ${prev.status} task`);
        else if (ms(prev.lease.expiresAt) > at)
          bad(
            `${step}: recovered a live lease of ${prev.lease.workerId} (it ran to ${prev.lease.expiresAt})`,
          );
      } else if (HOLDER_EVENTS.has(cur.event)) {
        // Written by the holder of prev's lease, from prev: the same attempt (one less for a
        // release, which does not count the attempt), and for a renewal the same lease.
        if (prev.status !== "running" || prev.lease === null) {
          bad(`${step}: a lease holder's write on a ${prev.status} task`);
          continue;
        }
        const attempt = cur.event === "released" ? prev.attempt - 1 : prev.attempt;
        if (cur.attempt !== attempt)
          bad(`${step}: attempt ${cur.attempt} after attempt ${prev.attempt}: a stale writer`);
        if (cur.event === "lease-renewed") {
          renewals++;
          if (cur.lease?.token !== prev.lease.token || cur.lease.workerId !== prev.lease.workerId)
            bad(
              `${step}: renewed by ${cur.lease?.workerId}, but the lease was ${prev.lease.workerId}'s`,
            );
        } else if (cur.lease !== null) bad(`${step}: still holds a lease`);
        if (cur.event === "completed")
          completedBy = { workerId: prev.lease.workerId, attempt: prev.attempt };
      } else if (cur.event === "expired") {
        if (prev.expiresAt === null || ms(prev.expiresAt) > at) bad(`${step}: expired early`);
      }
    }

    // The workers' side must agree with the history.
    for (const run of runsById.get(id) ?? []) {
      if (!claims.some((c) => c.workerId === run.workerId && c.attempt === run.attempt))
        bad(`${run.workerId} ran attempt ${run.attempt} without a claim in the history`);
      if (run.at !== undefined) {
        const claim = entries.find(
          (e) => e.task.event === "claimed" && e.task.attempt === run.attempt,
        );
        const prev = claim === undefined ? undefined : entries[entries.indexOf(claim) - 1];
        if (prev?.task.status === "pending" && ms(prev.task.availableAt) > run.at + tolerance)
          bad(`${run.workerId} started attempt ${run.attempt} before ${prev.task.availableAt}`);
      }
    }
    for (const report of reports) {
      if (
        completedBy === undefined ||
        report.workerId !== completedBy.workerId ||
        report.attempt !== completedBy.attempt
      )
        bad(
          `${report.workerId} reported completing attempt ${report.attempt}, but the history says ${completedBy === undefined ? "nobody completed it" : `${completedBy.workerId} completed attempt ${completedBy.attempt}`}`,
        );
    }
  }

  const strays: string[] = [];
  if (options.scanForStrays) {
    let token: string | undefined;
    do {
      const page = await queue.storage.list({
        prefix: queue.keys.tasks,
        ...(token === undefined ? {} : { continuationToken: token }),
      });
      for (const o of page.objects) {
        const id = queue.keys.parseTaskKey(o.key);
        if (id !== undefined && !submitted.has(id)) strays.push(id);
      }
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token !== undefined);
    for (const id of strays) violations.push(`${id}: a task nobody submitted`);
  }

  const duplicated = [...runsById].filter(([, runs]) => runs.length > 1).map(([id]) => id);
  return {
    tasks: submitted.size,
    finalStates,
    lost,
    completedTwice: [...completedTwice],
    duplicated,
    executions: log.executions.length,
    takeovers,
    recoveries,
    renewals,
    versions,
    strays,
    violations,
    ok: violations.length === 0,
  };
}

/**
 * True for a version written by a monitor recovering an expired lease (`expireLease`): back to
 * pending as `lease-expired`, or `failed` when out of retries, with a fresh `LeaseExpired` error.
 */
function isRecovery(task: TaskRecord): boolean {
  if (task.event === "lease-expired") return true;
  return (
    task.event === "failed" &&
    task.lastError?.name === "LeaseExpired" &&
    task.lastError.at === task.updatedAt
  );
}

function events(entries: { task: TaskRecord }[]): string {
  return entries.map((e) => e.task.event).join(",");
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list === undefined) out.set(k, [item]);
    else list.push(item);
  }
  return out;
}

/** A one-paragraph summary of a report, for test failure messages and the chaos script. */
export function describeReport(report: InvariantReport, maxViolations = 20): string {
  const lines = [
    `${report.tasks} tasks: ${Object.entries(report.finalStates)
      .map(([s, n]) => `${n} ${s}`)
      .join(
        ", ",
      )}; ${report.executions} handler runs, ${report.duplicated.length} tasks run more than once, ${report.completedTwice.length} completed twice, ${report.lost.length} lost; ${report.takeovers} takeovers, ${report.recoveries} recoveries, ${report.renewals} lease renewals, ${report.versions} versions`,
  ];
  for (const v of report.violations.slice(0, maxViolations)) lines.push(`  - ${v}`);
  if (report.violations.length > maxViolations)
    lines.push(`  ... and ${report.violations.length - maxViolations} more`);
  return lines.join("\n");
}
