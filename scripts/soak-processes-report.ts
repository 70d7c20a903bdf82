/**
 * The process soak's report (scripts/soak-processes.ts): a chart of every worker process's RSS
 * and open sockets and of the objects under the prefix over time, with the kills marked
 * (docs/soak-processes.svg), and a Markdown section for docs/benchmarks.md
 * (docs/soak-processes.md), from the JSON that `scripts/soak-processes.ts --json` writes.
 *
 *   npx tsx scripts/soak-processes-report.ts soak-processes.json [--svg FILE] [--md FILE]
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { PlateauVerdict } from "./soak-checks.ts";
import type { FlatVerdict } from "./soak-processes-checks.ts";
import type { Lifetime } from "./soak-processes-fleet.ts";
import { niceScale } from "./soak-report.ts";

/** What `scripts/soak-processes.ts --json` writes. */
export interface ProcessSoakResult {
  /** When the stream started (ISO 8601). */
  date: string;
  /** The run's settings (seconds unless the name says otherwise). */
  options: {
    minutes: number;
    workers: number;
    concurrencyPerWorker: number;
    rate: number;
    retentionS: number;
    roundS: number;
    maxPollMs: number;
    sampleS: number;
    killEveryS: number;
    warmupS: number;
    drainS: number;
    liveBoundS: number;
  };
  submitted: number;
  submitErrors: number;
  /** Tasks that reached the terminal status they were meant to. */
  ended: number;
  /**
   * Tasks that ended as meant by a write whose worker was killed before it read the answer
   * (the witness never saw it; the object read at the end says so), one line each. Optional:
   * reports written before it existed have none.
   */
  endedUnseen?: string[];
  /** Tasks not finished at the end but stored and young (see `checkTasksEnded`). */
  live: number;
  /** Unusual worker events by kind (lease lost, ...). */
  events: Record<string, number>;
  /** Tasks whose handler ran in more than one attempt (their worker was killed mid-run). */
  rerun: number;
  /** Worker warnings and errors logged. */
  warnings: number;
  /** Every SIGKILL: when, which worker, which pid. */
  kills: { elapsedS: number; slot: number; pid: number }[];
  /** Objects under the prefix by family (and `total`) over time. */
  samples: { elapsedS: number; objects: Record<string, number>; submitted: number }[];
  /** Every worker process lifetime with its readings and verdicts. */
  processes: (Lifetime & { rss: FlatVerdict; sockets: FlatVerdict })[];
  /** Per family and `total`: did it level off. */
  plateaus: Record<string, PlateauVerdict>;
  /** The first 100 failed checks. */
  violations: string[];
  violationCount: number;
}

const SLOT_COLORS = [
  "#2563eb",
  "#16a34a",
  "#d97706",
  "#9333ea",
  "#0891b2",
  "#be123c",
  "#4d7c0f",
  "#6b7280",
];
const KILL = "#dc2626";

type Line = { color: string; points: { elapsedS: number; value: number }[]; dash?: string };

/** One panel: axes, grid, the lines and a vertical mark at every kill. */
function panel(
  out: string[],
  box: { left: number; top: number; w: number; h: number; endS: number },
  title: string,
  lines: Line[],
  kills: readonly { elapsedS: number }[],
): void {
  const { left, top, w, h, endS } = box;
  const scale = niceScale(Math.max(1, ...lines.flatMap((l) => l.points.map((p) => p.value))) * 1.1);
  const x = (t: number) => left + (w * Math.max(0, t)) / endS;
  const y = (v: number) => top + h - (h * v) / scale.max;
  out.push(`<text x="${left}" y="${top - 8}" font-size="13" font-weight="600">${title}</text>`);
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step)
    out.push(
      `<line x1="${left}" x2="${left + w}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${Math.round(v).toLocaleString("en-US")}</text>`,
    );
  const minuteStep = Math.max(1, Math.ceil(endS / 60 / 12));
  for (let m = 0; m * 60 <= endS; m += minuteStep)
    out.push(
      `<text x="${x(m * 60)}" y="${top + h + 15}" text-anchor="middle" fill="#333">${m}</text>`,
    );
  for (const k of kills)
    out.push(
      `<line x1="${x(k.elapsedS)}" x2="${x(k.elapsedS)}" y1="${top}" y2="${top + h}" stroke="${KILL}" stroke-dasharray="3 3" stroke-width="1"/>`,
    );
  out.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + h}" stroke="#333"/>`,
    `<line x1="${left}" x2="${left + w}" y1="${top + h}" y2="${top + h}" stroke="#333"/>`,
  );
  for (const l of lines) {
    if (l.points.length === 0) continue;
    const pts = l.points.map((p) => `${x(p.elapsedS).toFixed(1)},${y(p.value).toFixed(1)}`);
    out.push(
      `<polyline points="${pts.join(" ")}" fill="none" stroke="${l.color}" stroke-width="1.5"${l.dash ? ` stroke-dasharray="${l.dash}"` : ""}/>`,
    );
  }
}

