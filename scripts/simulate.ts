/**
 * The scale model of issue 10: a thousand workers against a simulated AWS S3 (docs/scale.md).
 *
 *   npx tsx scripts/simulate.ts [--workers 1000] [--minutes 3] [--backlog 100000] [--rate 116]
 *     [--kill 0.1] [--idle-minutes 2] [--concurrency 1] [--seed 1] [--delete-units key|request]
 *     [--read-limit 5500] [--write-limit 3500] [--shards thumbnail=4,email=2] [--max-minutes 30]
 *     [--label text] [--out file.json]
 *
 * Every worker is a real `Worker` on its own `connect()`ed queue, each over its own view of one
 * simulated bucket (scripts/sim/s3-sim.ts), all on one virtual clock (scripts/sim/virtual-time.ts):
 * time moves only when every worker waits, so the machine's speed does not change the measured
 * rates, only how long the run takes. Phases: a backlog is loaded before the clock starts, the
 * fleet starts over 10 s while a stream of new tasks arrives for `--minutes`; a share of the
 * workers is killed (their requests never answer again, their leases stay held) and replaced;
 * the run continues until every task is done; then an idle phase measures the empty fleet.
 * Finally every task is read back: each acknowledged task must be completed, by exactly one
 * finished handler run per attempt.
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { connect, type Queue, runDoctor, type TaskRecord, Worker } from "../mod.ts";
import type { LogFields } from "../src/logger.ts";
import { isTaskOutcome } from "../src/worker/task-log.ts";
import { seededHex, seededRandom } from "./sim/random.ts";
import { buildResult, printResult } from "./sim/report.ts";
import { SimS3, type SimView } from "./sim/s3-sim.ts";
import { VirtualTime } from "./sim/virtual-time.ts";
import { groupOf, Ledger, newTasks, type SimInput } from "./sim/workload.ts";

const { values: flags } = parseArgs({
  options: {
    workers: { type: "string", default: "1000" },
    minutes: { type: "string", default: "3" },
    backlog: { type: "string", default: "100000" },
    rate: { type: "string", default: "116" },
    kill: { type: "string", default: "0.1" },
    "idle-minutes": { type: "string", default: "2" },
    concurrency: { type: "string", default: "1" },
    seed: { type: "string", default: "1" },
    label: { type: "string", default: "" },
    out: { type: "string" },
    "max-minutes": { type: "string", default: "30" },
    "delete-units": { type: "string", default: "key" },
    "read-limit": { type: "string", default: "5500" },
    "write-limit": { type: "string", default: "3500" },
    shards: { type: "string", default: "" },
  },
});

/** `--shards thumbnail=4,email=2`: hash shards per type, set as an operator would before the run. */
function parseShards(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of text.split(",").filter((x) => x.trim() !== "")) {
    const [type, n] = item.split("=");
    const count = Number(n);
    if (type === undefined || type.trim() === "" || !Number.isInteger(count) || count < 1) {
      throw new Error(`--shards: expected type=count[,type=count…], got ${JSON.stringify(item)}`);
    }
    out[type.trim()] = count;
  }
  return out;
}

