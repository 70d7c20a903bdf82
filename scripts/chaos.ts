/**
 * The chaos scenarios at full size (the tests run them small). Prints, per scenario: tasks,
 * faults injected by kind, tasks run more than once, tasks completed twice, losses, elapsed time,
 * and every broken invariant. Exits 1 when any invariant broke.
 *
 *   npx tsx scripts/chaos.ts --scenario faults --tasks 2000 --workers 4
 *   npx tsx scripts/chaos.ts --scenario kills --tasks 2000
 *   npx tsx scripts/chaos.ts --scenario all --tasks 2000 --json chaos.json
 *   npx tsx scripts/chaos.ts --scenario drives --tasks 2000 --workers 4
 *
 * Scenarios: faults (10% of storage calls fail), kills (two workers SIGKILLed at random moments,
 * three rounds), latency (p99 of 2 s), skew (worker clocks 5 minutes off both ways), hostile
 * (another client writes garbage under every prefix), drives (an erasure-coded MinIO of 4 drives
 * started for the run loses one drive, then a second for `--below-quorum-seconds`, gets them back
 * and is killed and restarted; not part of `all`: it needs the MinIO binary, not a target),
 * network (S3 only: through a fault proxy that resets, loses answers of committed writes, delays,
 * holds connections and answers a 503 storm).
 *
 * Targets: `--target s3` (the default when OQ_TEST_S3_* is set: `bash scripts/minio.sh start &&
 * source .minio/env`), `--target file` (a temporary directory), `--target memory` (workers in
 * this process). Workers run in their own processes except on memory (`--mode inline` forces
 * in-process workers anywhere).
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type DrivesResult, runDrivesScenario } from "../test/chaos/drives.ts";
import {
  type FleetMode,
  runScenario,
  SCENARIOS,
  type ScenarioName,
  type ScenarioResult,
} from "../test/chaos/harness.ts";
import { describeReport } from "../test/chaos/invariants.ts";
import { ErasureMinio, minioMissing } from "../test/helpers/minio.ts";
import {
  fileTarget,
  memoryTarget,
  s3Target,
  s3TargetOf,
  type Target,
} from "../test/helpers/targets.ts";
import { FAULT_KINDS } from "../test/support/faulty.ts";

const { values: args } = parseArgs({
  options: {
    scenario: { type: "string", default: "all" },
    tasks: { type: "string", default: "2000" },
    workers: { type: "string" },
    concurrency: { type: "string", default: "4" },
    target: { type: "string" },
    mode: { type: "string" },
    "fault-rate": { type: "string", default: "0.1" },
    rounds: { type: "string", default: "3" },
    "lease-seconds": { type: "string" },
    "handler-ms": { type: "string" },
    "timeout-seconds": { type: "string", default: "900" },
    "below-quorum-seconds": { type: "string", default: "10" },
    json: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (args.help) {
  console.log(
    "usage: tsx scripts/chaos.ts --scenario faults|kills|latency|skew|hostile|drives|network|all [--tasks N] [--workers N] [--concurrency N] [--target s3|file|memory] [--mode process|inline] [--fault-rate R] [--rounds N] [--lease-seconds S] [--handler-ms MIN,MAX] [--timeout-seconds S] [--below-quorum-seconds S] [--json FILE]",
  );
  process.exit(0);
}

if (args.scenario === "drives") {
  const result = await runDrives();
  console.log(`\n== drives on ${result.target} (process workers): ${result.ok ? "OK" : "FAILED"}`);
  printDrives(result);
  if (args.json) writeFileSync(args.json, `${JSON.stringify([result], null, 2)}\n`);
  process.exit(result.ok ? 0 : 1);
}

const targetName = args.target ?? (s3Target ? "s3" : "file");
/** The workers' lease and handler durations, when given (shared by every scenario). */
function workerTiming(): { leaseSeconds?: number; handlerMs?: [number, number] } {
  return {
    ...(args["lease-seconds"] === undefined ? {} : { leaseSeconds: Number(args["lease-seconds"]) }),
    ...(args["handler-ms"] === undefined
      ? {}
      : { handlerMs: args["handler-ms"].split(",").map(Number) as [number, number] }),
  };
}

const scenarios: ScenarioName[] =
  args.scenario === "all"
    ? SCENARIOS.filter((s) => s !== "network" || targetName === "s3")
    : args.scenario.split(",").map((s) => {
        if (!(SCENARIOS as readonly string[]).includes(s)) {
          console.error(`chaos: unknown scenario ${s}; use one of ${SCENARIOS.join(", ")} or all`);
          process.exit(2);
        }
        return s as ScenarioName;
      });

const targets: Record<string, Target | undefined> = {
  s3: s3Target,
  file: fileTarget,
  memory: memoryTarget,
};
const target = targets[targetName];
if (target === undefined) {
  console.error(
    targetName === "s3"
      ? "chaos: OQ_TEST_S3_* is not set. Start MinIO first: bash scripts/minio.sh start && source .minio/env"
      : `chaos: unknown target ${targetName}; use s3, file or memory`,
  );
  process.exit(2);
}
if (args.mode !== undefined && args.mode !== "process" && args.mode !== "inline") {
  console.error("chaos: --mode is process or inline");
  process.exit(2);
}

