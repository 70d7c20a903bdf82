/**
 * The process soak: a steady stream of tasks for an hour through worker PROCESSES, one of them
 * SIGKILLed and restarted every few minutes, with a short retention. It shows that the memory
 * and open sockets of every worker process stay flat, that the objects under the prefix stop
 * growing, and that no task is lost. Exits 1 when a check fails (scripts/soak-processes-checks.ts
 * and scripts/soak-checks.ts say exactly what each means), printing what failed.
 *
 *   npx tsx scripts/soak-processes.ts --minutes 60 --json soak-processes.json \
 *     --svg docs/soak-processes.svg --md docs/soak-processes.md
 *
 * The stream and the handler are the in-process soak's (scripts/soak-stream.ts), submitted from
 * this process; `--workers` processes (scripts/soak-worker.ts, 4 slots each) run it. Every
 * `--kill-every` seconds one worker, picked at random, gets SIGKILL and a successor is started.
 * Every `--sample` seconds each worker process's RSS and open sockets are read from /proc, and
 * the objects under the prefix counted by family. After the stream the workers get up to
 * `--drain` seconds to finish what is left, then SIGTERM.
 *
 * Needs OQ_TEST_S3_* (`source .minio/env`) and Linux (/proc). The prefix is removed afterwards
 * unless `--keep`.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { requireSafeBackend } from "../src/doctor/mod.ts";
import type { FinishedStatus } from "../src/keys.ts";
import { Queue } from "../src/queue/queue.ts";
import { MARKER_GRACE_MS } from "../src/queue/ready-index.ts";
import { FINISHED_STATUSES } from "../src/queue/retention.ts";
import { removePrefix, s3Config, testS3Storage } from "../test/helpers/targets.ts";
import { checkFates, checkPlateau, checkPruned } from "./soak-checks.ts";
import {
  applyNoteLine,
  countObjects,
  FAMILIES,
  type Ledger,
  ledgerNotes,
  observeTasks,
  readUnfinished,
  storedTaskIds,
} from "./soak-observe.ts";
import {
  checkRssFlat,
  checkSocketsFlat,
  checkTasksEnded,
  type ExpectedTask,
} from "./soak-processes-checks.ts";
import { type Lifetime, SoakFleet } from "./soak-processes-fleet.ts";
import { type ProcessSoakResult, writeProcessSoakReport } from "./soak-processes-report.ts";
import { EXPECTED_STATUS, SoakStream } from "./soak-stream.ts";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "60" },
    workers: { type: "string", default: "4" },
    rate: { type: "string", default: "10" },
    retention: { type: "string", default: "60" },
    round: { type: "string", default: "15" },
    "max-poll-ms": { type: "string", default: "6000" },
    sample: { type: "string", default: "10" },
    "kill-every": { type: "string", default: "180" },
    warmup: { type: "string", default: "120" },
    drain: { type: "string", default: "120" },
    "live-bound": { type: "string", default: "300" },
    json: { type: "string" },
    svg: { type: "string" },
    md: { type: "string" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (args.help) {
  console.log(
    "usage: tsx scripts/soak-processes.ts [--minutes 60] [--workers 4] [--rate 10] [--retention 60] [--round 15] [--max-poll-ms 6000] [--sample 10] [--kill-every 180] [--warmup 120] [--drain 120] [--live-bound 300] [--json FILE] [--svg docs/soak-processes.svg --md docs/soak-processes.md] [--keep]",
  );
  process.exit(0);
}
const number = (name: keyof typeof args) => {
  const n = Number(args[name]);
  if (!(n > 0)) {
    console.error(`soak: --${name} must be a positive number, not ${args[name]}`);
    process.exit(2);
  }
  return n;
};
const o = {
  minutes: number("minutes"),
  workers: Math.round(number("workers")),
  rate: number("rate"),
  retentionS: number("retention"),
  roundS: number("round"),
  maxPollMs: number("max-poll-ms"),
  sampleS: number("sample"),
  killEveryS: number("kill-every"),
  warmupS: number("warmup"),
  drainS: number("drain"),
  liveBoundS: number("live-bound"),
};
if (s3Config === undefined) {
  console.error(
    "soak: OQ_TEST_S3_* is not set. Start MinIO first: bash scripts/minio.sh start && source .minio/env",
  );
  process.exit(2);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bucket = s3Config.bucket;
const prefix = `soak-processes-${Date.now().toString(36)}/`;
const raw = testS3Storage(bucket);
const ledger: Ledger = new Map();
const notes = ledgerNotes(ledger);
const queue = new Queue({ storage: observeTasks(raw, `${prefix}tasks/`, notes), prefix });
const expected: ExpectedTask[] = [];
const stream = new SoakStream(queue, (t) =>
  expected.push({ id: t.id, expected: EXPECTED_STATUS[t.kind], submittedMs: t.atMs }),
);

/** Worker events other than the usual outcomes, by kind; worker warnings, the first printed. */
const events: Record<string, number> = {};
let warnings = 0;
/** Apply one line a worker printed (scripts/soak-worker.ts). */
function onLine(lifetime: Lifetime, tag: string, rest: string): void {
  if (applyNoteLine(tag, rest, notes, ledger)) return;
  const who = `worker ${lifetime.slot} (pid ${lifetime.pid})`;
  if (tag === "event") {
    const kind = rest.split(" ")[0] ?? "";
    events[kind] = (events[kind] ?? 0) + 1;
    console.error(`soak: ${who} event ${rest}`);
  } else if (tag === "warn" && ++warnings <= 20) console.error(`soak: ${who} warning: ${rest}`);
}