const num = (name: keyof typeof flags): number => {
  const v = Number(flags[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number >= 0`);
  return v;
};
const config = {
  workers: Math.round(num("workers")),
  minutes: num("minutes"),
  backlog: Math.round(num("backlog")),
  rate: num("rate"),
  killFraction: num("kill"),
  idleMinutes: num("idle-minutes"),
  concurrency: Math.max(1, Math.round(num("concurrency"))),
  seed: Math.round(num("seed")),
  maxMinutes: num("max-minutes"),
  deleteUnits: flags["delete-units"] === "request" ? ("request" as const) : ("key" as const),
  readLimit: num("read-limit"),
  writeLimit: num("write-limit"),
  shards: parseShards(flags.shards ?? ""),
};

const PREFIX = "q/";
/** The virtual clock starts here, so runs are reproducible. */
const START_MS = Date.parse("2026-12-01T00:00:00.000Z");
/** Workers start over this long, as a deployment rolls out. */
const RAMP_MS = 10_000;
/** After the last task is done: let completions land and batched deletes flush. */
const SETTLE_MS = 10_000;
/** Idle workers back off from 250 ms to their longest pause; not measured meanwhile. */
const IDLE_WARMUP_MS = 30_000;

const wallStart = performance.now();
const vt = new VirtualTime(START_MS);
vt.install();
let keysOf: Queue | undefined;
const sim = new SimS3({
  queuePrefix: PREFIX,
  now: vt.now,
  random: seededRandom(config.seed * 7919 + 1),
  sleep: (ms) => vt.sleep(ms),
  isTaskKey: (key) => keysOf?.keys.parseTaskKey(key) !== undefined,
  keyClass: (key) => {
    const marker = keysOf?.keys.parseReadyMarker(key);
    if (marker !== undefined) return marker.lease ? "lease marker" : "marker";
    return keysOf?.keys.parseTaskKey(key) !== undefined ? "task" : undefined;
  },
  // Unversioned: a versioned store keeps every deleted marker as a delete marker that each
  // listing of the in-memory store walks past, which made long runs quadratic. No request
  // oq makes depends on versioning (connect's one check aside), so the counts are the same.
  versioning: "Disabled",
  deleteUnits: config.deleteUnits,
  limits: { read: config.readLimit, write: config.writeLimit },
});
const taskRandom = seededRandom(config.seed * 7919 + 2);
const warnings = new Map<string, number>();
const ledger = new Ledger();
/** Warnings of all processes, counted by shape; a killed process says nothing more. */
const loggerOf = (client: string) => ({
  info() {},
  warn(message: string, fields?: LogFields) {
    if (ledger.killed.has(client) || isTaskOutcome(fields)) return;
    if (message.startsWith("bucket versioning is Disabled")) return;
    // Group by the message's shape: ids, keys and numbers vary.
    const shape = message
      .replace(/[0-9a-f]{8,}/g, "…")
      .replace(/\d+/g, "n")
      .slice(0, 90);
    warnings.set(shape, (warnings.get(shape) ?? 0) + 1);
  },
  error(message: string, fields?: LogFields) {
    loggerOf(client).warn(`error: ${message}`, fields);
  },
});

/** A queue as one process would open it, with its own seeded randomness. */
function openQueue(
  storage: SimView | ReturnType<SimS3["backstage"]>,
  seed: number,
  client: string,
) {
  const random = seededRandom(seed);
  return connect({
    storage,
    prefix: PREFIX,
    now: vt.now,
    random,
    randomHex: seededHex(random),
    logger: loggerOf(client),
    allowNoVersioning: true,
  });
}

/** Run the virtual clock until `promise` settles (or `limitMs` of virtual time passes). */
async function drive<T>(promise: Promise<T>, limitMs = 3_600_000): Promise<T> {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  tracked.catch(() => {});
  await vt.runUntil(vt.now() + limitMs, () => done);
  if (!done) throw new Error("the simulation did not settle in time");
  return tracked;
}

const submittedIds = new Set<string>();

// Setup, outside the measured fleet: the doctor's verdict (an operator ran `oq doctor` once),
// and the backlog, already waiting when the fleet starts.
const setup = await drive(openQueue(sim.backstage(), config.seed, "setup"));
keysOf = setup;
await drive(runDoctor(setup));
// Shards, as an operator sets them (`oq shards TYPE N`) before the fleet starts.
for (const [type, n] of Object.entries(config.shards)) await drive(setup.setShards(type, n));
for (let left = config.backlog; left > 0; left -= 5000) {
  const batch = newTasks(Math.min(5000, left), taskRandom);
  const records = await drive(setup.submitMany(batch, { concurrency: 64 }));
  for (const r of records) submittedIds.add(r.id);
}
console.error(
  `backlog of ${config.backlog} loaded in ${((performance.now() - wallStart) / 1000).toFixed(1)} s`,
);

// The fleet.
const origin = vt.now();
const views = new Map<string, SimView>();
let generation = 0;

async function startWorker(index: number): Promise<void> {
  const id = `w${String(index).padStart(5, "0")}-${generation++}`;
  const view = sim.view(id);
  views.set(id, view);
  const queue = await openQueue(view, config.seed * 1_000_003 + generation, id);
  const worker = new Worker(queue, { id, concurrency: config.concurrency });
  for (const type of groupOf(index, config.workers).types) {
    worker.task(type, async (input: SimInput, ctx) => {
      await new Promise((resolve) => setTimeout(resolve, input.ms));
      // A process that died mid-handler never finishes it.
      if (ledger.killed.has(id)) await new Promise(() => {});
      ledger.record(ctx.task.id, ctx.attempt, id);
      return null;
    });
  }
  await worker.start();
}

const failures: string[] = [];
const launch = (index: number) =>
  void startWorker(index).catch((e) => failures.push(`worker ${index}: ${String(e)}`));
const fleetRandom = seededRandom(config.seed * 7919 + 3);
for (let i = 0; i < config.workers; i++) {
  setTimeout(() => launch(i), fleetRandom() * RAMP_MS);
}

// Kills: spread over 15%–60% of the stream, each worker replaced at once.
const streamMs = config.minutes * 60_000;
const kills = Math.round(config.workers * config.killFraction);
for (let k = 0; k < kills; k++) {
  setTimeout(
    () => {
      const live = [...views.entries()].filter(([, v]) => !v.killed);
      const [id, view] = live[Math.floor(fleetRandom() * live.length)]!;
      view.kill();
      ledger.killed.add(id);
      launch(Number(id.slice(1, 6)));
    },
    (0.15 + 0.45 * fleetRandom()) * streamMs,
  );
}

// The stream: `rate` tasks a second for `minutes`, submitted once a second by one client.
const submitter = await drive(openQueue(sim.view("submitter"), config.seed + 17, "submitter"));
let streamed = 0;
let streamErrors = 0;
let streamOpen = true;
let inFlight = 0;
for (let s = 0; s < config.minutes * 60; s++) {
  const n = Math.floor((s + 1) * config.rate) - Math.floor(s * config.rate);
  setTimeout(() => {
    inFlight++;
    submitter
      .submitMany(newTasks(n, taskRandom))
      .then((records) => {
        for (const r of records) submittedIds.add(r.id);
        streamed += records.length;
      })
      .catch(() => streamErrors++)
      .finally(() => inFlight--);
  }, s * 1000);
}
setTimeout(() => {
  streamOpen = false;
}, streamMs);

// Progress on stderr every 30 s of simulated time.
const progress = setInterval(() => {
  const t = sim.meter.summary(0, sim.meter.second(vt.now()));
  console.error(
    `  t=${Math.round((vt.now() - origin) / 1000)} s: ${ledger.finishedTasks}/${submittedIds.size} tasks done, ${t.total} requests, wall ${Math.round((performance.now() - wallStart) / 1000)} s`,
  );
}, 30_000);

// Busy phase: until the stream ended and every acknowledged task finished a run.
const limitMs = config.maxMinutes * 60_000;
await vt.runUntil(
  origin + limitMs,
  () => !streamOpen && inFlight === 0 && ledger.finishedTasks >= submittedIds.size,
);
const drainedAt = vt.now();
await vt.runUntil(drainedAt + SETTLE_MS);
const busyEnd = vt.now();
console.error(
  `busy phase: ${((busyEnd - origin) / 1000).toFixed(0)} s simulated, ${((performance.now() - wallStart) / 1000).toFixed(0)} s wall`,
);

// Idle phase: the same fleet with nothing to do.
await vt.runUntil(busyEnd + IDLE_WARMUP_MS);
const idleStart = vt.now();
await vt.runUntil(idleStart + config.idleMinutes * 60_000);
const idleEnd = vt.now();

clearInterval(progress);

// The check: every task, read back outside the fleet.
const tasks: TaskRecord[] = [];
let cursor: string | undefined;
do {
  const page = await drive(setup.list({ limit: 1000, ...(cursor ? { cursor } : {}) }));
  tasks.push(...page.tasks);
  cursor = page.cursor;
} while (cursor !== undefined);
vt.uninstall();

const result = buildResult({
  label: flags.label ?? "",
  command: `npx tsx scripts/simulate.ts ${process.argv
    .slice(2)
    .map((a) => (/^[\w.,:/=-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`))
    .join(" ")}`.trim(),
  config,
  sim,
  ledger,
  verification: ledger.verify(tasks, submittedIds),
  phases: {
    busy: [sim.meter.second(origin), sim.meter.second(busyEnd)],
    idle: [sim.meter.second(idleStart), sim.meter.second(idleEnd)],
  },
  drainedSeconds: (drainedAt - origin) / 1000,
  tasksDone: ledger.finishedTasks,
  streamed,
  streamErrors,
  kills: ledger.killed.size,
  workerFailures: failures,
  warnings,
  wallSeconds: (performance.now() - wallStart) / 1000,
  timersFired: vt.fired,
});
printResult(result);
if (flags.out !== undefined) {
  writeFileSync(flags.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwritten to ${flags.out}`);
}
process.exit(0);
