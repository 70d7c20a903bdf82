/**
 * The `memory` section of the benchmark (`scripts/bench.ts --only memory`): the resident memory of
 * the compiled `oq worker` (`node dist/cli.js worker`, built as the `start` section builds it)
 * on the S3 driver, as a user runs it. Its RSS is read from outside, `/proc/{pid}/status`
 * (`VmRSS`, and `VmHWM`, the kernel's high-water mark) every 100 ms, so nothing in the worker
 * changes what is measured:
 *
 * - **start**: the high-water mark once the worker's first heartbeat is stored;
 * - **idle**: for `idleSeconds` after that, with nothing to do (peak and median);
 * - **busy**: while `tasks` no-op tasks, submitted at once, drain through its `concurrency`
 *   slots (peak and median).
 *
 * scripts/bench-report.ts renders it with {@link renderMemory}.
 *
 * @module
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { Queue } from "../src/queue/queue.ts";
import type { Storage } from "../src/storage/storage.ts";
import { sleep } from "../src/util/async.ts";
import { buildCli, cliPath, cliWorkerEnv } from "./bench-start.ts";

/** Issue 15's ceilings for the compiled worker, MB. */
export const MEMORY_GOALS = { idleRssMb: 60, busyRssMb: 120 } as const;

/** What the section needs from the benchmark runner (as the `start` section). */
export interface MemoryBenchContext {
  root: string;
  s3: () => Storage;
  provenPrefix: (name: string) => Promise<string>;
  env: Record<string, string | undefined>;
}

/** The section's result. */
export interface MemoryResult {
  /** What ran: the compiled CLI on Node (older runs measured a tsx-run `Worker` instead). */
  how: "compiled oq worker";
  node: string;
  concurrency: number;
  /** `VmHWM` once the first heartbeat was stored: the start-up peak. */
  start: { seconds: number; peakRssMb: number };
  idle: { seconds: number; peakRssMb: number; medianRssMb: number };
  busy: { tasks: number; seconds: number; peakRssMb: number; medianRssMb: number };
  /** `VmHWM` at the end: the highest RSS of the whole life. */
  highWaterRssMb: number;
}

/** The memory result of runs before the compiled worker was measured (a tsx-run `Worker`). */
export interface TsxMemoryResult {
  concurrency: number;
  idle: { seconds: number; peakRssMb: number; peakHeapUsedMb: number };
  busy: { tasks: number; seconds: number; peakRssMb: number; peakHeapUsedMb: number };
}

/** The tasks module the worker loads: a no-op `noop` that says when the last task ran. */
const TASKS_MODULE = `let ran = 0;
const total = Number(process.env.OQ_BENCH_TASKS);
export default {
  noop() {
    if (++ran === total) process.stdout.write("oq-bench-done\\n");
    return null;
  },
};
`;

const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** `VmRSS` and `VmHWM` of process `pid`, kB (`ps` where there is no /proc: no high-water mark). */
function rssOf(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
    return { rss: field("VmRSS"), hwm: field("VmHWM") };
  } catch {
    const rss = Number(execFileSync("ps", ["-o", "rss=", "-p", String(pid)], { encoding: "utf8" }));
    return { rss, hwm: rss };
  }
}

