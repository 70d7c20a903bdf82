/**
 * oq's benchmark against a real S3 server (MinIO in CI). Prints numbers; asserts nothing.
 *
 *   npm run bench                       # private MinIO, every section, writes docs/benchmarks.*
 *   npx tsx scripts/bench.ts --tasks 2000 --stored 10000 --idle-seconds 60 --json out.json
 *   npx tsx scripts/bench.ts --only claims,memory --claim-stored 5000
 *   npx tsx scripts/bench.ts --only idle --idle-cases running,unhandled
 *   npx tsx scripts/bench.ts --only stats --stats-finished 5000
 *   npx tsx scripts/bench.ts --only dashboard --dashboard-finished 5000
 *
 * Sections: requests (per task, by kind, and dollars), idle (requests per idle worker-minute
 * while the queue holds nothing, finished tasks, tasks running elsewhere, and tasks of a type
 * the worker has no handler for; `--idle-cases` picks some of empty,finished,running,unhandled),
 * throughput and latency (against 1, 4 and 8 workers, and 4 workers at the default concurrency in
 * `--drain-trials` trials, each against the mean of drain ceilings measured right before and
 * right after it; and at 5 tasks/s after idle spells, from the workers' own queue object and
 * another, scripts/bench-latency.ts), claims (claim throughput with 0 and with
 * 50,000 stored finished tasks), stats (the requests and time of one `queue.stats()` with 0 and
 * with `--stats-finished` stored finished tasks), dashboard (the time and requests of loading the
 * dashboard's overview and task list through its handler, with `--dashboard-finished` finished
 * tasks in the journal), memory (RSS of the compiled `oq worker` at start, idle and busy;
 * scripts/bench-memory.ts), start (spawn to first task of the compiled `oq worker`, and the
 * library's start() and drain() to first claim; scripts/bench-start.ts), bundle (the portable bundle a Cloudflare Worker ships: minified and gzipped
 * size, its biggest inputs; needs no MinIO), limit (raw conditional PUT and GET rates from one
 * process, 32 in flight, and the tasks/s ceiling they set; scripts/bench-limit.ts), submit
 * (`submitMany` of `--submit-tasks` tasks at its default concurrency, as a fraction of the limit),
 * index (the ready index's delete markers and the cost of listing it after a drain of
 * `--index-tasks` tasks, markers deleted by version or plainly; scripts/bench-index.ts).
 * `--http runtime` (the default) runs the in-process workers and clients over the HTTP client
 * `oq worker` uses on this runtime (`node:http` on Node); `--http fetch` over the global `fetch`.
 * `--report` (what `npm run bench` passes) writes docs/benchmarks.md and docs/benchmarks.svg
 * from a complete run, with the previous run's figures (read from docs/benchmarks.json, `--results`)
 * beside the new ones, then saves this run there; `--chaos chaos.json` adds the results of
 * `scripts/chaos.ts --json` (without it, the previous run's chaos results are carried over, dated).
 *
 * Needs OQ_TEST_S3_ENDPOINT, OQ_TEST_S3_BUCKET, OQ_TEST_S3_ACCESS_KEY_ID and
 * OQ_TEST_S3_SECRET_ACCESS_KEY (scripts/minio.sh start writes them to .minio/env).
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createDashboard } from "../src/dashboard/handler.ts";
import { requireSafeBackend } from "../src/doctor/mod.ts";
import { FinishedJournal } from "../src/queue/journal.ts";
import { Queue } from "../src/queue/queue.ts";
import { runtimeFetch } from "../src/runtime/node-fetch.ts";
import { type CountedStorage, countRequests } from "../src/storage/count.ts";
import { S3Storage } from "../src/storage/s3/driver.ts";
import type { Storage } from "../src/storage/storage.ts";
import { encodeTask, type TaskRecord } from "../src/task/record.ts";
import { mapLimit } from "../src/util/async.ts";
import { randomHex } from "../src/util/format.ts";
import type { Handler } from "../src/worker/options.ts";
import { DEFAULT_CONCURRENCY } from "../src/worker/options.ts";
import { Worker } from "../src/worker/worker.ts";
import { bundleSizes } from "./bench-bundle.ts";
import { indexAfterDrain } from "./bench-index.ts";
import { latencyAfterIdle } from "./bench-latency.ts";
import {
  drainTrials,
  type LimitResult,
  storageLimit,
  submitThroughput,
  taskModel,
} from "./bench-limit.ts";
import { memoryBench } from "./bench-memory.ts";
import {
  IDLE_CASES,
  IDLE_CEILING_PER_MINUTE,
  type IdleCase,
  type IdleResult,
  idleSetupFailure,
} from "./bench-report.ts";
import { startBench } from "./bench-start.ts";
import { PRICE_PER_REQUEST } from "./sim/pricing.ts";

const { values: args } = parseArgs({
  options: {
    tasks: { type: "string", default: "2000" },
    "per-task-tasks": { type: "string", default: "500" },
    stored: { type: "string", default: "50000" },
    "idle-seconds": { type: "string", default: "60" },
    "idle-cases": { type: "string", default: IDLE_CASES.join(",") },
    "running-tasks": { type: "string", default: "300" },
    "unhandled-tasks": { type: "string", default: "5000" },
    "latency-tasks": { type: "string", default: "200" },
    "latency-idle-workers": { type: "string", default: "1,4" },
    "latency-idle-rounds": { type: "string", default: "4" },
    "latency-idle-seconds": { type: "string", default: "20" },
    "latency-idle-tasks": { type: "string", default: "60" },
    "limit-seconds": { type: "string", default: "3" },
    "submit-tasks": { type: "string", default: "2000" },
    "submit-concurrency": { type: "string" },
    workers: { type: "string", default: "1,4,8" },
    concurrency: { type: "string", default: "8" },
    "drain-trials": { type: "string", default: "5" },
    "claim-stored": { type: "string", default: "50000" },
    "claim-tasks": { type: "string", default: "1500" },
    "claim-trials": { type: "string", default: "5" },
    "index-tasks": { type: "string", default: "2000" },
    "index-lists": { type: "string", default: "20" },
    "stats-finished": { type: "string", default: "50000" },
    "dashboard-finished": { type: "string", default: "50000" },
    "dashboard-repetitions": { type: "string", default: "7" },
    "start-runs": { type: "string", default: "10" },
    "start-together": { type: "string", default: "4" },
    "memory-tasks": { type: "string", default: "3000" },
    "memory-idle-seconds": { type: "string", default: "20" },
    http: { type: "string", default: "runtime" },
    json: { type: "string" },
    only: { type: "string" },
    report: { type: "boolean", default: false },
    chaos: { type: "string" },
    md: { type: "string", default: "docs/benchmarks.md" },
    svg: { type: "string", default: "docs/benchmarks.svg" },
    results: { type: "string", default: "docs/benchmarks.json" },
  },
});

const env = process.env;
// The bundle section alone needs no storage.
const needsS3 = args.only?.split(",").some((name) => name !== "bundle") ?? true;
for (const name of [
  "OQ_TEST_S3_ENDPOINT",
  "OQ_TEST_S3_BUCKET",
  "OQ_TEST_S3_ACCESS_KEY_ID",
  "OQ_TEST_S3_SECRET_ACCESS_KEY",
]) {
  if (needsS3 && !env[name]) {
    console.error(
      `bench: ${name} is not set. Start MinIO first: bash scripts/minio.sh start && source .minio/env`,
    );
    process.exit(2);
  }
}

if (args.http !== "runtime" && args.http !== "fetch") {
  console.error(`bench: --http ${args.http}: use runtime or fetch`);
  process.exit(2);
}
const httpClient = args.http === "runtime" ? runtimeFetch() : undefined;

const s3 = () =>
  new S3Storage({
    ...(httpClient === undefined ? {} : { fetch: httpClient }),
    endpoint: env.OQ_TEST_S3_ENDPOINT!,
    bucket: env.OQ_TEST_S3_BUCKET!,
    region: env.OQ_TEST_S3_REGION ?? "us-east-1",
    accessKeyId: env.OQ_TEST_S3_ACCESS_KEY_ID!,
    secretAccessKey: env.OQ_TEST_S3_SECRET_ACCESS_KEY!,
  });

const runId = `bench-${Date.now().toString(36)}`;
const prefixes: string[] = [];
const newPrefix = (name: string) => {
  const p = `${runId}/${name}/`;
  prefixes.push(p);
  return p;
};

/**
 * A fresh prefix whose doctor verdict is already cached. Workers require a verdict before their
 * first claim and the verdict is keyed by prefix, so without this the first worker in each
 * section would run the whole probe (about 160 requests) inside the measured window. Proven
 * here on an uncounted client; each worker's start still reads the cached verdict (one GET),
 * a real cost of every start, and that GET is counted.
 */
