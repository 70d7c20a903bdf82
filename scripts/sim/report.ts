/**
 * The scale model's result: one JSON document per run (what docs/scale.md is rendered from) and
 * its readable print.
 *
 * @module
 */
import type { RequestKind } from "../../src/storage/storage.ts";
import { KINDS, type MeterSummary, type PartitionLoad, type PeakBreakdown } from "./meter.ts";
import { dollars } from "./pricing.ts";
import type { SimS3 } from "./s3-sim.ts";
import type { Ledger, Verification } from "./workload.ts";

/** Minutes in the 30-day month the idle cost is quoted for. */
const MINUTES_PER_MONTH = 30 * 24 * 60;
/** The stream issue 10 sizes the fleet for: 10 million tasks a day. */
const TASKS_PER_DAY = 10_000_000;

/** A partition's load with its share of the limits. */
export interface PartitionRow extends PartitionLoad {
  /** Peak read units / read limit. */
  peakReadShare: number;
  /** Peak write units / write limit. */
  peakWriteShare: number;
}

/** One run, as written by `--out`. */
export interface SimResult {
  format: "oq-scale-model/1";
  label: string;
  command: string;
  config: {
    workers: number;
    minutes: number;
    backlog: number;
    rate: number;
    killFraction: number;
    idleMinutes: number;
    concurrency: number;
    seed: number;
    /** How a DeleteObjects counts against the write limit (absent in older results: "key"). */
    deleteUnits?: "key" | "request";
    /** Hash shards set per type before the run (absent in older results: every type 1). */
    shards?: Record<string, number>;
  };
  limits: { read: number; write: number };
  wallSeconds: number;
  timersFired: number;
  busy: {
    seconds: number;
    /** Seconds from the fleet's start until every task had finished a run. */
    drainedSeconds: number;
    tasksDone: number;
    tasksPerSecond: number;
    streamed: number;
    streamErrors: number;
    requests: Record<RequestKind, number>;
    total: number;
    requestsPerTask: number;
    dollarsPerMillionTasks: number;
    dollarsPerDayAt10MTasks: number;
    slowDown: number;
    partitions: PartitionRow[];
    conflicts: MeterSummary["conflicts"];
    wastedTaskGetsPerTask: number;
    preconditionFailedPerTask: number;
    /**
     * What the busiest partitions' peaks were made of: for each of the three busiest, its peak
     * second of the class nearer its limit, and the two seconds either side (absent in older
     * results).
     */
    peaks?: PeakBreakdown[];
  };
  idle: {
    seconds: number;
    workers: number;
    requestsPerWorkerMinute: number;
    byKindPerWorkerMinute: Record<RequestKind, number>;
    dollarsPerWorkerMonth: number;
    dollarsPerFleetMonth: number;
    slowDown: number;
    partitions: PartitionRow[];
  };
  kills: number;
  verification: Verification;
  workerFailures: string[];
  /** Worker warnings by shape, most frequent first. */
  warnings: { message: string; count: number }[];
}

