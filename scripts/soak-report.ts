/**
 * The soak run's report: a line chart of the objects (and versions) under the prefix over time
 * (docs/soak.svg) and a Markdown section for docs/benchmarks.md (docs/soak.md), from the JSON
 * that `scripts/soak.ts --json` writes.
 *
 *   npx tsx scripts/soak-report.ts soak.json [--svg docs/soak.svg] [--md docs/soak.md]
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { PlateauVerdict } from "./soak-checks.ts";

import { FAMILIES } from "./soak-observe.ts";

export { FAMILIES };

/** One sample of the soak run. */
export interface SoakSample {
  /** Seconds since the stream started. */
  elapsedS: number;
  /** Current objects under the prefix, by family, and `total`. */
  objects: Record<string, number>;
  /**
   * Versions and delete markers under the prefix; `null` on an unversioned bucket and in the
   * samples between two counts (`--versions-every`).
   */
  versions: number | null;
  /** Tasks submitted so far. */
  submitted: number;
  /** Tasks that reached a terminal state so far. */
  finished: number;
  /** Task objects oq deleted so far (pruned). */
  pruned: number;
}

/** What `scripts/soak.ts --json` writes. */
export interface SoakResult {
  /** When the stream started (ISO 8601). */
  date: string;
  /** The run's settings. */
  options: {
    minutes: number;
    workers: number;
    concurrencyPerWorker: number;
    rate: number;
    retentionSeconds: number;
    monitorRoundSeconds: number;
    /** The workers' `maxPollMs` (see the defect note in docs/soak.md). */
    maxPollMs: number;
    sampleSeconds: number;
    bucket: "versioned" | "unversioned";
  };
  samples: SoakSample[];
  submitted: number;
  submitErrors: number;
  /** Tasks by final state; pruned ones as `<status> (pruned)`. */
  finalStates: Record<string, number>;
  /** Finished tasks still stored at the end although retention + 2 rounds had passed. */
  overdue: number;
  /** Per family and `total`: did it level off. */
  plateaus: Record<string, PlateauVerdict>;
  /** The first 100 broken invariants. */
  violations: string[];
  violationCount: number;
}

const COLORS: Record<string, string> = {
  total: "#111827",
  tasks: "#2563eb",
  ready: "#16a34a",
  done: "#d97706",
  workers: "#9333ea",
  other: "#6b7280",
  versions: "#dc2626",
};

/** An axis maximum and tick step with round numbers, at most 5 ticks. */
export function niceScale(v: number): { max: number; step: number } {
  const raw = Math.max(v, 1e-9) / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  return { max: Math.ceil(v / step) * step, step };
}

/**
 * Two panels over time: current objects under the prefix (total and by family), and, on a
 * versioned bucket, versions plus delete markers against the total of current objects.
 */
