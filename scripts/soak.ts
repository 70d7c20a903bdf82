/**
 * The soak run: workers process a steady stream of tasks for minutes with a short retention,
 * and the run shows that the objects under the queue's prefix stop growing (pruning keeps up)
 * and that nothing live is ever deleted. Exits 1 when an invariant broke or the object count
 * did not level off (scripts/soak-checks.ts says exactly what both mean).
 *
 *   npm run soak                                  # 10 minutes, 4 workers, 10 tasks/s, 60 s retention
 *   npx tsx scripts/soak.ts --minutes 3 --rate 10 --json soak.json --svg docs/soak.svg --md docs/soak.md
 *
 * The stream: of every 20 tasks, 17 complete, 1 fails permanently (`PermanentError`), 1 is
 * submitted with a 30 s delay and cancelled by the submitter about 2 s later, and 1 is of a type
 * no worker runs (`soak-expiring`) with a 2 s TTL, so a monitor expires it. Workers run in this
 * process (4 slots each) with `monitorRoundSeconds` set to `--round` (default 15; the default
 * of 600 would prune every 10 minutes) and `maxPollMs` to `--max-poll-ms` (default 6000, the
 * workers' own; the first soak runs found quiet workers stalled behind long monitor rounds, and
 * lowered it to 1000 until that was fixed: see docs/soak.md). Every queue and worker writes through a witness
 * (scripts/soak-observe.ts) that notes each task write that landed and when oq sent each delete
 * of a task object; at the end the checks compare those with the retention.
 *
 * Every `--sample` seconds it counts the objects under the prefix by family (`tasks/`,
 * `ready/`, `done/`, `workers/`, other) and, on a versioned bucket, every `--versions-every`
 * seconds, every version and delete marker (those grow until a lifecycle rule expires them:
 * days, not minutes).
 *
 * Needs OQ_TEST_S3_* (`source .minio/env` after `bash scripts/minio.sh start`); `--bucket
 * unversioned` uses OQ_TEST_S3_UNVERSIONED_BUCKET. The prefix is removed afterwards unless
 * `--keep`.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { requireSafeBackend } from "../src/doctor/mod.ts";
import type { FinishedStatus } from "../src/keys.ts";
import type { LogFields } from "../src/logger.ts";
import { Queue } from "../src/queue/queue.ts";
import { FINISHED_STATUSES } from "../src/queue/retention.ts";
import type { Storage } from "../src/storage/storage.ts";
import { isTaskOutcome } from "../src/worker/task-log.ts";
import { Worker } from "../src/worker/worker.ts";
import { removePrefix, s3Config, testS3Storage } from "../test/helpers/targets.ts";
import { checkFates, checkPlateau, type Point } from "./soak-checks.ts";
import {
  countObjects,
  type Ledger,
  ledgerNotes,
  observeTasks,
  storedTaskIds,
} from "./soak-observe.ts";
import { FAMILIES, type SoakResult, type SoakSample, writeSoakReport } from "./soak-report.ts";
import { SoakStream, soakHandler } from "./soak-stream.ts";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    workers: { type: "string", default: "4" },
    rate: { type: "string", default: "10" },
    retention: { type: "string", default: "60" },
    round: { type: "string", default: "15" },
    "max-poll-ms": { type: "string", default: "6000" },
    sample: { type: "string", default: "15" },
    "versions-every": { type: "string", default: "60" },
    bucket: { type: "string", default: "versioned" },
    json: { type: "string" },
    svg: { type: "string" },
    md: { type: "string" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});

if (args.help) {
  console.log(
    "usage: tsx scripts/soak.ts [--minutes 10] [--workers 4] [--rate 10] [--retention 60] [--round 15] [--max-poll-ms 6000] [--sample 15] [--versions-every 60] [--bucket versioned|unversioned] [--json FILE] [--svg docs/soak.svg --md docs/soak.md] [--keep]",
  );
  process.exit(0);
}

const number = (name: string, value: string) => {
  const n = Number(value);
  if (!(n > 0)) {
    console.error(`soak: --${name} must be a positive number, not ${value}`);
    process.exit(2);
  }
  return n;
};
const minutes = number("minutes", args.minutes);
const workerCount = number("workers", args.workers);
const rate = number("rate", args.rate);
const retentionS = number("retention", args.retention);
const roundS = number("round", args.round);
const sampleS = number("sample", args.sample);
const maxPollMs = number("max-poll-ms", args["max-poll-ms"]);
const versionsEveryS = number("versions-every", args["versions-every"]);
if (s3Config === undefined) {
  console.error(
    "soak: OQ_TEST_S3_* is not set. Start MinIO first: bash scripts/minio.sh start && source .minio/env",
  );
  process.exit(2);
}
if (args.bucket !== "versioned" && args.bucket !== "unversioned") {
  console.error(`soak: --bucket must be versioned or unversioned, not ${args.bucket}`);
  process.exit(2);
}
const bucket = args.bucket === "versioned" ? s3Config.bucket : s3Config.unversionedBucket;
if (bucket === undefined) {
  console.error("soak: --bucket unversioned needs OQ_TEST_S3_UNVERSIONED_BUCKET");
  process.exit(2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const prefix = `soak-${Date.now().toString(36)}/`;
const raw = testS3Storage(bucket);
const ledger: Ledger = new Map();
const storage = observeTasks(raw, `${prefix}tasks/`, ledgerNotes(ledger));
const queue = new Queue({ storage, prefix });

/** Every key and, when `versions`, every version under the prefix, counted by family. */
async function census(s: Storage, versions: boolean): Promise<Omit<SoakSample, "elapsedS">> {
  // The counters as of the sample's start: listing every version takes seconds on a big prefix.
  let finished = 0;
  let pruned = 0;
  for (const f of ledger.values()) {
    if (f.finished !== undefined) finished++;
    if (f.deletedMs !== undefined) pruned++;
  }
  const counted = { submitted: stream.submitted, finished, pruned };
  const objects = await countObjects(s, prefix);
  let versionCount: number | null = null;
  if (versions) {
    versionCount = 0;
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      const page = await s.listVersions({
        prefix,
        ...(keyMarker ? { keyMarker } : {}),
        ...(versionIdMarker ? { versionIdMarker } : {}),
      });
      versionCount += page.versions.length;
      if (!page.isTruncated) break;
      keyMarker = page.nextKeyMarker;
      versionIdMarker = page.nextVersionIdMarker;
    }
  }
  return { objects, versions: versionCount, ...counted };
}