const results: ScenarioResult[] = [];
const started = Date.now();
for (const scenario of scenarios) {
  const env = await target.create();
  const t0 = Date.now();
  const log = (line: string) =>
    console.error(`[${scenario} ${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  try {
    const result = await runScenario(scenario, {
      target: env,
      targetName: target.name,
      tasks: Number(args.tasks),
      ...(args.workers === undefined ? {} : { workers: Number(args.workers) }),
      concurrency: Number(args.concurrency),
      faultRate: Number(args["fault-rate"]),
      rounds: Number(args.rounds),
      ...workerTiming(),
      timeoutMs: Number(args["timeout-seconds"]) * 1000,
      ...(args.mode === undefined ? {} : { mode: args.mode as FleetMode }),
      progress: log,
    });
    results.push(result);
    print(result);
  } finally {
    await env.cleanup();
  }
}

function print(r: ScenarioResult): void {
  const faults = FAULT_KINDS.filter((k) => r.faults[k] > 0)
    .map((k) => `${k} ${r.faults[k]}`)
    .join(", ");
  const injected = FAULT_KINDS.reduce((n, k) => n + (k === "latency-spike" ? 0 : r.faults[k]), 0);
  console.log(`\n== ${r.scenario} on ${r.target} (${r.mode} workers): ${r.ok ? "OK" : "FAILED"}`);
  console.log(`tasks            ${r.tasks} (${r.workersStarted} workers started)`);
  console.log(
    `faults injected  ${injected} errors in ${r.calls} calls (${r.calls ? ((100 * injected) / r.calls).toFixed(1) : 0}%)${faults ? `: ${faults}` : ""}`,
  );
  const net = r.facts as { proxyFaults?: Record<string, number>; perSecondDuringStorm?: number };
  if (net.proxyFaults !== undefined)
    console.log(
      `network faults   ${JSON.stringify(net.proxyFaults)}; requests/s before the storm ${r.facts.perSecondBeforeStorm}, during it ${net.perSecondDuringStorm}`,
    );
  console.log(
    `duplicates       ${r.report.duplicated.length} tasks ran more than once (${r.report.executions - r.tasks} extra runs); ${r.report.completedTwice.length} completed twice`,
  );
  console.log(`losses           ${r.report.lost.length}`);
  console.log(`elapsed          ${(r.elapsedMs / 1000).toFixed(1)} s`);
  console.log(`facts            ${JSON.stringify(r.facts)}`);
  console.log(describeReport(r.report));
  for (const p of r.problems) console.log(`  ! ${p}`);
}

console.log(
  `\n${results.filter((r) => r.ok).length}/${results.length} scenarios kept every invariant in ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
if (args.json) {
  writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
}
process.exit(results.every((r) => r.ok) ? 0 : 1);

/** The drives scenario on a MinIO of its own (4 drives), stopped afterwards. */
async function runDrives(): Promise<DrivesResult> {
  const missing = await minioMissing();
  if (missing !== undefined) {
    console.error(`chaos: ${missing}`);
    process.exit(2);
  }
  const minio = await ErasureMinio.start(4);
  const t0 = Date.now();
  try {
    const env = await s3TargetOf(minio.config).create();
    const result = await runDrivesScenario({
      minio,
      target: env,
      tasks: Number(args.tasks),
      workers: Number(args.workers ?? 4),
      concurrency: Number(args.concurrency),
      ...workerTiming(),
      belowQuorumMs: Number(args["below-quorum-seconds"]) * 1000,
      timeoutMs: Number(args["timeout-seconds"]) * 1000,
      progress: (line) =>
        console.error(`[drives ${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`),
    });
    await env.cleanup();
    return result;
  } finally {
    await minio.stop();
  }
}

function printDrives(r: DrivesResult): void {
  const s = (ms: number | undefined) => (ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`);
  console.log(`tasks            ${r.tasks} (${r.workersStarted} worker processes)`);
  for (const step of r.steps)
    console.log(
      `  at ${s(step.atMs).padStart(7)}  ${step.step.padEnd(34)} took ${s(step.tookMs)}${step.unwritableMs === undefined ? "" : `, write quorum back after ${s(step.unwritableMs)}`}, next task done ${s(step.nextCompletionMs)} later (${step.doneBefore} done before)`,
    );
  for (const [when, seen] of Object.entries(r.doctor))
    console.log(
      `doctor           ${when}: ${seen.verdict}${seen.failed.length ? ` (failed: ${seen.failed.join(", ")})` : ""} in ${s(seen.ms)}`,
    );
  console.log(`storage errors   ${JSON.stringify(r.storageErrors)}`);
  console.log(
    `longest pauses   ${r.pauses.map((p) => `${s(p.ms)} from ${s(p.fromMs)}`).join("; ")}`,
  );
  console.log(`elapsed          ${s(r.elapsedMs)}`);
  console.log(`facts            ${JSON.stringify(r.facts)}`);
  console.log(describeReport(r.report));
  for (const p of r.problems) console.log(`  ! ${p}`);
}