async function provenPrefix(name: string) {
  const prefix = newPrefix(name);
  await requireSafeBackend(new Queue({ storage: s3(), prefix }));
  return prefix;
}

const noop = () => null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

async function untilDone(workers: Worker[], total: number, timeoutMs = 30 * 60_000) {
  const end = Date.now() + timeoutMs;
  while (workers.reduce((n, w) => n + w.stats.completed, 0) < total) {
    if (Date.now() > end) throw new Error("benchmark run timed out");
    await sleep(20);
  }
}

function perTask(counts: CountedStorage["counts"], n: number) {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counts)) out[k] = round(v / n, 3);
  return out;
}

function dollarsPerMillion(counts: CountedStorage["counts"], n: number) {
  let total = 0;
  for (const [k, v] of Object.entries(counts))
    total += (v / n) * PRICE_PER_REQUEST[k as keyof typeof PRICE_PER_REQUEST] * 1_000_000;
  return round(total, 2);
}

/** Requests per completed task, by kind and phase, for `workerCount` workers. */
async function requestsPerTask(n: number, workerCount: number) {
  const storage = countRequests(s3());
  const queue = new Queue({ storage, prefix: await provenPrefix(`per-task-${workerCount}`) });
  await queue.submitMany(Array.from({ length: n }, (_, i) => ({ type: "noop", input: i })));
  const submit = { ...storage.counts };
  storage.reset();
  const workers = Array.from({ length: workerCount }, () =>
    new Worker(queue, { concurrency: Number(args.concurrency), heartbeatSeconds: 60 }).task(
      "noop",
      noop,
    ),
  );
  await Promise.all(workers.map((w) => w.start()));
  await untilDone(workers, n);
  await Promise.all(workers.map((w) => w.stop()));
  const work = { ...storage.counts };
  const all = Object.fromEntries(
    Object.keys(submit).map((k) => [
      k,
      submit[k as keyof typeof submit] + work[k as keyof typeof work],
    ]),
  ) as CountedStorage["counts"];
  const total = Object.values(all).reduce((a, b) => a + b, 0);
  return {
    tasks: n,
    workers: workerCount,
    submitPerTask: perTask(submit, n),
    workerPerTask: perTask(work, n),
    totalPerTask: perTask(all, n),
    requestsPerTask: round(total / n, 3),
    dollarsPerMillionTasks: dollarsPerMillion(all, n),
  };
}