const stream = new SoakStream(queue);

const versioned = (await raw.versioning()) === "Enabled";
await requireSafeBackend(queue);
await queue.setRetention({
  completed: retentionS,
  failed: retentionS,
  cancelled: retentionS,
  expired: retentionS,
});
/** Worker events by kind; the unusual ones are printed as they happen. */
const events: Record<string, number> = {};
const USUAL = new Set(["started", "completed", "failed", "cancelled", "expired"]);
/** Worker warnings and errors: counted, the first few printed (every expiry warns). */
let logged = 0;
const log = (level: string) => (message: string, fields?: LogFields) => {
  if (isTaskOutcome(fields)) return;
  if (++logged <= 10) console.error(`soak: worker ${level}: ${message}`);
};
const logger = { info: () => {}, warn: log("warning"), error: log("error") };
const workers = Array.from({ length: workerCount }, () =>
  new Worker(new Queue({ storage, prefix, logger }), {
    concurrency: 4,
    monitorRoundSeconds: roundS,
    maxPollMs,
    onEvent: (event) => {
      events[event.kind] = (events[event.kind] ?? 0) + 1;
      if (!USUAL.has(event.kind))
        console.error(
          `soak: worker event ${event.kind} ${event.id}${event.error ? `: ${event.error}` : ""}`,
        );
    },
  }).task(
    "soak",
    soakHandler((id, attempt) => {
      const fate = ledger.get(id);
      if (fate !== undefined) fate.executions[attempt] = (fate.executions[attempt] ?? 0) + 1;
    }),
  ),
);
await Promise.all(workers.map((w) => w.start()));
console.error(
  `soak: ${minutes} min, ${workerCount} workers, ${rate} tasks/s, retention ${retentionS} s, monitor round ${roundS} s, sample every ${sampleS} s, bucket ${bucket} (${versioned ? "versioned" : "unversioned"}), prefix ${prefix}`,
);