export function renderSoakSvg(r: SoakResult): string {
  const W = 760;
  const H = 360;
  const panel = { w: 290, h: 220, top: 70 };
  const withVersions = r.samples.some((s) => s.versions !== null);
  const lefts = withVersions ? [70, 450] : [70];
  const endS = Math.max(1, r.samples.at(-1)?.elapsedS ?? 1);
  const o = r.options;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>oq soak run: objects under the queue's prefix over ${o.minutes} minutes with ${o.retentionSeconds} s retention</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">oq soak on MinIO (${r.date.slice(0, 10)}): ${o.workers} workers, ${o.rate} tasks/s, retention ${o.retentionSeconds} s, monitor round ${o.monitorRoundSeconds} s</text>`,
  ];
  const panelOf = (
    left: number,
    title: string,
    series: { name: string; color: string; values: (number | null)[]; dash?: string }[],
  ) => {
    const { w, h, top } = panel;
    const scale = niceScale(
      Math.max(1, ...series.flatMap((s) => s.values.filter((v) => v !== null))) * 1.1,
    );
    const x = (t: number) => left + (w * t) / endS;
    const y = (v: number) => top + h - (h * v) / scale.max;
    out.push(
      `<text x="${left + w / 2}" y="${top - 28}" text-anchor="middle" font-size="13" font-weight="600">${title}</text>`,
    );
    for (let v = 0; v <= scale.max + 1e-9; v += scale.step)
      out.push(
        `<line x1="${left}" x2="${left + w}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`,
        `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${Math.round(v).toLocaleString("en-US")}</text>`,
      );
    const minuteStep = Math.max(1, Math.ceil(endS / 60 / 10));
    for (let m = 0; m * 60 <= endS; m += minuteStep)
      out.push(
        `<text x="${x(m * 60)}" y="${top + h + 16}" text-anchor="middle" fill="#333">${m}</text>`,
      );
    out.push(
      `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + h}" stroke="#333"/>`,
      `<line x1="${left}" x2="${left + w}" y1="${top + h}" y2="${top + h}" stroke="#333"/>`,
      `<text x="${left + w / 2}" y="${top + h + 34}" text-anchor="middle" fill="#333">minutes</text>`,
    );
    series.forEach((s, si) => {
      const pts = s.values.flatMap((v, i) =>
        v === null ? [] : [`${x(r.samples[i]!.elapsedS).toFixed(1)},${y(v).toFixed(1)}`],
      );
      out.push(
        `<polyline points="${pts.join(" ")}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
      );
      const lx = left + si * 95;
      const ly = top - 10;
      out.push(
        `<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
        `<text x="${lx + 22}" y="${ly}" fill="#333">${s.name}</text>`,
      );
    });
  };
  const pick = (f: string) => r.samples.map((s) => s.objects[f] ?? 0);
  panelOf(lefts[0]!, "Current objects under the prefix", [
    { name: "all", color: COLORS.total!, values: pick("total") },
    { name: "tasks/", color: COLORS.tasks!, values: pick("tasks") },
    {
      name: "done/ + ready/",
      color: COLORS.done!,
      values: r.samples.map((s) => (s.objects.done ?? 0) + (s.objects.ready ?? 0)),
      dash: "5 3",
    },
  ]);
  if (withVersions)
    panelOf(lefts[1]!, "Versions and delete markers (versioned bucket)", [
      { name: "versions", color: COLORS.versions!, values: r.samples.map((s) => s.versions) },
      { name: "objects", color: COLORS.total!, values: pick("total") },
      {
        name: "submitted",
        color: COLORS.tasks!,
        values: r.samples.map((s) => s.submitted),
        dash: "5 3",
      },
    ]);
  out.push(
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle" fill="#777" font-size="11">Generated by scripts/soak.ts (see docs/soak.md). Versions grow until a lifecycle rule expires them (oq lifecycle --apply: days, not minutes).</text>`,
    "</svg>",
    "",
  );
  return out.join("\n");
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");