/**
 * Write `count` finished task objects directly (no markers), as a long-lived queue accumulates;
 * with `journal`, also note each in that finished journal (flushed per 1,000), as the workers
 * that finished them would have, so listings can find them.
 */
async function storeFinished(
  storage: Storage,
  queue: Queue,
  count: number,
  journal?: FinishedJournal,
) {
  const now = Date.now();
  let next = 0;
  const one = async () => {
    while (next < count) {
      const i = next++;
      const id = i
        .toString(16)
        .padStart(32, "0")
        .replace(/^0/, (i % 16).toString(16));
      const iso = new Date(now).toISOString();
      const task: TaskRecord = {
        oq: 1,
        id,
        type: "old",
        status: "completed",
        input: i,
        output: i,
        attempt: 1,
        maxRetries: 3,
        backoff: { initialSeconds: 1, maxSeconds: 300, factor: 2 },
        timeoutSeconds: null,
        createdAt: iso,
        updatedAt: iso,
        availableAt: iso,
        expiresAt: null,
        startedAt: iso,
        finishedAt: iso,
        lease: null,
        lastError: null,
        cancel: null,
        idempotencyKey: null,
        event: "completed",
        marker: null,
        history: [],
        progress: null,
      };
      await storage.put(queue.keys.task(id), encodeTask(task), { contentType: "application/json" });
      journal?.record(task);
    }
  };
  await Promise.all(Array.from({ length: 32 }, one));
  await journal?.flush();
}

/**
 * Prefixes holding `count` finished tasks (proven, no markers), written once per run and shared
 * by the sections that need them (the idle worker's case and the claims trials).
 */
const finishedPrefixes = new Map<number, Promise<{ prefix: string; storeSeconds: number }>>();
function finishedPrefix(count: number) {
  let made = finishedPrefixes.get(count);
  if (made === undefined) {
    made = (async () => {
      const raw = s3();
      const prefix = await provenPrefix(`finished-${count}`);
      const start = Date.now();
      await storeFinished(raw, new Queue({ storage: raw, prefix }), count);
      return { prefix, storeSeconds: (Date.now() - start) / 1000 };
    })();
    finishedPrefixes.set(count, made);
  }
  return made;
}

/** The idle worker's poll interval grows from 250 ms to its 6 s ceiling within this; measure after it. */
const IDLE_SETTLE_MS = 15_000;

/**
 * The idle worker of every idle case: a handler for `email` (`handler`, a no-op unless given),
 * the monitor on and one slot, as a worker starts by default.
 */
const idleWorker = (queue: Queue, handler: Handler = noop) =>
  new Worker(queue, { heartbeatSeconds: 60 }).task("email", handler);

/**
 * Count what `storage` (the idle worker's own client: nobody else's requests reach it) is asked
 * from local time `from` for `seconds`, as requests per minute and by kind.
 */
async function idleWindow(storage: CountedStorage, from: number, seconds: number) {
  await sleep(from - Date.now());
  storage.reset();
  await sleep(seconds * 1000);
  const byKind = { ...storage.counts };
  const total = Object.values(byKind).reduce((a, b) => a + b, 0);
  return { seconds, perMinute: round((total * 60) / seconds, 1), byKind };
}