/** What {@link buildResult} needs from a finished run. */
export interface RunFacts {
  label: string;
  command: string;
  config: SimResult["config"] & { maxMinutes?: number; readLimit?: number; writeLimit?: number };
  sim: SimS3;
  ledger: Ledger;
  verification: Verification;
  /** [from, to) in seconds of the run, per phase. */
  phases: { busy: [number, number]; idle: [number, number] };
  drainedSeconds: number;
  tasksDone: number;
  streamed: number;
  streamErrors: number;
  kills: number;
  workerFailures: string[];
  warnings: ReadonlyMap<string, number>;
  wallSeconds: number;
  timersFired: number;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const r4 = (x: number) => Math.round(x * 10_000) / 10_000;

/** Rows busiest first: by the larger of the two peak shares. */
function rows(sim: SimS3, partitions: PartitionLoad[]): PartitionRow[] {
  const read = sim.limit("read");
  const write = sim.limit("write");
  return partitions
    .map((p) => ({
      ...p,
      peakReadShare: r4(p.peakRead / read),
      peakWriteShare: r4(p.peakWrite / write),
    }))
    .sort(
      (a, b) =>
        Math.max(b.peakReadShare, b.peakWriteShare) - Math.max(a.peakReadShare, a.peakWriteShare),
    );
}

/**
 * The breakdown of the busiest partitions' peaks: the peak second of the class nearer its limit
 * and the two seconds either side, for the three busiest partitions.
 */
function peaks(sim: SimS3, busiest: PartitionRow[], from: number, to: number): PeakBreakdown[] {
  const out: PeakBreakdown[] = [];
  for (const p of busiest.slice(0, 3)) {
    const cls = p.peakWriteShare >= p.peakReadShare ? "write" : "read";
    const at = from + (cls === "write" ? p.peakWriteAt : p.peakReadAt);
    for (let t = Math.max(from, at - 2); t <= Math.min(to - 1, at + 2); t++) {
      out.push(sim.meter.breakdown(p.partition, t, cls, from));
    }
  }
  return out;
}

/** The JSON document of a run. */
export function buildResult(f: RunFacts): SimResult {
  const busy = f.sim.meter.summary(...f.phases.busy);
  const idle = f.sim.meter.summary(...f.phases.idle);
  const tasks = Math.max(1, f.tasksDone);
  const busyDollars = dollars(busy.requests);
  const workerMinutes = (f.config.workers * idle.seconds) / 60;
  const perWorkerMinute = Object.fromEntries(
    KINDS.map((k) => [k, r2(idle.requests[k] / workerMinutes)]),
  ) as Record<RequestKind, number>;
  const idleDollarsPerWorkerMinute = dollars(idle.requests) / workerMinutes;
  // The limits are reported under `limits`.
  const { maxMinutes: _, readLimit: _r, writeLimit: _w, ...config } = f.config;
  const busyRows = rows(f.sim, busy.partitions);
  return {
    format: "oq-scale-model/1",
    label: f.label,
    command: f.command,
    config,
    limits: { read: f.sim.limit("read"), write: f.sim.limit("write") },
    wallSeconds: Math.round(f.wallSeconds),
    timersFired: f.timersFired,
    busy: {
      seconds: busy.seconds,
      drainedSeconds: Math.round(f.drainedSeconds),
      tasksDone: f.tasksDone,
      tasksPerSecond: r2(f.tasksDone / f.drainedSeconds),
      streamed: f.streamed,
      streamErrors: f.streamErrors,
      requests: busy.requests,
      total: busy.total,
      requestsPerTask: r2(busy.total / tasks),
      dollarsPerMillionTasks: r2((busyDollars / tasks) * 1e6),
      dollarsPerDayAt10MTasks: r2((busyDollars / tasks) * TASKS_PER_DAY),
      slowDown: busy.slowDown,
      partitions: busyRows,
      conflicts: busy.conflicts,
      wastedTaskGetsPerTask: r2(busy.conflicts.wastedTaskGets / tasks),
      preconditionFailedPerTask: r4(busy.conflicts.preconditionFailed / tasks),
      peaks: peaks(f.sim, busyRows, ...f.phases.busy),
    },
    idle: {
      seconds: idle.seconds,
      workers: f.config.workers,
      requestsPerWorkerMinute: r2(idle.total / workerMinutes),
      byKindPerWorkerMinute: perWorkerMinute,
      dollarsPerWorkerMonth: r4(idleDollarsPerWorkerMinute * MINUTES_PER_MONTH),
      dollarsPerFleetMonth: r2(idleDollarsPerWorkerMinute * MINUTES_PER_MONTH * f.config.workers),
      slowDown: idle.slowDown,
      partitions: rows(f.sim, idle.partitions),
    },
    kills: f.kills,
    verification: f.verification,
    workerFailures: f.workerFailures.slice(0, 20),
    warnings: [...f.warnings.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([message, count]) => ({ message, count })),
  };
}

const pct = (share: number) => `${(share * 100).toFixed(1)}%`;
const int = (n: number) => Math.round(n).toLocaleString("en-US");

/** A readable report on stdout. */
export function printResult(r: SimResult): void {
  const c = r.config;
  const b = r.busy;
  const v = r.verification;
  const out: string[] = [];
  out.push(`oq scale model${r.label ? `: ${r.label}` : ""}`);
  out.push(`  ${r.command}`);
  out.push(
    `  ${int(c.workers)} workers (concurrency ${c.concurrency}), backlog ${int(c.backlog)}, stream ${c.rate}/s for ${c.minutes} min, ${r.kills} killed and replaced, seed ${c.seed}`,
  );
  const shards = Object.entries(c.shards ?? {});
  if (shards.length > 0) {
    out.push(`  shards: ${shards.map(([t, n]) => `${t} ${n}`).join(", ")} (other types 1)`);
  }
  out.push(`  wall ${r.wallSeconds} s, ${int(r.timersFired)} simulated events`);
  out.push("");
  out.push(
    `Busy phase: ${b.drainedSeconds} s until all ${int(b.tasksDone)} tasks ran (${b.tasksPerSecond} tasks/s); measured over ${b.seconds} s`,
  );
  out.push(
    `  requests: ${KINDS.map((k) => `${k} ${int(b.requests[k])}`).join(", ")}; total ${int(b.total)}`,
  );
  out.push(
    `  per task: ${b.requestsPerTask} requests, $${b.dollarsPerMillionTasks} per million tasks ($${b.dollarsPerDayAt10MTasks} a day at 10 million tasks a day)`,
  );
  out.push(`  SlowDown answers: ${int(b.slowDown)}; stream submits failed: ${b.streamErrors}`);
  out.push(
    `  claim conflicts: ${int(b.conflicts.taskGets)} task GETs, ${int(b.conflicts.wastedTaskGets)} won nothing (${b.wastedTaskGetsPerTask} per task); ${int(b.conflicts.preconditionFailed)} answers 412, ${int(b.conflicts.ifMatchNotFound)} If-Match 404`,
  );
  out.push(...partitionTable(b.partitions, r.limits));
  if (b.peaks !== undefined && b.peaks.length > 0) {
    out.push("  what the busiest partitions' peaks were (units by kind and key; ± 2 s):");
    for (const k of b.peaks) {
      out.push(
        `    ${k.partition} at ${k.at} s: ${int(k.units)} ${k.cls} units, ${int(k.refused)} refused, ${k.writers} writers, ${int(k.distinctKeysWritten)} distinct keys written: ${k.byWhat
          .slice(0, 6)
          .map((w) => `${w.what} ${int(w.units)}`)
          .join(", ")}`,
      );
    }
  }
  out.push("");
  const i = r.idle;
  out.push(`Idle phase: ${i.seconds} s, ${int(i.workers)} workers, no work`);
  out.push(
    `  ${i.requestsPerWorkerMinute} requests per worker-minute (${KINDS.filter(
      (k) => i.byKindPerWorkerMinute[k] > 0,
    )
      .map((k) => `${k} ${i.byKindPerWorkerMinute[k]}`)
      .join(", ")})`,
  );
  out.push(
    `  $${i.dollarsPerWorkerMonth} per worker-month; the idle fleet costs $${i.dollarsPerFleetMonth} a month; SlowDown ${i.slowDown}`,
  );
  out.push(...partitionTable(i.partitions, r.limits));
  out.push("");
  out.push(
    `Outcome: ${int(v.submitted)} acknowledged, ${int(v.found)} found (${Object.entries(v.byStatus)
      .map(([s, n]) => `${s} ${int(n)}`)
      .join(", ")})`,
  );
  out.push(
    `  LOST ${v.lost}, DOUBLED ${v.doubled}, completed without a run ${v.completedWithoutRun}; re-run after a kill ${v.rerunAfterKill} (at-least-once: the worker died before recording the run)`,
  );
  if (r.workerFailures.length > 0) out.push(`  worker failures: ${r.workerFailures.join("; ")}`);
  if (r.warnings.length > 0) {
    out.push("Worker warnings (most frequent):");
    for (const w of r.warnings.slice(0, 8)) out.push(`  ${int(w.count)} × ${w.message}`);
  }
  console.log(out.join("\n"));
}

function partitionTable(rows: PartitionRow[], limits: { read: number; write: number }): string[] {
  const out = [
    `  per partition (limits ${int(limits.read)} reads/s, ${int(limits.write)} writes/s):`,
    `    ${"partition".padEnd(34)} ${"peak read/s (at)".padStart(24)} ${"mean".padStart(7)} ${"peak write/s (at)".padStart(24)} ${"mean".padStart(7)} ${"SlowDown".padStart(9)}`,
  ];
  for (const p of rows.slice(0, 8)) {
    out.push(
      `    ${p.partition.padEnd(34)} ${`${int(p.peakRead)} (${pct(p.peakReadShare)}) ${p.peakReadAt}s`.padStart(24)} ${String(p.meanRead).padStart(7)} ${`${int(p.peakWrite)} (${pct(p.peakWriteShare)}) ${p.peakWriteAt}s`.padStart(24)} ${String(p.meanWrite).padStart(7)} ${int(p.slowDown).padStart(9)}`,
    );
  }
  if (rows.length > 8) out.push(`    … ${rows.length - 8} more partitions, each lighter`);
  return out;
}