/** The Markdown section for docs/benchmarks.md (also saved as docs/soak.md). */
export function renderSoakMarkdown(r: SoakResult, svgPath: string): string {
  const o = r.options;
  const last = r.samples.at(-1);
  const ok = r.violationCount === 0 && Object.values(r.plateaus).every((p) => p.ok);
  const lines = [
    "## Soak: pruning keeps the bucket bounded",
    "",
    `Run on ${r.date.slice(0, 10)} with \`npm run soak\` (scripts/soak.ts) against MinIO, ${o.bucket} bucket: ${o.workers} workers (in one process, ${o.concurrencyPerWorker} slots each) process a steady stream of ${o.rate} tasks/s for ${o.minutes} minutes, with every terminal status's retention set to ${o.retentionSeconds} s (\`queue.setRetention\`) and the workers' \`monitorRoundSeconds\` set to ${o.monitorRoundSeconds} (the default, 600, prunes every 10 minutes) and their \`maxPollMs\` to ${o.maxPollMs} (the default is 6000). Of every 20 tasks, 17 complete, 1 fails permanently, 1 is cancelled by the submitter while pending (submitted with a 30 s delay, cancelled 2 s later) and 1 is of a type no worker runs, with a 2 s TTL, so a monitor expires it. The objects under the prefix are counted every ${o.sampleSeconds} s.`,
    "",
    `![Objects under the prefix over time](${svgPath})`,
    "",
    `**Verdict: ${ok ? "passed" : "FAILED"}.** ${int(r.submitted)} tasks submitted; at the end ${int(last?.pruned ?? 0)} had been pruned and ${int(last?.objects.total ?? 0)} objects were under the prefix${last?.versions == null ? "" : ` (${int(last.versions)} versions and delete markers)`}; ${r.overdue} finished tasks were still stored more than retention + 2 monitor rounds after they finished. Final states: ${Object.entries(
      r.finalStates,
    )
      .map(([k, v]) => `${k} ${int(v)}`)
      .join(", ")}.`,
    "",
    "| objects | second quarter's high | last half's high | limit | slope over the last half | levelled off |",
    "|---|---|---|---|---|---|",
    ...Object.entries(r.plateaus).map(
      ([f, p]) =>
        `| ${f === "total" ? "all" : `${f}/`} | ${int(p.referenceMax)} | ${int(p.lastHalfMax)} | ${int(p.limit)} | ${p.slopePerMinute.toFixed(1)}/min | ${p.ok ? "yes" : `**no**: ${p.reason}`} |`,
    ),
    "",
    "- **Levelled off** means the highest count over the last half of the run is at most the highest over its second quarter plus 10% (or plus 50 objects, whichever is more): a count that grows without bound sets new highs every quarter; one that levelled off within the first quarter stays within its jitter. The steady state is about rate × (retention + a monitor round + the journal's 5 s flush) task objects, plus their journals.",
    `- **Nothing live deleted**: every queue and worker wrote through a witness that noted each task write that landed (status, \`finishedAt\`) and when oq sent each delete of a task object. The check: no task object was deleted before it reached a terminal state, nor earlier than \`finishedAt\` + retention (1 s tolerance: journal times and the server clock are whole seconds); every task not deleted by oq is still stored; no attempt's handler ran twice. ${r.violationCount === 0 ? "No violation." : `${r.violationCount} violations, first: ${r.violations[0]}`}`,
    "- **Versions** (versioned bucket): every write of a task, every ready marker and every delete leaves a version or a delete marker, so their count grows with the number of tasks processed, not with the number stored. They are removed by the bucket's lifecycle rule (`oq lifecycle --apply`), whose shortest setting is 1 day (S3 lifecycle counts whole days, and MinIO's scanner runs it in the background), so within a 10-minute run they only grow. That is expected; what bounds them is the lifecycle rule, and `oq doctor` warns when it is missing.",
    "- **A defect this soak found, and fixed.** The first runs found quiet workers claiming nothing while their monitor's round had steps queued: a worker whose last pass claimed nothing spent each poll either on one step of its round or on listing one partition, never both, so a round with more steps than polls kept it from new work (with 5-s rounds and 6-s polls a 35-s run at 10 tasks/s started 44 tasks in its first 5 s and none after, with 277 due markers in `ready/`). Those runs lowered `maxPollMs` to 1000 to get through. A quiet worker now takes steps and listings in turn (`Poller.list`; test: `a quiet worker still lists its own partitions every other poll ...` in test/worker/poller.test.ts), and the soak runs with the default 6000.",
    "- **With worker processes, for an hour**: `npm run soak:processes -- --minutes 60 --json docs/soak-processes.json --svg docs/soak-processes.svg --md docs/soak-processes.md` (scripts/soak-processes.ts) runs the same stream through 4 worker processes, SIGKILLs one every 3 minutes and starts a new one, and checks that each process's RSS and open sockets stay flat, that the objects level off and that no task is lost; its section follows this one in docs/benchmarks.md (docs/soak-processes.md).",
    "",
  ];
  return lines.join("\n");
}

/** Write the chart and, when `mdPath` is given, the Markdown section. */
export function writeSoakReport(r: SoakResult, paths: { svgPath: string; mdPath?: string }): void {
  writeFileSync(paths.svgPath, renderSoakSvg(r));
  if (paths.mdPath !== undefined)
    writeFileSync(
      paths.mdPath,
      renderSoakMarkdown(r, relative(dirname(paths.mdPath), paths.svgPath) || paths.svgPath),
    );
  console.error(`soak: wrote ${paths.svgPath}${paths.mdPath ? ` and ${paths.mdPath}` : ""}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      svg: { type: "string", default: "docs/soak.svg" },
      md: { type: "string", default: "docs/soak.md" },
    },
  });
  const file = positionals[0];
  if (file === undefined) {
    console.error(
      "usage: tsx scripts/soak-report.ts soak.json [--svg docs/soak.svg] [--md docs/soak.md]",
    );
    process.exit(2);
  }
  writeSoakReport(JSON.parse(readFileSync(file, "utf8")) as SoakResult, {
    svgPath: values.svg,
    mdPath: values.md,
  });
}