/** Requests an idle worker makes per minute, with `stored` finished tasks in the queue. */
async function idleCost(stored: number, seconds: number) {
  const storage = countRequests(s3());
  const prefix = stored > 0 ? (await finishedPrefix(stored)).prefix : await provenPrefix("idle-0");
  const worker = idleWorker(new Queue({ storage, prefix }));
  await worker.start();
  const window = await idleWindow(storage, Date.now() + IDLE_SETTLE_MS, seconds);
  await worker.stop();
  return {
    case: stored > 0 ? ("finished" as const) : ("empty" as const),
    tasks: stored,
    storedTasks: stored,
    ...window,
  };
}

/**
 * One `queue.stats()` call in a queue that also holds `stored` finished tasks (0: none): its
 * requests (counted by the storage client and as the call reports them) and time (median of 3).
 * Both queues get the same live part: 20 tasks completed by a worker that then stopped (its
 * stopped file), 20 by one still running (its heartbeat), 10 due and 10 delayed tasks of a type
 * nobody runs. The finished tasks are stored objects only, so the difference is theirs alone.
 */
async function statsCost(stored: number) {
  const prefix = stored > 0 ? (await finishedPrefix(stored)).prefix : await provenPrefix("stats-0");
  const queue = new Queue({ storage: s3(), prefix });
  const first = new Worker(queue, { heartbeatSeconds: 60 }).task("email", noop);
  // Heartbeats every second, so its counts are in its heartbeat when stats() reads it.
  const second = new Worker(queue, { heartbeatSeconds: 1 }).task("email", noop);
  for (const worker of [first, second]) {
    await queue.submitMany(Array.from({ length: 20 }, (_, i) => ({ type: "email", input: i })));
    await worker.start();
    await untilDone([worker], 20);
    if (worker === first) await first.stop();
  }
  await queue.submitMany([
    ...Array.from({ length: 10 }, () => ({ type: "report" })),
    ...Array.from({ length: 10 }, () => ({ type: "report", options: { delay: 3600 } })),
  ]);
  await sleep(1500);
  const storage = countRequests(s3());
  const counted = new Queue({ storage, prefix });
  const times: number[] = [];
  let stats: Awaited<ReturnType<Queue["stats"]>> | undefined;
  for (let i = 0; i < 3; i++) {
    storage.reset();
    const start = performance.now();
    stats = await counted.stats();
    times.push(performance.now() - start);
  }
  await second.stop();
  const email = stats!.types.find((t) => t.type === "email");
  return {
    storedTasks: stored,
    requests: storage.total(),
    byKind: { ...storage.counts },
    reported: stats!.requests,
    ms: round(times.sort((a, b) => a - b)[1]!, 1),
    completedLastHour: email?.finished.lastHour.completed ?? 0,
  };
}

/** Median and maximum of `times`, ms, rounded to 0.1. */
function medianMax(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    medianMs: round(sorted[Math.floor((sorted.length - 1) / 2)]!, 1),
    maxMs: round(sorted.at(-1)!, 1),
  };
}

/**
 * Loading dashboard pages through its handler (no HTTP server: the handler's own cost) in a
 * queue holding `stored` finished tasks, noted in the finished journal as workers note theirs,
 * plus 20 pending tasks of another type and a live worker. Each page `reps` times; time median and maximum, and
 * the storage requests of the last load.
 */
async function dashboardCost(stored: number, reps: number) {
  const raw = s3();
  const prefix = await provenPrefix(`dashboard-${stored}`);
  const setup = new Queue({ storage: raw, prefix });
  const journal = new FinishedJournal({
    storage: raw,
    keys: setup.keys,
    logger: setup.logger,
    randomHex: (n) => randomHex(Math.ceil(n / 2)).slice(0, n),
  });
  const storeStart = Date.now();
  await storeFinished(raw, setup, stored, journal);
  const storeSeconds = round((Date.now() - storeStart) / 1000, 0);
  await setup.submitMany(Array.from({ length: 20 }, (_, i) => ({ type: "email", input: i })));
  // A live worker (of a type with no tasks), so the overview reads a heartbeat as it would.
  const live = new Worker(setup, { heartbeatSeconds: 60 }).task("video", noop);
  await live.start();
  const storage = countRequests(s3());
  const handler = createDashboard(new Queue({ storage, prefix }));
  const pages: Record<string, unknown>[] = [];
  for (const [page, path] of [
    ["overview", "/"],
    ["task list", "/tasks"],
  ] as const) {
    const times: number[] = [];
    let status = 0;
    for (let i = 0; i < reps; i++) {
      storage.reset();
      const start = performance.now();
      const response = await handler(new Request(`http://bench.local${path}`));
      await response.text();
      times.push(performance.now() - start);
      status = response.status;
    }
    if (status !== 200) {
      await live.stop();
      throw new Error(`dashboard ${path} answered ${status}`);
    }
    pages.push({
      page,
      path,
      ...medianMax(times),
      requests: storage.total(),
      byKind: { ...storage.counts },
    });
  }
  await live.stop();
  return { storedTasks: stored, storeSeconds, repetitions: reps, pages };
}