/** Three panels over time: RSS per process lifetime, sockets per lifetime, objects. */
export function renderProcessSoakSvg(r: ProcessSoakResult): string {
  const W = 900;
  const panelH = 170;
  const gap = 70;
  const top = 80;
  const H = top + 3 * panelH + 2 * gap + 60;
  const o = r.options;
  const endS = Math.max(1, r.samples.at(-1)?.elapsedS ?? o.minutes * 60);
  const box = (i: number) => ({
    left: 70,
    top: top + i * (panelH + gap),
    w: W - 100,
    h: panelH,
    endS,
  });
  const color = (slot: number) => SLOT_COLORS[slot % SLOT_COLORS.length]!;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>oq process soak: RSS and open sockets of every worker process and objects under the prefix over ${o.minutes} minutes, one worker SIGKILLed every ${o.killEveryS} s</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">oq process soak on MinIO (${r.date.slice(0, 10)}): ${o.workers} worker processes, ${o.rate} tasks/s, retention ${o.retentionS} s, SIGKILL every ${o.killEveryS} s</text>`,
  ];
  let lx = 70;
  for (let slot = 0; slot < o.workers; slot++, lx += 110)
    out.push(
      `<line x1="${lx}" x2="${lx + 18}" y1="46" y2="46" stroke="${color(slot)}" stroke-width="2"/>`,
      `<text x="${lx + 22}" y="50" fill="#333">worker ${slot}</text>`,
    );
  out.push(
    `<line x1="${lx}" x2="${lx + 18}" y1="46" y2="46" stroke="${KILL}" stroke-dasharray="3 3"/>`,
    `<text x="${lx + 22}" y="50" fill="#333">SIGKILL (and restart)</text>`,
  );
  const perProcess = (pick: (s: Lifetime["samples"][number]) => number): Line[] =>
    r.processes.map((p) => ({
      color: color(p.slot),
      points: p.samples.map((s) => ({ elapsedS: s.elapsedS, value: pick(s) })),
    }));
  panel(
    out,
    box(0),
    "RSS per worker process (MiB); each line is one process lifetime",
    perProcess((s) => s.rssKb / 1024),
    r.kills,
  );
  panel(
    out,
    box(1),
    "Open sockets per worker process",
    perProcess((s) => s.sockets),
    r.kills,
  );
  const objects = (f: string) =>
    r.samples.map((s) => ({ elapsedS: s.elapsedS, value: s.objects[f] ?? 0 }));
  panel(
    out,
    box(2),
    "Current objects under the prefix: all (black), tasks/ (blue, dashed)",
    [
      { color: "#111827", points: objects("total") },
      { color: "#2563eb", points: objects("tasks"), dash: "5 3" },
    ],
    r.kills,
  );
  out.push(
    `<text x="${W / 2}" y="${H - 28}" text-anchor="middle" fill="#333">minutes</text>`,
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle" fill="#777" font-size="11">Generated by scripts/soak-processes.ts (see docs/soak.md). RSS and sockets read from /proc every ${o.sampleS} s.</text>`,
    "</svg>",
    "",
  );
  return out.join("\n");
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");
const mib = (kb: number | undefined) => (kb === undefined ? "-" : (kb / 1024).toFixed(1));
const minutes = (s: number | undefined) => (s === undefined ? "-" : (s / 60).toFixed(1));