await requireSafeBackend(queue);
await queue.setRetention(
  Object.fromEntries(FINISHED_STATUSES.map((s) => [s, o.retentionS])) as Record<
    FinishedStatus,
    number
  >,
);
let startMs = Date.now();
const fleet = new SoakFleet({
  env: {
    ...process.env,
    SOAK_WORKER: JSON.stringify({
      prefix,
      bucket,
      monitorRoundSeconds: o.roundS,
      maxPollMs: o.maxPollMs,
    }),
  },
  startMs: () => startMs,
  onLine,
});
await Promise.all(Array.from({ length: o.workers }, (_, slot) => fleet.spawn(slot)));
startMs = Date.now();
for (const l of fleet.lifetimes) l.spawnedS = 0;
const endMs = startMs + o.minutes * 60_000;
console.error(
  `soak: ${o.minutes} min, ${o.workers} worker processes (4 slots each), ${o.rate} tasks/s, a SIGKILL every ${o.killEveryS} s, retention ${o.retentionS} s, monitor round ${o.roundS} s, sample every ${o.sampleS} s, bucket ${bucket}, prefix ${prefix}`,
);

const samples: ProcessSoakResult["samples"] = [];
const kills: ProcessSoakResult["kills"] = [];
const elapsed = () => Math.round((Date.now() - startMs) / 1000);

async function sampleLoop(): Promise<void> {
  for (let next = startMs; next <= endMs; next += o.sampleS * 1000) {
    await sleep(Math.max(0, next - Date.now()));
    const elapsedS = elapsed();
    await fleet.sample(elapsedS);
    const objects = await countObjects(raw, prefix);
    samples.push({ elapsedS, objects, submitted: stream.submitted });
    const procs = fleet.lifetimes
      .filter((l) => l.endedS === undefined && l.samples.at(-1)?.elapsedS === elapsedS)
      .map(
        (l) =>
          `${l.slot}:${Math.round(l.samples.at(-1)!.rssKb / 1024)}MiB/${l.samples.at(-1)!.sockets}s`,
      );
    console.error(
      `soak: ${elapsedS}s objects ${objects.total} (${FAMILIES.map((f) => `${f} ${objects[f]}`).join(", ")}); submitted ${stream.submitted}; workers ${procs.join(" ")}`,
    );
  }
}

async function killLoop(): Promise<void> {
  for (let at = startMs + o.killEveryS * 1000; at < endMs; at += o.killEveryS * 1000) {
    await sleep(Math.max(0, at - Date.now()));
    const slot = Math.floor(Math.random() * o.workers);
    const elapsedS = elapsed();
    const successor = await fleet.killAndRestart(slot);
    kills.push({
      elapsedS,
      slot,
      pid: fleet.lifetimes.findLast((l) => l.slot === slot && l !== successor)!.pid,
    });
    console.error(`soak: ${elapsedS}s SIGKILLed worker ${slot}; successor pid ${successor.pid}`);
  }
}

const sampler = sampleLoop();
const killer = killLoop();
for (let second = startMs; second < endMs; second += 1000) {
  await sleep(Math.max(0, second - Date.now()));
  await stream.submitSecond(Math.round(o.rate));
}
await stream.cancelDue(Number.POSITIVE_INFINITY);
await Promise.all([sampler, killer]);
const drainUntil = Date.now() + o.drainS * 1000;
while (Date.now() < drainUntil && expected.some((t) => ledger.get(t.id)?.finished === undefined))
  await sleep(1000);