/** Slots of each of the other workers that hold the running tasks of {@link idleWithRunning}. */
const RUNNING_SLOTS_PER_WORKER = 100;
/** The lease of the running tasks of {@link idleWithRunning}, seconds (renewed at half of it). */
const RUNNING_LEASE_SECONDS = 6;

/**
 * Requests an idle worker makes per minute while `n` tasks of the type it handles run on other
 * workers (100 slots each, 6 s leases they renew, handlers that run until released). The idle
 * worker starts once the others have claimed them all, so it has a free slot and nothing it may
 * take: a live lease is not to be read, let alone taken over. Only the idle worker's requests are
 * counted (its own client); the run checks that every task still runs at the window's end.
 */
async function idleWithRunning(n: number, seconds: number) {
  const prefix = await provenPrefix(`idle-running-${n}`);
  const others = new Queue({ storage: s3(), prefix });
  // A promise, not an AbortSignal: 300 listeners on one signal draw a leak warning.
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const running = new Set<string>();
  const hold: Handler = (_input, ctx) =>
    new Promise((resolve) => {
      running.add(ctx.task.id);
      const end = () => {
        running.delete(ctx.task.id);
        resolve(null);
      };
      void released.then(end);
      ctx.signal.addEventListener("abort", end, { once: true });
    });
  const workers = Array.from({ length: Math.ceil(n / RUNNING_SLOTS_PER_WORKER) }, () =>
    new Worker(others, {
      concurrency: RUNNING_SLOTS_PER_WORKER,
      leaseSeconds: RUNNING_LEASE_SECONDS,
      heartbeatSeconds: 60,
    }).task("email", hold),
  );
  await others.submitMany(
    Array.from({ length: n }, (_, i) => ({ type: "email", input: i })),
    { concurrency: 32 },
  );
  await Promise.all(workers.map((w) => w.start()));
  const claimedBy = Date.now() + 5 * 60_000;
  while (running.size < n) {
    if (Date.now() > claimedBy) throw new Error(`only ${running.size} of ${n} tasks started`);
    await sleep(100);
  }
  const storage = countRequests(s3());
  const idle = idleWorker(new Queue({ storage, prefix }), hold);
  await idle.start();
  const window = await idleWindow(storage, Date.now() + IDLE_SETTLE_MS, seconds);
  // What held through the window, before the release ends every handler.
  const runningAtEnd = running.size;
  const idleClaims = idle.stats.started;
  const leasesLost = workers.reduce((sum, w) => sum + w.stats.leaseLost, 0);
  // Released handlers return at once and stop() waits for them; a task whose lease lapsed under
  // load may be pending again, left for the cleanup (waiting for it to complete could hang).
  release();
  await Promise.all([idle, ...workers].map((w) => w.stop()));
  return {
    case: "running" as const,
    tasks: n,
    storedTasks: 0,
    otherWorkers: workers.length,
    leaseSeconds: RUNNING_LEASE_SECONDS,
    ...window,
    runningAtEnd,
    idleClaims,
    leasesLost,
  };
}

/** How long after the idle worker's start the tasks of {@link idleWithUnhandled} become due, ms. */
const UNHANDLED_DUE_AFTER_MS = 60_000;

/**
 * Requests an idle worker makes per minute while the queue holds `n` due tasks of a type it has
 * no handler for (`video`) and nobody runs them. They are submitted as the worker starts, due
 * {@link UNHANDLED_DUE_AFTER_MS} later: the worker's polling settles while they are still in
 * the future, and the window opens as they become due, so it is the first minute in which they
 * are due (the worst for a worker that reads what it cannot run).
 */
async function idleWithUnhandled(n: number, seconds: number) {
  const prefix = await provenPrefix(`idle-unhandled-${n}`);
  const storage = countRequests(s3());
  const idle = idleWorker(new Queue({ storage, prefix }));
  const dueAt = Math.ceil((Date.now() + UNHANDLED_DUE_AFTER_MS) / 1000) * 1000;
  await idle.start();
  await new Queue({ storage: s3(), prefix }).submitMany(
    Array.from({ length: n }, (_, i) => ({
      type: "video",
      input: i,
      options: { scheduleAt: dueAt },
    })),
    { concurrency: 32 },
  );
  // Submitting took longer than the lead: the worker saw the first of them before the window.
  const lateSeconds = round(Math.max(0, Date.now() - dueAt) / 1000, 1);
  if (lateSeconds > 0)
    console.error(`bench: submitting ${n} tasks ended ${lateSeconds} s after they became due`);
  const window = await idleWindow(storage, dueAt, seconds);
  await idle.stop();
  return {
    case: "unhandled" as const,
    tasks: n,
    storedTasks: 0,
    ...window,
    ...(lateSeconds > 0 ? { lateSeconds } : {}),
  };
}