const startMs = Date.now();
const endMs = startMs + minutes * 60_000;
const samples: SoakSample[] = [];
const sampler = (async () => {
  let next = startMs;
  let versionsAt = Number.NEGATIVE_INFINITY;
  while (next <= endMs) {
    await sleep(Math.max(0, next - Date.now()));
    const elapsedS = Math.round((Date.now() - startMs) / 1000);
    // Listing every version costs a LIST per 1,000 and they only grow: counted less often, so
    // the sampler does not load the server it measures (at 20 tasks/s, 70 LISTs a sample).
    const countVersions =
      versioned && (next >= versionsAt + versionsEveryS * 1000 || next + sampleS * 1000 > endMs);
    if (countVersions) versionsAt = next;
    const sample = { elapsedS, ...(await census(raw, countVersions)) };
    samples.push(sample);
    console.error(
      `soak: ${elapsedS}s objects ${sample.objects.total} (${FAMILIES.map((f) => `${f} ${sample.objects[f]}`).join(", ")})${sample.versions === null ? "" : `, versions ${sample.versions}`}; submitted ${sample.submitted}, finished ${sample.finished}, pruned ${sample.pruned}; polls ${workers.reduce((n, w) => n + w.stats.polls, 0)}, started ${workers.reduce((n, w) => n + w.stats.started, 0)}`,
    );
    next += sampleS * 1000;
  }
})();
for (let second = startMs; second < endMs; second += 1000) {
  await sleep(Math.max(0, second - Date.now()));
  await stream.submitSecond(Math.round(rate));
}
await sampler;
await Promise.all(workers.map((w) => w.stop()));
const { submitted, submitErrors } = stream;

const present = await storedTaskIds(raw, prefix);
for (const fate of ledger.values()) fate.presentAtEnd = present.has(fate.id);
const retentionMs = Object.fromEntries(
  FINISHED_STATUSES.map((s) => [s, retentionS * 1000]),
) as Record<FinishedStatus, number>;
const violations = checkFates(ledger.values(), { retentionMs, toleranceMs: 1000 });
if (ledger.size !== submitted - submitErrors)
  violations.push(
    `${submitted - submitErrors} tasks submitted, but the witness saw writes of ${ledger.size}`,
  );
const series = (pick: (s: SoakSample) => number): Point[] =>
  samples.map((s) => ({ elapsedS: s.elapsedS, value: pick(s) }));
const plateaus = Object.fromEntries(
  [...FAMILIES, "total" as const].map((f) => [f, checkPlateau(series((s) => s.objects[f] ?? 0))]),
);
const finalStates: Record<string, number> = {};
let overdue = 0;
const doneMs = Date.now();
for (const f of ledger.values()) {
  const state = f.deletedMs !== undefined ? `${f.finished?.status ?? "?"} (pruned)` : f.lastStatus;
  finalStates[state] = (finalStates[state] ?? 0) + 1;
  if (
    f.deletedMs === undefined &&
    f.finished !== undefined &&
    f.finished.atMs + retentionS * 1000 + 2 * roundS * 1000 < doneMs
  )
    overdue++;
}
const result: SoakResult = {
  date: new Date(startMs).toISOString(),
  options: {
    minutes,
    workers: workerCount,
    concurrencyPerWorker: 4,
    rate,
    retentionSeconds: retentionS,
    monitorRoundSeconds: roundS,
    maxPollMs,
    sampleSeconds: sampleS,
    bucket: versioned ? "versioned" : "unversioned",
  },
  samples,
  submitted,
  submitErrors,
  finalStates,
  overdue,
  plateaus,
  violations: violations.slice(0, 100),
  violationCount: violations.length,
};
if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
if (args.svg !== undefined || args.md !== undefined)
  writeSoakReport(result, { svgPath: args.svg ?? "docs/soak.svg", mdPath: args.md });
if (!args.keep) await removePrefix(raw, prefix);

console.log(`soak: worker events ${JSON.stringify(events)}; ${logged} worker warnings and errors`);
console.log(
  `soak: ${submitted} submitted (${submitErrors} submit errors); final states ${JSON.stringify(finalStates)}; ${overdue} finished tasks still stored over retention + 2 rounds`,
);
for (const [family, v] of Object.entries(plateaus))
  console.log(
    `soak: ${family}: ${v.ok ? "levelled off" : "NOT levelled off"} (second quarter's high ${v.referenceMax}, last half's high ${v.lastHalfMax}, limit ${Math.round(v.limit)}, slope over the last half ${v.slopePerMinute.toFixed(1)}/min)${v.reason ? `: ${v.reason}` : ""}`,
  );
for (const line of violations.slice(0, 20)) console.log(`soak: VIOLATION ${line}`);
const ok = violations.length === 0 && Object.values(plateaus).every((v) => v.ok);
console.log(`soak: ${ok ? "OK" : "FAILED"}`);
process.exit(ok ? 0 : 1);
