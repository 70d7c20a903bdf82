/**
 * Renders the results table of docs/scale.md from the JSON of one or two runs of
 * `scripts/simulate.ts --out` (today's layout, and the new one once it is measured):
 *
 *   npx tsx scripts/sim/table.ts docs/scale-today.json [docs/scale-new.json] [--write docs/scale.md]
 *
 * With `--write`, the text between `<!-- scale-table -->` and `<!-- /scale-table -->` in that
 * file is replaced; otherwise the table is printed.
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { PartitionRow, SimResult } from "./report.ts";
import { AWS_LIMITS } from "./s3-sim.ts";

const START = "<!-- scale-table -->";
const END = "<!-- /scale-table -->";

const int = (n: number) => Math.round(n).toLocaleString("en-US");
const pct = (share: number) => `${(share * 100).toFixed(1)}%`;
const usd = (n: number) => `$${n.toLocaleString("en-US", { maximumFractionDigits: 2 })}`;

function busiest(rows: PartitionRow[], by: "read" | "write", limit: number): string {
  const top = [...rows].sort((a, b) =>
    by === "read" ? b.peakRead - a.peakRead : b.peakWrite - a.peakWrite,
  )[0];
  if (top === undefined) return "–";
  const peak = by === "read" ? top.peakRead : top.peakWrite;
  return `${int(peak)} of ${int(limit)} (${pct(peak / limit)}) \`${top.partition}\``;
}

/** The full size of issue 10: a model run of N workers is the full size divided by 1,000 / N. */
const FULL_WORKERS = 1000;

/**
 * The busiest partition's peak as a share of AWS's own limit at the full size: the model divides
 * every size by one factor, so a fleet-wide partition's rate scales back up by it (valid while
 * the run was not throttled into a different shape: see its SlowDown count).
 */
function atFullSize(r: SimResult): string {
  const factor = FULL_WORKERS / r.config.workers;
  const share = (p: PartitionRow) =>
    Math.max((p.peakRead * factor) / AWS_LIMITS.read, (p.peakWrite * factor) / AWS_LIMITS.write);
  const top = [...r.busy.partitions].sort((a, b) => share(b) - share(a))[0];
  if (top === undefined) return "–";
  const read =
    (top.peakRead * factor) / AWS_LIMITS.read >= (top.peakWrite * factor) / AWS_LIMITS.write;
  const peak = (read ? top.peakRead : top.peakWrite) * factor;
  return `${pct(share(top))}: ${int(peak)} ${read ? "reads" : "writes"}/s of ${int(read ? AWS_LIMITS.read : AWS_LIMITS.write)} \`${top.partition}\` (× ${factor})`;
}

/** Shards set for the run, or "1 per type". */
function shardsOf(r: SimResult): string {
  const set = Object.entries(r.config.shards ?? {});
  return set.length === 0
    ? "1 shard per type"
    : `${set.map(([t, n]) => `${t} ${n}`).join(", ")} shards, others 1`;
}