/** Run the section: build the CLI, start one worker, sample it idle, then busy. */
export async function memoryBench(
  ctx: MemoryBenchContext,
  options: { tasks: number; idleSeconds: number; concurrency: number },
): Promise<MemoryResult> {
  buildCli(ctx.root);
  const dir = mkdtempSync(join(os.tmpdir(), "oq-bench-memory-"));
  writeFileSync(join(dir, "tasks.mjs"), TASKS_MODULE);
  const prefix = await ctx.provenPrefix("memory");
  const queue = new Queue({ storage: ctx.s3(), prefix });
  const spawnedAt = performance.now();
  const child = spawn(
    process.execPath,
    [
      cliPath(ctx.root),
      "worker",
      join(dir, "tasks.mjs"),
      "--concurrency",
      String(options.concurrency),
      "--summary-interval",
      "0",
    ],
    {
      cwd: dir,
      env: { ...cliWorkerEnv(ctx.env, prefix), OQ_BENCH_TASKS: String(options.tasks) },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  let finished = false;
  child.stdout!.on("data", (d: Buffer) => {
    if (d.toString().includes("oq-bench-done")) finished = true;
  });
  const samples: number[] = [];
  let hwm = 0;
  const sampler = setInterval(() => {
    if (child.exitCode !== null) return;
    const now = rssOf(child.pid!);
    samples.push(now.rss);
    hwm = Math.max(hwm, now.hwm);
  }, 100);
  const alive = () => {
    if (child.exitCode !== null) throw new Error(`oq worker exited early: ${stderr.trim()}`);
  };
  try {
    // Started once its first heartbeat is stored (written right after it starts polling).
    while ((await queue.stats()).workers.length === 0) {
      alive();
      if (performance.now() - spawnedAt > 30_000) throw new Error("no heartbeat within 30 s");
      await sleep(100);
    }
    const startSeconds = (performance.now() - spawnedAt) / 1000;
    const startPeak = rssOf(child.pid!).hwm;
    const idleFrom = samples.length;
    await sleep(options.idleSeconds * 1000);
    const idle = samples.slice(idleFrom);
    const busyFrom = samples.length;
    const busyStart = performance.now();
    await queue.submitMany(
      Array.from({ length: options.tasks }, (_, i) => ({
        type: "noop",
        input: { i, pad: "x".repeat(100) },
      })),
    );
    while (!finished && performance.now() - busyStart < 30 * 60_000) {
      alive();
      await sleep(100);
    }
    const busySeconds = (performance.now() - busyStart) / 1000;
    const busy = samples.slice(busyFrom);
    return {
      how: "compiled oq worker",
      node: process.version,
      concurrency: options.concurrency,
      start: { seconds: Math.round(startSeconds * 10) / 10, peakRssMb: mb(startPeak) },
      idle: {
        seconds: options.idleSeconds,
        peakRssMb: mb(Math.max(...idle)),
        medianRssMb: mb(median(idle)),
      },
      busy: {
        tasks: options.tasks,
        seconds: Math.round(busySeconds * 10) / 10,
        peakRssMb: mb(Math.max(...busy)),
        medianRssMb: mb(median(busy)),
      },
      highWaterRssMb: mb(Math.max(hwm, rssOf(child.pid!).hwm)),
    };
  } finally {
    clearInterval(sampler);
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether `value` is within `goal`, in words for the table. */
const verdict = (value: number, goal: number) =>
  value <= goal ? `≤ ${goal} MB: met` : `≤ ${goal} MB: **missed**`;

/**
 * The section "Memory of a worker process", with the previous run's figures as "(was …)" (runs
 * before the compiled worker was measured are marked as measured through tsx).
 */
export function renderMemory(
  run: MemoryResult | TsxMemoryResult | undefined,
  previous: MemoryResult | TsxMemoryResult | undefined,
  was: (text: string, previous: string | undefined) => string,
): string[] {
  if (run === undefined) return [];
  const mbText = (n: number | undefined, tsx = false) =>
    n === undefined ? undefined : `${n.toLocaleString("en-US")} MB${tsx ? " through tsx" : ""}`;
  if (!("how" in run)) {
    return [
      "## Memory of a worker process",
      "",
      `A \`Worker\` (${run.concurrency} slots) run through tsx in its own process on the S3 driver, \`process.memoryUsage()\` sampled every 100 ms.`,
      "",
      "| phase | peak RSS | peak heap used |",
      "|---|---:|---:|",
      `| idle, ${run.idle.seconds} s | ${was(mbText(run.idle.peakRssMb)!, mbText(previous?.idle.peakRssMb))} | ${mbText(run.idle.peakHeapUsedMb)} |`,
      `| busy, ${run.busy.tasks} tasks | ${was(mbText(run.busy.peakRssMb)!, mbText(previous?.busy.peakRssMb))} | ${mbText(run.busy.peakHeapUsedMb)} |`,
      "",
    ];
  }
  const p = previous;
  const compiled = p !== undefined && "how" in p ? p : undefined;
  const tsx = p !== undefined && !("how" in p);
  return [
    "## Memory of a worker process",
    "",
    `The compiled \`oq worker\` (\`node dist/cli.js worker\`, Node ${run.node}, S3 driver, ${run.concurrency} slots), its RSS read from \`/proc/{pid}/status\` every 100 ms: at start (the kernel's high-water mark once its first heartbeat was stored, ${run.start.seconds} s after spawn), idle for ${run.idle.seconds} s after that, then busy while ${run.busy.tasks.toLocaleString("en-US")} no-op tasks submitted at once drain (${was(`${run.busy.seconds} s`, compiled === undefined ? undefined : `${compiled.busy.seconds} s`)}). The goals are issue 15's.${tsx ? ' The previous run measured a `Worker` run through tsx instead ("through tsx"): not the same process, shown for the record.' : ""}`,
    "",
    "| phase | peak RSS | median RSS | goal |",
    "|---|---:|---:|---|",
    `| start | ${was(mbText(run.start.peakRssMb)!, mbText(compiled?.start.peakRssMb))} | – | – |`,
    `| idle, ${run.idle.seconds} s | ${was(mbText(run.idle.peakRssMb)!, mbText(p?.idle.peakRssMb, tsx))} | ${was(mbText(run.idle.medianRssMb)!, mbText(compiled?.idle.medianRssMb))} | ${verdict(run.idle.peakRssMb, MEMORY_GOALS.idleRssMb)} |`,
    `| busy, ${run.concurrency} slots | ${was(mbText(run.busy.peakRssMb)!, mbText(p?.busy.peakRssMb, tsx))} | ${was(mbText(run.busy.medianRssMb)!, mbText(compiled?.busy.medianRssMb))} | ${verdict(run.busy.peakRssMb, MEMORY_GOALS.busyRssMb)} |`,
    "",
    `Highest RSS over the whole life (\`VmHWM\`): ${was(mbText(run.highWaterRssMb)!, mbText(compiled?.highWaterRssMb))}.`,
    "",
  ];
}