await fleet.stopAll();
const doneMs = Date.now();

const present = await storedTaskIds(raw, prefix);
for (const fate of ledger.values()) fate.presentAtEnd = present.has(fate.id);
await readUnfinished(raw, prefix, ledger.values(), (id) => queue.keys.task(id));
const retentionMs = Object.fromEntries(
  FINISHED_STATUSES.map((s) => [s, o.retentionS * 1000]),
) as Record<FinishedStatus, number>;
const violations = checkFates(ledger.values(), { retentionMs, toleranceMs: 1000 });
const endings = checkTasksEnded(expected, ledger, {
  endMs: doneMs,
  liveBoundMs: o.liveBoundS * 1000,
});
violations.push(...endings.violations);
violations.push(
  ...checkPruned(ledger.values(), {
    endMs: doneMs,
    retentionMs,
    lateMs: 2 * MARKER_GRACE_MS + 4 * o.roundS * 1000 + 60_000,
  }),
);
const flat = { warmupS: o.warmupS };
const processes = fleet.lifetimes.map((l) => ({
  ...l,
  rss: checkRssFlat(l.samples, l.spawnedS, flat),
  sockets: checkSocketsFlat(l.samples, l.spawnedS, flat),
}));
if (!processes.some((p) => p.rss.judged))
  violations.push(
    `no worker process lived long enough to judge its RSS (warm-up ${o.warmupS} s + 9 samples)`,
  );
for (const p of processes)
  for (const v of [p.rss, p.sockets])
    if (!v.ok) violations.push(`worker ${p.slot} (pid ${p.pid}): ${v.reason}`);
for (const crash of fleet.crashes) violations.push(`crash: ${crash}`);
const series = (f: string) =>
  samples.map((s) => ({ elapsedS: s.elapsedS, value: s.objects[f] ?? 0 }));
const plateaus = Object.fromEntries(
  [...FAMILIES, "total"].map((f) => [f, checkPlateau(series(f))]),
);
for (const [family, v] of Object.entries(plateaus))
  if (!v.ok) violations.push(`objects ${family}: ${v.reason}`);

const result: ProcessSoakResult = {
  date: new Date(startMs).toISOString(),
  options: { ...o, concurrencyPerWorker: 4 },
  submitted: stream.submitted,
  submitErrors: stream.submitErrors,
  ended: endings.ended,
  endedUnseen: endings.endedUnseen,
  live: endings.live,
  events,
  rerun: [...ledger.values()].filter((f) => Object.keys(f.executions).length > 1).length,
  warnings,
  kills,
  samples,
  processes,
  plateaus,
  violations: violations.slice(0, 100),
  violationCount: violations.length,
};
if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
if (args.svg !== undefined || args.md !== undefined)
  writeProcessSoakReport(result, {
    svgPath: args.svg ?? "docs/soak-processes.svg",
    mdPath: args.md,
  });
if (!args.keep) await removePrefix(raw, prefix);

console.log(
  `soak: ${stream.submitted} submitted (${stream.submitErrors} submit errors), ${endings.ended} ended as meant, ${endings.live} still live; ${kills.length} kills, ${result.rerun} tasks run again after a kill; worker events ${JSON.stringify(events)}; ${warnings} worker warnings`,
);
for (const p of processes)
  console.log(
    `soak: worker ${p.slot} pid ${p.pid} ${p.spawnedS}-${p.endedS}s (${p.end}): RSS ${p.rss.judged ? `${(p.rss.reference / 1024).toFixed(1)} -> ${(p.rss.late / 1024).toFixed(1)} MiB (limit ${(p.rss.limit / 1024).toFixed(1)}, ${(p.rss.slopePerMinute / 1024).toFixed(2)} MiB/min)` : "not judged"}; sockets ${p.sockets.judged ? `${p.sockets.reference} -> ${p.sockets.late} (limit ${p.sockets.limit})` : "not judged"}`,
  );
for (const [family, v] of Object.entries(plateaus))
  console.log(
    `soak: objects ${family}: ${v.ok ? "levelled off" : "NOT levelled off"} (second quarter's high ${v.referenceMax}, last half's high ${v.lastHalfMax}, limit ${Math.round(v.limit)})`,
  );
for (const line of endings.endedUnseen) console.log(`soak: ended unseen ${line}`);
for (const line of violations.slice(0, 30)) console.log(`soak: FAILED ${line}`);
const ok = violations.length === 0;
console.log(`soak: ${ok ? "OK" : "FAILED"}`);
process.exit(ok ? 0 : 1);