/**
 * Time to drain `n` pre-submitted no-op tasks with `workerCount` workers of `concurrency` slots
 * each (`"default"`: the `Worker`'s own default, as a worker given no option runs).
 */
async function throughput(
  n: number,
  workerCount: number,
  concurrency: number | "default" = Number(args.concurrency),
) {
  const storage = countRequests(s3());
  const queue = new Queue({ storage, prefix: await provenPrefix(`throughput-${workerCount}`) });
  const submitStart = Date.now();
  const tasks = await queue.submitMany(
    Array.from({ length: n }, (_, i) => ({ type: "noop", input: i })),
    { concurrency: 32 },
  );
  const submitSeconds = (Date.now() - submitStart) / 1000;
  const workers = Array.from({ length: workerCount }, () =>
    new Worker(queue, {
      ...(concurrency === "default" ? {} : { concurrency }),
      heartbeatSeconds: 60,
    }).task("noop", noop),
  );
  storage.reset();
  const start = Date.now();
  await Promise.all(workers.map((w) => w.start()));
  await untilDone(workers, n);
  const seconds = (Date.now() - start) / 1000;
  await Promise.all(workers.map((w) => w.stop()));
  const sample = tasks.filter((_, i) => i % Math.max(1, Math.floor(n / 200)) === 0);
  const waits = (await Promise.all(sample.map((t) => queue.get(t.id))))
    .map((t) => Date.parse(t.startedAt!) - Date.parse(t.createdAt))
    .sort((a, b) => a - b);
  return {
    workers: workerCount,
    concurrencyPerWorker: concurrency === "default" ? DEFAULT_CONCURRENCY : concurrency,
    ...(concurrency === "default" ? { defaultConcurrency: true } : {}),
    tasks: n,
    seconds: round(seconds),
    tasksPerSecond: round(n / seconds, 1),
    submitPerSecond: round(n / submitSeconds, 1),
    requestsPerTask: round(storage.total() / n, 3),
    backlogWaitP50Ms: pct(waits, 50),
  };
}

/** Submit-to-start latency with running workers and tasks arriving at a steady rate. */
async function latency(n: number, workerCount: number) {
  const queue = new Queue({ storage: s3(), prefix: await provenPrefix(`latency-${workerCount}`) });
  // Local times, both in this process: a task's createdAt and startedAt are server-time
  // estimates from Date headers (second resolution), too coarse for sub-second latencies.
  const submittedAt = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const workers = Array.from({ length: workerCount }, () =>
    new Worker(queue, { concurrency: Number(args.concurrency), heartbeatSeconds: 60 }).task(
      "noop",
      (_input, ctx) => {
        startedAt.set(ctx.task.id, Date.now());
        return null;
      },
    ),
  );
  await Promise.all(workers.map((w) => w.start()));
  await sleep(2000);
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    submittedAt.set((await queue.submit("noop", i)).id, t0);
    await sleep(50); // 20 tasks per second
  }
  await untilDone(workers, n);
  await Promise.all(workers.map((w) => w.stop()));
  const waits = [...submittedAt]
    .map(([id, t0]) => (startedAt.get(id) ?? Number.NaN) - t0)
    .sort((a, b) => a - b);
  return {
    workers: workerCount,
    tasks: n,
    arrivalsPerSecond: 20,
    p50Ms: pct(waits, 50),
    p99Ms: pct(waits, 99),
    maxMs: waits.at(-1),
  };
}

/**
 * Claim throughput of one worker (concurrency as set) draining `n` pre-submitted no-op tasks,
 * in a queue that also holds `stored` finished tasks. Trials alternate between an empty queue
 * and the full one, so drift in the machine's speed hits both alike, after one untimed warm-up
 * drain each (JIT, MinIO caches). The worker never lists `tasks/`, so the two must stay within
 * noise; the request counts per claim show why.
 */
