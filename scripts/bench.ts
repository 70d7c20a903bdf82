/**
 * oq's benchmark against a real S3 server (MinIO in CI). Prints numbers; asserts nothing.
 *
 *   npm run bench                       # starts a private MinIO, runs everything, stops it
 *   npx tsx scripts/bench.ts --tasks 2000 --stored 10000 --idle-seconds 60 --json out.json
 *
 * Needs OQ_TEST_S3_ENDPOINT, OQ_TEST_S3_BUCKET, OQ_TEST_S3_ACCESS_KEY_ID and
 * OQ_TEST_S3_SECRET_ACCESS_KEY (scripts/minio.sh start writes them to .minio/env).
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Queue } from "../src/queue.ts";
import { type CountedStorage, countRequests } from "../src/storage/count.ts";
import { S3Storage } from "../src/storage/s3.ts";
import type { Storage } from "../src/storage/storage.ts";
import { encodeTask, type TaskRecord } from "../src/task.ts";
import { Worker } from "../src/worker.ts";

const { values: args } = parseArgs({
  options: {
    tasks: { type: "string", default: "2000" },
    "per-task-tasks": { type: "string", default: "500" },
    stored: { type: "string", default: "10000" },
    "idle-seconds": { type: "string", default: "60" },
    "latency-tasks": { type: "string", default: "200" },
    workers: { type: "string", default: "1,4,8" },
    concurrency: { type: "string", default: "8" },
    json: { type: "string" },
    only: { type: "string" },
  },
});

const env = process.env;
for (const name of [
  "OQ_TEST_S3_ENDPOINT",
  "OQ_TEST_S3_BUCKET",
  "OQ_TEST_S3_ACCESS_KEY_ID",
  "OQ_TEST_S3_SECRET_ACCESS_KEY",
]) {
  if (!env[name]) {
    console.error(
      `bench: ${name} is not set. Start MinIO first: bash scripts/minio.sh start && source .minio/env`,
    );
    process.exit(2);
  }
}

/** AWS S3 Standard list prices per request (us-east-1). */
export const PRICE = {
  PUT: 0.005 / 1000,
  POST: 0.005 / 1000,
  LIST: 0.005 / 1000,
  GET: 0.0004 / 1000,
  HEAD: 0.0004 / 1000,
  DELETE: 0,
};

const s3 = () =>
  new S3Storage({
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
    total += (v / n) * PRICE[k as keyof typeof PRICE] * 1_000_000;
  return round(total, 2);
}

/** Requests per completed task, by kind and phase, for `workerCount` workers. */
async function requestsPerTask(n: number, workerCount: number) {
  const storage = countRequests(s3());
  const queue = new Queue({ storage, prefix: newPrefix(`per-task-${workerCount}`) });
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

/** Write `count` finished task objects directly (no markers), as a long-lived queue accumulates. */
async function storeFinished(storage: Storage, queue: Queue, count: number) {
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
      };
      await storage.put(queue.keys.task(id), encodeTask(task), { contentType: "application/json" });
    }
  };
  await Promise.all(Array.from({ length: 32 }, one));
}

/** Requests an idle worker makes per minute, with `stored` finished tasks in the queue. */
async function idleCost(stored: number, seconds: number) {
  const raw = s3();
  const storage = countRequests(raw);
  const queue = new Queue({ storage, prefix: newPrefix(`idle-${stored}`) });
  if (stored > 0) await storeFinished(raw, queue, stored);
  const worker = new Worker(queue, { heartbeatSeconds: 60 }).task("noop", noop);
  await worker.start();
  // The poll interval grows from 250 ms to its 6 s ceiling; measure the steady state after it.
  await sleep(15_000);
  storage.reset();
  await sleep(seconds * 1000);
  const counts = { ...storage.counts };
  await worker.stop();
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    storedTasks: stored,
    seconds,
    perMinute: round((total * 60) / seconds, 1),
    byKind: counts,
  };
}

/** Time to drain `n` pre-submitted no-op tasks with `workerCount` workers. */
async function throughput(n: number, workerCount: number) {
  const storage = countRequests(s3());
  const queue = new Queue({ storage, prefix: newPrefix(`throughput-${workerCount}`) });
  const submitStart = Date.now();
  const tasks = await queue.submitMany(
    Array.from({ length: n }, (_, i) => ({ type: "noop", input: i })),
    { concurrency: 32 },
  );
  const submitSeconds = (Date.now() - submitStart) / 1000;
  const workers = Array.from({ length: workerCount }, () =>
    new Worker(queue, { concurrency: Number(args.concurrency), heartbeatSeconds: 60 }).task(
      "noop",
      noop,
    ),
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
    concurrencyPerWorker: Number(args.concurrency),
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
  const queue = new Queue({ storage: s3(), prefix: newPrefix(`latency-${workerCount}`) });
  const workers = Array.from({ length: workerCount }, () =>
    new Worker(queue, { concurrency: Number(args.concurrency), heartbeatSeconds: 60 }).task(
      "noop",
      noop,
    ),
  );
  await Promise.all(workers.map((w) => w.start()));
  await sleep(2000);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push((await queue.submit("noop", i)).id);
    await sleep(50); // 20 tasks per second
  }
  await untilDone(workers, n);
  await Promise.all(workers.map((w) => w.stop()));
  const waits = (await Promise.all(ids.map((id) => queue.get(id))))
    .map((t) => Date.parse(t.startedAt!) - Date.parse(t.createdAt))
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

async function cleanup() {
  const storage = s3();
  for (const prefix of prefixes) {
    for (;;) {
      const page = await storage.listVersions({ prefix });
      if (page.versions.length === 0) break;
      await Promise.all(page.versions.map((v) => storage.deleteVersion!(v.key, v.versionId)));
      if (!page.isTruncated) break;
    }
  }
}

const only = args.only?.split(",");
const want = (name: string) => only === undefined || only.includes(name);
const workerCounts = args.workers.split(",").map(Number);
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  endpoint: "MinIO on 127.0.0.1",
  cores: (await import("node:os")).cpus().length,
};
try {
  if (want("requests")) {
    result.requests = [];
    for (const w of [1, 8]) {
      const r = await requestsPerTask(Number(args["per-task-tasks"]), w);
      (result.requests as unknown[]).push(r);
      console.log("requests per task", JSON.stringify(r));
    }
  }
  if (want("idle")) {
    result.idle = [];
    for (const stored of [0, Number(args.stored)]) {
      const r = await idleCost(stored, Number(args["idle-seconds"]));
      (result.idle as unknown[]).push(r);
      console.log("idle worker", JSON.stringify(r));
    }
  }
  if (want("throughput")) {
    result.throughput = [];
    for (const w of workerCounts) {
      const r = await throughput(Number(args.tasks), w);
      (result.throughput as unknown[]).push(r);
      console.log("throughput", JSON.stringify(r));
    }
  }
  if (want("latency")) {
    result.latency = [];
    for (const w of workerCounts) {
      const r = await latency(Number(args["latency-tasks"]), w);
      (result.latency as unknown[]).push(r);
      console.log("latency", JSON.stringify(r));
    }
  }
} finally {
  await cleanup();
}
if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
