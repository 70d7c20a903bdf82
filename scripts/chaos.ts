/**
 * The chaos scenarios at full size (the tests run them small). Prints, per scenario: tasks,
 * faults injected by kind, tasks run more than once, tasks completed twice, losses, elapsed time,
 * and every broken invariant. Exits 1 when any invariant broke.
 *
 *   npx tsx scripts/chaos.ts --scenario faults --tasks 2000 --workers 4
 *   npx tsx scripts/chaos.ts --scenario kills --tasks 2000
 *   npx tsx scripts/chaos.ts --scenario all --tasks 2000 --json chaos.json
 *
 * Scenarios: faults (10% of storage calls fail), kills (two workers SIGKILLed at random moments,
 * three rounds), latency (p99 of 2 s), skew (worker clocks 5 minutes off both ways), hostile
 * (another client writes garbage under every prefix), network (S3 only: through a fault proxy that
 * resets, loses answers of committed writes, delays, holds connections and answers a 503 storm).
 *
 * Targets: `--target s3` (the default when OQ_TEST_S3_* is set: `bash scripts/minio.sh start &&
 * source .minio/env`), `--target file` (a temporary directory), `--target memory` (workers in
 * this process). Workers run in their own processes except on memory (`--mode inline` forces
 * in-process workers anywhere).
 */
import { parseArgs } from "node:util";
import {
  type FleetMode,
  runScenario,
  SCENARIOS,
  type ScenarioName,
  type ScenarioResult,
} from "../test/chaos/harness.ts";
import { describeReport } from "../test/chaos/invariants.ts";
import { fileTarget, memoryTarget, s3Target, type Target } from "../test/helpers/targets.ts";
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
    json: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (args.help) {
  console.log(
    "usage: tsx scripts/chaos.ts --scenario faults|kills|latency|skew|hostile|network|all [--tasks N] [--workers N] [--concurrency N] [--target s3|file|memory] [--mode process|inline] [--fault-rate R] [--rounds N] [--lease-seconds S] [--handler-ms MIN,MAX] [--timeout-seconds S] [--json FILE]",
  );
  process.exit(0);
}

const targetName = args.target ?? (s3Target ? "s3" : "file");
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
      ...(args["lease-seconds"] === undefined
        ? {}
        : { leaseSeconds: Number(args["lease-seconds"]) }),
      ...(args["handler-ms"] === undefined
        ? {}
        : { handlerMs: args["handler-ms"].split(",").map(Number) as [number, number] }),
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
  const { writeFileSync } = await import("node:fs");
  writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
}
process.exit(results.every((r) => r.ok) ? 0 : 1);