async function claimThroughput(stored: number, n: number, trials: number) {
  const empty = await provenPrefix("claims-0");
  const { prefix: full, storeSeconds } = await finishedPrefix(stored);
  const runs: Record<string, { tasksPerSecond: number; counts: CountedStorage["counts"] }[]> = {
    [empty]: [],
    [full]: [],
  };
  for (let trial = -1; trial < trials; trial++) {
    for (const prefix of trial % 2 === 0 ? [empty, full] : [full, empty]) {
      const storage = countRequests(s3());
      const queue = new Queue({ storage, prefix });
      await queue.submitMany(
        Array.from({ length: n }, (_, i) => ({ type: "noop", input: i })),
        { concurrency: 32 },
      );
      storage.reset();
      const worker = new Worker(queue, {
        concurrency: Number(args.concurrency),
        heartbeatSeconds: 60,
      }).task("noop", noop);
      const start = Date.now();
      await worker.start();
      await untilDone([worker], n);
      const seconds = (Date.now() - start) / 1000;
      await worker.stop();
      if (trial >= 0)
        runs[prefix]!.push({ tasksPerSecond: n / seconds, counts: { ...storage.counts } });
    }
  }
  const summary = (list: { tasksPerSecond: number; counts: CountedStorage["counts"] }[]) => {
    const rates = list.map((r) => r.tasksPerSecond).sort((a, b) => a - b);
    const counts = list.reduce(
      (acc, r) => {
        for (const [k, v] of Object.entries(r.counts)) acc[k as keyof typeof acc] += v;
        return acc;
      },
      { GET: 0, HEAD: 0, PUT: 0, POST: 0, LIST: 0, DELETE: 0 },
    );
    return {
      tasksPerSecond: round(rates[Math.floor(rates.length / 2)]!, 1),
      trials: rates.map((r) => round(r, 1)),
      requestsPerClaim: perTask(counts, n * list.length),
    };
  };
  const without = summary(runs[empty]!);
  const withStored = summary(runs[full]!);
  return {
    storedTasks: stored,
    storeSeconds: round(storeSeconds, 1),
    tasks: n,
    concurrency: Number(args.concurrency),
    empty: without,
    stored: withStored,
    ratio: round(withStored.tasksPerSecond / without.tasksPerSecond, 3),
  };
}

async function cleanup() {
  const storage = s3();
  for (const prefix of prefixes) {
    for (;;) {
      const page = await storage.listVersions({ prefix });
      if (page.versions.length === 0) break;
      await mapLimit(page.versions, 32, (v) => storage.deleteVersion!(v.key, v.versionId));
      if (!page.isTruncated) break;
    }
  }
}

