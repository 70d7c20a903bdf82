/**
 * The scale model's workload: task types with their handler times, the worker groups that run
 * them, and the ledger of handler runs that proves no task was lost or run twice.
 *
 * @module
 */
import type { TaskRecord } from "../../src/task/record.ts";

/** A task type and how long its handler takes (uniform between the bounds, ms). */
export interface TaskType {
  type: string;
  /** Share of submitted tasks. */
  share: number;
  minMs: number;
  maxMs: number;
}

/** The mix: mostly short tasks, some long ones, like a web app's background work. */
export const TASK_TYPES: readonly TaskType[] = [
  { type: "email", share: 0.4, minMs: 50, maxMs: 150 },
  { type: "webhook", share: 0.2, minMs: 100, maxMs: 400 },
  { type: "thumbnail", share: 0.3, minMs: 500, maxMs: 2000 },
  { type: "report", share: 0.1, minMs: 5000, maxMs: 20000 },
];

/** Workers with the same handlers. */
export interface WorkerGroup {
  name: string;
  /** Share of the fleet. */
  share: number;
  types: readonly string[];
}

/** Half the fleet runs everything; the rest specialise, so some workers skip some types. */
export const WORKER_GROUPS: readonly WorkerGroup[] = [
  { name: "general", share: 0.5, types: ["email", "webhook", "thumbnail", "report"] },
  { name: "light", share: 0.3, types: ["email", "webhook"] },
  { name: "heavy", share: 0.2, types: ["thumbnail", "report"] },
];

/** The input of every simulated task: how long its handler runs. */
export interface SimInput {
  ms: number;
}

/** `n` new tasks drawn from {@link TASK_TYPES}. */
export function newTasks(n: number, random: () => number): { type: string; input: SimInput }[] {
  const out: { type: string; input: SimInput }[] = [];
  for (let i = 0; i < n; i++) {
    let r = random();
    let t = TASK_TYPES[TASK_TYPES.length - 1]!;
    for (const candidate of TASK_TYPES) {
      if (r < candidate.share) {
        t = candidate;
        break;
      }
      r -= candidate.share;
    }
    const ms = Math.round(t.minMs + random() * (t.maxMs - t.minMs));
    out.push({ type: t.type, input: { ms } });
  }
  return out;
}

/** The group of worker number `index` of `n` (groups fill the fleet in order of their shares). */
export function groupOf(index: number, n: number): WorkerGroup {
  let upTo = 0;
  for (const g of WORKER_GROUPS) {
    upTo += g.share * n;
    if (index < upTo) return g;
  }
  return WORKER_GROUPS[WORKER_GROUPS.length - 1]!;
}

/** One finished handler run. */
interface Run {
  attempt: number;
  worker: string;
}

/** What the check of a run's outcome found. */
export interface Verification {
  /** Tasks submitted (backlog plus stream, as acknowledged to the submitter). */
  submitted: number;
  /** Task objects found in the bucket at the end. */
  found: number;
  /** Found tasks by status. */
  byStatus: Record<string, number>;
  /** Tasks acknowledged but not completed (missing, or in another state). Must be 0. */
  lost: number;
  /** Tasks whose handler finished twice for one attempt, or again after a live worker finished it. Must be 0. */
  doubled: number;
  /** Tasks run again because the worker that ran them died before recording it (at-least-once, expected). */
  rerunAfterKill: number;
  /** Completed tasks whose completing attempt has no finished run on record. Must be 0. */
  completedWithoutRun: number;
  /** Handler runs finished in all. */
  handlerRuns: number;
}

/** Every handler run, by task id, and which workers were killed. */
export class Ledger {
  readonly #runs = new Map<string, Run[]>();
  /** Workers that were killed (their later handler ends never happen). */
  readonly killed = new Set<string>();
  /** Distinct tasks with at least one finished run. */
  finishedTasks = 0;
  /** Handler runs finished. */
  handlerRuns = 0;

  /** A handler finished on `worker` for attempt `attempt` of task `id`. */
  record(id: string, attempt: number, worker: string): void {
    let runs = this.#runs.get(id);
    if (runs === undefined) {
      runs = [];
      this.#runs.set(id, runs);
      this.finishedTasks++;
    }
    runs.push({ attempt, worker });
    this.handlerRuns++;
  }

  /** Check the final task records against the runs and the acknowledged submissions. */
  verify(tasks: readonly TaskRecord[], submittedIds: ReadonlySet<string>): Verification {
    const byStatus: Record<string, number> = {};
    const found = new Map<string, TaskRecord>();
    for (const t of tasks) {
      byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
      found.set(t.id, t);
    }
    let lost = 0;
    for (const id of submittedIds) if (found.get(id)?.status !== "completed") lost++;
    for (const t of tasks) if (!submittedIds.has(t.id) && t.status !== "completed") lost++;
    let doubled = 0;
    let rerunAfterKill = 0;
    let completedWithoutRun = 0;
    for (const t of tasks) {
      const runs = this.#runs.get(t.id) ?? [];
      if (t.status === "completed" && !runs.some((r) => r.attempt === t.attempt)) {
        completedWithoutRun++;
      }
      if (runs.length < 2) continue;
      const attempts = new Set(runs.map((r) => r.attempt));
      const earlier = runs.slice(0, -1);
      if (attempts.size < runs.length || earlier.some((r) => !this.killed.has(r.worker))) {
        doubled++;
      } else rerunAfterKill++;
    }
    return {
      submitted: submittedIds.size,
      found: tasks.length,
      byStatus,
      lost,
      doubled,
      rerunAfterKill,
      completedWithoutRun,
      handlerRuns: this.handlerRuns,
    };
  }
}