/** The rows of the side-by-side table: a label and how to read it from a result. */
const ROWS: [string, (r: SimResult) => string][] = [
  [
    "run",
    (r) =>
      `${int(r.config.workers)} workers, backlog ${int(r.config.backlog)}, ${r.config.rate}/s for ${r.config.minutes} min, ${r.kills} killed; ${shardsOf(r)}`,
  ],
  [
    "limits per partition in the run (reads, writes /s)",
    (r) => `${int(r.limits.read)}, ${int(r.limits.write)}`,
  ],
  [
    "all tasks done after",
    (r) =>
      `${int(r.busy.drainedSeconds)} s: ${int(r.busy.tasksDone)} tasks, ${r.busy.tasksPerSecond}/s`,
  ],
  ["busiest partition, peak reads/s", (r) => busiest(r.busy.partitions, "read", r.limits.read)],
  ["busiest partition, peak writes/s", (r) => busiest(r.busy.partitions, "write", r.limits.write)],
  ["busiest partition at full size, share of AWS's limit", atFullSize],
  [
    "partitions refused (SlowDown) / answers",
    (r) =>
      `${r.busy.partitions.filter((p) => p.slowDown > 0).length} / ${int(r.busy.slowDown + r.idle.slowDown)}`,
  ],
  [
    "requests per task",
    (r) =>
      `${r.busy.requestsPerTask} (GET ${(r.busy.requests.GET / r.busy.tasksDone).toFixed(2)}, PUT ${(r.busy.requests.PUT / r.busy.tasksDone).toFixed(2)}, LIST ${(r.busy.requests.LIST / r.busy.tasksDone).toFixed(2)}, POST ${(r.busy.requests.POST / r.busy.tasksDone).toFixed(3)})`,
  ],
  ["dollars per million tasks", (r) => usd(r.busy.dollarsPerMillionTasks)],
  ["dollars a day at 10 million tasks a day", (r) => usd(r.busy.dollarsPerDayAt10MTasks)],
  ["task GETs that won nothing, per task", (r) => String(r.busy.wastedTaskGetsPerTask)],
  [
    "412 answers (per task)",
    (r) => `${int(r.busy.conflicts.preconditionFailed)} (${r.busy.preconditionFailedPerTask})`,
  ],
  ["idle: requests per worker-minute", (r) => String(r.idle.requestsPerWorkerMinute)],
  ["idle: dollars per worker-month", (r) => usd(r.idle.dollarsPerWorkerMonth)],
  [
    "idle fleet: dollars a month",
    (r) => `${usd(r.idle.dollarsPerFleetMonth)} (${int(r.idle.workers)} workers)`,
  ],
  ["lost / doubled tasks", (r) => `${r.verification.lost} / ${r.verification.doubled}`],
  ["re-run after their worker was killed", (r) => String(r.verification.rerunAfterKill)],
  ["wall time of the run", (r) => `${int(r.wallSeconds)} s`],
];

/** When a peak happened (seconds into the busy phase), where the result says. */
const at = (second: number | undefined) => (second === undefined ? "" : ` at ${second} s`);

function partitions(r: SimResult): string[] {
  const out = [
    "| partition | peak reads/s | mean | peak writes/s | mean | SlowDown |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const p of r.busy.partitions.slice(0, 6)) {
    out.push(
      `| \`${p.partition}\` | ${int(p.peakRead)} (${pct(p.peakReadShare)})${at(p.peakReadAt)} | ${p.meanRead} | ${int(p.peakWrite)} (${pct(p.peakWriteShare)})${at(p.peakWriteAt)} | ${p.meanWrite} | ${int(p.slowDown)} |`,
    );
  }
  if (r.busy.partitions.length > 6) {
    out.push(`| … ${r.busy.partitions.length - 6} more, each lighter | | | | | |`);
  }
  return out;
}

/** The Markdown of the table for `today` and (when measured) `next`. */
export function renderTable(today: SimResult, next?: SimResult): string {
  const out = [
    "| | today's layout (`ready/{time}/…`) | new layout (`ready/{type}/{shard}/…`) |",
    "| --- | --- | --- |",
  ];
  for (const [label, cell] of ROWS) {
    out.push(
      `| ${label} | ${cell(today)} | ${next === undefined ? "(not measured yet)" : cell(next)} |`,
    );
  }
  out.push("", `Busiest partitions while busy, today's layout (\`${today.command}\`):`, "");
  out.push(...partitions(today));
  if (next !== undefined) {
    out.push("", `Busiest partitions while busy, new layout (\`${next.command}\`):`, "");
    out.push(...partitions(next));
  }
  return out.join("\n");
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { write: { type: "string" } },
});
if (positionals.length < 1 || positionals.length > 2) {
  console.error(
    "usage: npx tsx scripts/sim/table.ts today.json [new.json] [--write docs/scale.md]",
  );
  process.exit(2);
}
const [today, next] = positionals.map((p) => JSON.parse(readFileSync(p, "utf8")) as SimResult);
const table = renderTable(today!, next);
if (values.write === undefined) console.log(table);
else {
  const doc = readFileSync(values.write, "utf8");
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a === -1 || b < a) {
    console.error(`${values.write}: no ${START} … ${END} section to replace`);
    process.exit(1);
  }
  writeFileSync(values.write, `${doc.slice(0, a + START.length)}\n${table}\n${doc.slice(b)}`);
  console.log(`table written to ${values.write}`);
}