const only = args.only?.split(",");
const want = (name: string) => only === undefined || only.includes(name);
const idleCases = args["idle-cases"].split(",") as IdleCase[];
for (const which of idleCases) {
  if (!IDLE_CASES.includes(which)) {
    console.error(`bench: --idle-cases takes some of ${IDLE_CASES.join(",")}, not "${which}"`);
    process.exit(2);
  }
}
if (args.report && (only !== undefined || idleCases.length < IDLE_CASES.length)) {
  console.error("bench: --report needs every section; drop --only and --idle-cases");
  process.exit(2);
}
const workerCounts = args.workers.split(",").map(Number);
const minioVersion = /MINIO_VERSION="([^"]+)"/.exec(
  readFileSync(new URL("./minio.sh", import.meta.url), "utf8"),
)?.[1];
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  endpoint: "MinIO on 127.0.0.1",
  minio: minioVersion,
  node: process.version,
  http: args.http === "runtime" && httpClient !== undefined ? "node:http" : "fetch",
  cores: os.cpus().length,
  loadAverageAtStart: os.loadavg().map((l) => round(l, 2)),
};
const started = Date.now();
try {
  if (want("requests")) {
    result.requests = [];
    for (const w of workerCounts) {
      const r = await requestsPerTask(Number(args["per-task-tasks"]), w);
      (result.requests as unknown[]).push(r);
      console.log("requests per task", JSON.stringify(r));
    }
  }
  if (want("idle")) {
    const seconds = Number(args["idle-seconds"]);
    const idle: (IdleResult & { case: IdleCase })[] = [];
    result.idle = idle;
    for (const which of idleCases) {
      const caseStart = Date.now();
      const r =
        which === "empty"
          ? await idleCost(0, seconds)
          : which === "finished"
            ? await idleCost(Number(args.stored), seconds)
            : which === "running"
              ? await idleWithRunning(Number(args["running-tasks"]), seconds)
              : await idleWithUnhandled(Number(args["unhandled-tasks"]), seconds);
      idle.push(r);
      console.log("idle worker", JSON.stringify(r));
      console.error(
        `bench: idle case ${which} took ${Math.round((Date.now() - caseStart) / 1000)} s`,
      );
    }
    for (const r of idle) {
      const failure = idleSetupFailure(r);
      if (failure !== undefined)
        console.error(`bench: the idle case ${r.case} was not measured as set up: ${failure}`);
      else if (r.perMinute > IDLE_CEILING_PER_MINUTE)
        console.error(
          `bench: an idle worker (${r.case}) made ${r.perMinute} requests a minute, above the ceiling of ${IDLE_CEILING_PER_MINUTE}`,
        );
    }
  }
  if (want("stats")) {
    // Before the claims section, whose trials add stopped workers' files to the shared prefix.
    result.stats = [];
    for (const stored of [0, Number(args["stats-finished"])]) {
      const r = await statsCost(stored);
      (result.stats as unknown[]).push(r);
      console.log("stats", JSON.stringify(r));
    }
  }
  if (want("dashboard")) {
    result.dashboard = await dashboardCost(
      Number(args["dashboard-finished"]),
      Number(args["dashboard-repetitions"]),
    );
    console.log("dashboard", JSON.stringify(result.dashboard));
  }
  if (want("limit")) {
    const model = taskModel(result.requests as Parameters<typeof taskModel>[0]);
    const seconds = Number(args["limit-seconds"]);
    result.limit = await storageLimit(s3(), newPrefix("limit"), model, { seconds });
    console.log("limit", JSON.stringify(result.limit));
  }
  if (want("submit")) {
    const concurrency = args["submit-concurrency"];
    result.submit = await submitThroughput(s3(), newPrefix("submit"), {
      tasks: Number(args["submit-tasks"]),
      concurrency: concurrency === undefined ? undefined : Number(concurrency),
      limit: result.limit as LimitResult | undefined,
    });
    console.log("submit", JSON.stringify(result.submit));
  }
  if (want("throughput")) {
    result.throughput = [];
    for (const w of workerCounts) {
      const r = await throughput(Number(args.tasks), w);
      (result.throughput as unknown[]).push(r);
      console.log("throughput", JSON.stringify(r));
    }
    // Issue 15's drain goal is for 4 workers as they come, at the default concurrency: in
    // trials, each between two ceilings of its own (as the submit section measures).
    const model = taskModel(result.requests as Parameters<typeof taskModel>[0]);
    const goal = await drainTrials(
      s3(),
      newPrefix("drain-ceiling"),
      model,
      () => throughput(Number(args.tasks), 4, "default"),
      { trials: Number(args["drain-trials"]) },
    );
    result.drainDefault = {
      ...goal.row,
      trials: goal.trials,
      fractionOfOwnCeiling: goal.fractionOfOwnCeiling,
    };
    console.log("throughput", JSON.stringify(result.drainDefault));
  }
  if (want("latency")) {
    result.latency = [];
    for (const w of workerCounts) {
      const r = await latency(Number(args["latency-tasks"]), w);
      (result.latency as unknown[]).push(r);
      console.log("latency", JSON.stringify(r));
    }
    result.latencyIdle = await latencyAfterIdle({
      s3,
      prefix: provenPrefix,
      workerCounts: args["latency-idle-workers"].split(",").map(Number),
      concurrency: Number(args.concurrency),
      rounds: Number(args["latency-idle-rounds"]),
      idleSeconds: Number(args["latency-idle-seconds"]),
      tasksPerRound: Number(args["latency-idle-tasks"]),
    });
  }
  if (want("index")) {
    result.index = await indexAfterDrain(s3, newPrefix, {
      tasks: Number(args["index-tasks"]),
      lists: Number(args["index-lists"]),
    });
    console.log("index", JSON.stringify(result.index));
  }
  if (want("claims")) {
    result.claims = await claimThroughput(
      Number(args["claim-stored"]),
      Number(args["claim-tasks"]),
      Number(args["claim-trials"]),
    );
    console.log("claims", JSON.stringify(result.claims));
  }
  if (want("bundle")) {
    result.bundle = await bundleSizes(fileURLToPath(new URL("..", import.meta.url)));
    console.log("bundle", JSON.stringify(result.bundle));
  }
  if (want("start")) {
    result.start = await startBench(
      { root: fileURLToPath(new URL("..", import.meta.url)), s3, provenPrefix, env },
      { starts: Number(args["start-runs"]), together: Number(args["start-together"]) },
    );
    console.log("start", JSON.stringify(result.start));
  }
  if (want("memory")) {
    result.memory = await memoryBench(
      { root: fileURLToPath(new URL("..", import.meta.url)), s3, provenPrefix, env },
      {
        tasks: Number(args["memory-tasks"]),
        idleSeconds: Number(args["memory-idle-seconds"]),
        concurrency: Number(args.concurrency),
      },
    );
    console.log("memory", JSON.stringify(result.memory));
  }
} finally {
  if (needsS3) await cleanup();
}
result.seconds = Math.round((Date.now() - started) / 1000);
result.loadAverageAtEnd = os.loadavg().map((l) => round(l, 2));
if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
if (args.report) {
  const report = await import("./bench-report.ts");
  const chaos = args.chaos === undefined ? undefined : JSON.parse(readFileSync(args.chaos, "utf8"));
  report.writeReport({
    result: result as never,
    chaos,
    resultsPath: args.results,
    mdPath: args.md,
    svgPath: args.svg,
  });
}