/** One table row per process lifetime. */
function lifetimeRows(r: ProcessSoakResult): string[] {
  return r.processes.map((p) => {
    const rss = p.rss.judged
      ? `${mib(p.rss.reference)} → ${mib(p.rss.late)} (limit ${mib(p.rss.limit)}, ${(p.rss.slopePerMinute / 1024).toFixed(2)}/min)`
      : "too short to judge";
    const sockets = p.sockets.judged
      ? `${p.sockets.reference} → ${p.sockets.late} (limit ${p.sockets.limit})`
      : "-";
    const maxSockets = Math.max(0, ...p.samples.map((s) => s.sockets));
    const verdict = !p.rss.ok || !p.sockets.ok ? "**no**" : p.rss.judged ? "yes" : "-";
    return `| ${p.slot} | ${p.pid} | ${minutes(p.spawnedS)}–${minutes(p.endedS)} | ${p.end ?? "-"} | ${mib(p.samples[0]?.rssKb)} | ${mib(p.samples.at(-1)?.rssKb)} | ${rss} | ${maxSockets} | ${sockets} | ${verdict} |`;
  });
}

/** The Markdown section for docs/benchmarks.md; `svgPath` relative to where it is included. */
export function renderProcessSoakMarkdown(r: ProcessSoakResult, svgPath: string): string {
  const o = r.options;
  const totals = r.samples.map((s) => s.objects.total ?? 0);
  const total = r.plateaus.total;
  const judged = r.processes.filter((p) => p.rss.judged);
  const endS = r.samples.at(-1)?.elapsedS ?? 0;
  const late = r.samples
    .filter((s) => s.elapsedS >= endS / 2)
    .map((s) => s.objects.total ?? 0)
    .sort((a, b) => a - b);
  const lateMedian = late[late.length >> 1] ?? 0;
  return [
    "## Soak with worker processes: memory, sockets, objects and tasks through SIGKILLs",
    "",
    `Run on ${r.date.slice(0, 10)} with \`npm run soak:processes -- --minutes ${o.minutes}\` (scripts/soak-processes.ts) against MinIO (versioned bucket): ${o.workers} worker processes (${o.concurrencyPerWorker} slots each) run a steady stream of ${o.rate} tasks/s submitted from the parent for ${o.minutes} minutes (the task mix of docs/soak.md: 17 of 20 complete, 1 fails, 1 is cancelled, 1 expires), retention ${o.retentionS} s for every terminal status, monitor round ${o.roundS} s. Every ${o.killEveryS} s one worker process, picked at random, gets SIGKILL and a new process takes its place. Every ${o.sampleS} s the parent reads each worker process's RSS (\`VmRSS\` of /proc/PID/status) and open sockets (/proc/PID/fd entries that are \`socket:[...]\`), and counts the objects under the prefix.`,
    "",
    `![RSS and sockets per worker process, objects under the prefix](${svgPath})`,
    "",
    `**Verdict: ${r.violationCount === 0 ? "passed" : `FAILED (${r.violationCount} checks)`}.** ${int(r.submitted)} tasks submitted (${r.submitErrors} submit errors), ${int(r.ended)} reached the terminal status they were meant to, ${r.live} still live at the end, **${r.submitted - r.submitErrors - r.ended - r.live} lost, stuck or ended otherwise**${r.endedUnseen?.length ? ` (${r.endedUnseen.length} of those that ended as meant did so by a write whose worker was killed before it read the answer: the witness never saw it; their objects say so at the end)` : ""}; ${r.kills.length} SIGKILLs, ${r.rerun} tasks run again after their worker was killed (a new attempt once its lease expired); ${r.processes.length} worker processes in all, ${judged.length} lived long enough to judge. Objects under the prefix: at most ${int(Math.max(0, ...totals))}, ${int(totals.at(-1) ?? 0)} at the end (second quarter's high ${int(total?.referenceMax ?? 0)}, last half's high ${int(total?.lastHalfMax ?? 0)}: ${total?.ok ? "levelled off" : "NOT levelled off"}). Unusual worker events: ${
      Object.keys(r.events).length === 0
        ? "none"
        : Object.entries(r.events)
            .map(([k, n]) => `${k} ${n}`)
            .join(", ")
    }.`,
    ...(r.violationCount === 0
      ? []
      : ["", "Failed checks (first 20):", "", ...r.violations.slice(0, 20).map((v) => `- ${v}`)]),
    "",
    "| worker | pid | lived (min) | ended | RSS first (MiB) | RSS last (MiB) | RSS median, second → last third (MiB) | max sockets | sockets high, first → last third | flat |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...lifetimeRows(r),
    "",
    `- **RSS flat**: leaving out each process's first ${o.warmupS} s (start-up), its judged lifetime is split in thirds by sample; the median RSS of the last third may exceed the median of the second third by at most 10% or 10 MiB, whichever is more. A leak raises the median third by third; a settled heap stays within its GC jitter. A process needs 3 samples in each third to be judged (about ${Math.ceil((o.warmupS + 9 * o.sampleS) / 60)} minutes); a killed process is judged as its own lifetime.`,
    "- **Sockets flat**: over the same window, the most sockets open in the last third is at most the most in the first third plus 8 (a burst of requests in flight opens a few more connections for a moment; a leak adds one or more per task).",
    `- **No task lost**: each worker process writes through the soak's witness and prints every task write that landed and every delete (scripts/soak-worker.ts); every submitted task must have reached the status it was meant to (whether pruned since or not), or be stored and submitted less than ${o.liveBoundS} s before the end. The workers get up to ${o.drainS} s after the stream to finish (a task whose worker was killed waits for its lease to expire). The deletes are checked as in docs/soak.md: nothing deleted before it finished or before its retention passed, no attempt run twice.`,
    `- **Objects bounded**: as in docs/soak.md, the highest count over the last half of the run is at most the highest over the second quarter plus 10% (or plus 50). \`workers/\` grows by one per kill (${r.samples.at(-1)?.objects.workers ?? 0} at the end): a killed worker cannot delete its heartbeat, and the live workers delete a heartbeat only once it is a day old (src/worker/gone-workers.ts), so it is bounded by the kills of a day, not by the tasks.`,
    `- **Bumps after a kill**: over the last half of the run the object count's median was ${int(lateMedian)} and its high ${int(total?.lastHalfMax ?? 0)}. The bumps follow some of the kills: each worker prunes the finished-journal partitions in its share, and the share of a SIGKILLed worker waits until the others see its heartbeat go stale (older than 3 × \`heartbeatSeconds\`, 3 minutes by default: src/worker/peers.ts) and split the shares again; meanwhile finished tasks of that share wait past their retention, then go within a round or two. A worker stopped gracefully deletes its heartbeat, so its share moves at once.`,
    "",
  ].join("\n");
}

/** Write the SVG and, when `mdPath` is given, the Markdown section. */
export function writeProcessSoakReport(
  r: ProcessSoakResult,
  paths: { svgPath: string; mdPath?: string },
): void {
  writeFileSync(paths.svgPath, renderProcessSoakSvg(r));
  if (paths.mdPath !== undefined)
    writeFileSync(
      paths.mdPath,
      renderProcessSoakMarkdown(r, relative(dirname(paths.mdPath), paths.svgPath)),
    );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      svg: { type: "string", default: "docs/soak-processes.svg" },
      md: { type: "string", default: "docs/soak-processes.md" },
    },
  });
  const file = positionals[0];
  if (file === undefined) {
    console.error(
      "usage: tsx scripts/soak-processes-report.ts soak-processes.json [--svg FILE] [--md FILE]",
    );
    process.exit(2);
  }
  writeProcessSoakReport(JSON.parse(readFileSync(file, "utf8")) as ProcessSoakResult, {
    svgPath: values.svg,
    mdPath: values.md,
  });
}
