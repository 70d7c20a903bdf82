/**
 * Submit-to-start latency under a steady 5 tasks a second, including the first tasks after an
 * idle spell (issue 15, item 4). scripts/bench.ts runs it as part of its `latency` section and
 * scripts/bench-report.ts renders it with {@link renderLatencyIdle}.
 *
 * Each run starts N workers (default options: 250 ms to 6 s between polls), then repeats rounds
 * of an idle spell (long enough for every worker's poll interval to reach its 6 s ceiling, plus
 * a random part so the stream starts at a random point of the workers' pauses) followed by a
 * stream of tasks submitted one at a time at a steady rate. A task submitted within the first
 * 6 s of a stream (one ceiling pause) counts as "after idle"; the rest as steady. Two submitters:
 * the workers' own `Queue` object (a local submit wakes an idle worker at once) and another
 * `Queue` object on its own client (as another process: nothing reaches the workers but storage,
 * so they see the task at their next poll).
 */
import { Queue } from "../src/queue/queue.ts";
import { type CountedStorage, countRequests } from "../src/storage/count.ts";
import type { Storage } from "../src/storage/storage.ts";
import { Worker } from "../src/worker/worker.ts";

/** Who submits: the workers' own queue object, or another one (as another process would). */
export type Submitter = "same-queue" | "other-queue";

/** Percentiles of a set of submit-to-start waits, ms. */
export interface Waits {
  tasks: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** One run: a submitter and a worker count over several idle spells and streams. */
export interface LatencyIdleRun {
  submitter: Submitter;
  workers: number;
  concurrencyPerWorker: number;
  rounds: number;
  /** The shortest idle spell before a stream, s (each adds a random 0-6 s). */
  idleSeconds: number;
  tasksPerRound: number;
  arrivalsPerSecond: number;
  /** Tasks submitted within this long of a stream's start count as after idle, ms. */
  afterIdleWindowMs: number;
  steady: Waits;
  afterIdle: Waits;
  all: Waits;
  /** The wait of each stream's first task, ms. */
  firstTaskMs: number[];
  /** Requests of workers and submitter per task, counted while the streams ran. */
  requestsPerTask: number;
  /** The workers' requests per worker-minute in the settled part of the idle spells. */
  idlePerWorkerMinute: number;
}

/** The section's result: one run per submitter and worker count. */
export interface LatencyIdleResult {
  runs: LatencyIdleRun[];
}

/** What the section needs from scripts/bench.ts. */
export interface LatencyIdleSetup {
  /** A fresh S3 client. */
  s3: () => Storage;
  /** A fresh prefix with a cached doctor verdict. */
  prefix: (name: string) => Promise<string>;
  workerCounts: number[];
  concurrency: number;
  rounds: number;
  idleSeconds: number;
  tasksPerRound: number;
}

const ARRIVALS_PER_SECOND = 5;
/** One pause at the workers' default ceiling (`maxPollMs`). */
const CEILING_MS = 6000;
/** The idle spell's part that is counted for idle cost starts this long after the last start. */
const IDLE_SETTLE_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

function waits(list: number[]): Waits {
  const sorted = [...list].sort((a, b) => a - b);
  return {
    tasks: sorted.length,
    p50Ms: round(pct(sorted, 50), 0),
    p99Ms: round(pct(sorted, 99), 0),
    maxMs: round(sorted.at(-1) ?? Number.NaN, 0),
  };
}

/** Every run of the section: each submitter against each worker count. */
export async function latencyAfterIdle(setup: LatencyIdleSetup): Promise<LatencyIdleResult> {
  const runs: LatencyIdleRun[] = [];
  for (const workers of setup.workerCounts) {
    for (const submitter of ["same-queue", "other-queue"] as const) {
      const run = await latencyRun(setup, submitter, workers);
      runs.push(run);
      console.log("latency after idle", JSON.stringify(run));
    }
  }
  return { runs };
}

/** One submitter against `workerCount` workers: idle spells, each followed by a stream. */
async function latencyRun(
  setup: LatencyIdleSetup,
  submitter: Submitter,
  workerCount: number,
): Promise<LatencyIdleRun> {
  const prefix = await setup.prefix(`latency-idle-${submitter}-${workerCount}`);
  const storage = countRequests(setup.s3());
  const queue = new Queue({ storage, prefix });
  const submitStorage = submitter === "same-queue" ? storage : countRequests(setup.s3());
  const submitQueue =
    submitter === "same-queue" ? queue : new Queue({ storage: submitStorage, prefix });
  const startedAt = new Map<string, number>();
  const workers = Array.from({ length: workerCount }, () =>
    new Worker(queue, { concurrency: setup.concurrency, heartbeatSeconds: 60 }).task(
      "noop",
      (_input, ctx) => {
        startedAt.set(ctx.task.id, Date.now());
        return null;
      },
    ),
  );
  await Promise.all(workers.map((w) => w.start()));
  const steady: number[] = [];
  const afterIdle: number[] = [];
  const firstTaskMs: number[] = [];
  let streamRequests = 0;
  let idleRequests = 0;
  let idleMs = 0;
  let lastStart = Date.now();
  try {
    for (let r = 0; r < setup.rounds; r++) {
      // The idle spell: the settled part is counted (the workers' own requests only).
      const spellEnd = lastStart + setup.idleSeconds * 1000 + Math.random() * CEILING_MS;
      await sleep(lastStart + IDLE_SETTLE_MS - Date.now());
      const counted = reset(storage);
      await sleep(spellEnd - Date.now());
      idleRequests += total(storage);
      idleMs += Date.now() - counted;
      reset(storage);
      if (submitStorage !== storage) reset(submitStorage);
      const stream = await submitStream(submitQueue, setup.tasksPerRound, startedAt);
      streamRequests += total(storage) + (submitStorage === storage ? 0 : total(submitStorage));
      firstTaskMs.push(stream[0]!.waitMs);
      for (const t of stream) (t.offsetMs < CEILING_MS ? afterIdle : steady).push(t.waitMs);
      lastStart = Math.max(...stream.map((t) => t.submittedAt + t.waitMs));
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  const tasks = setup.rounds * setup.tasksPerRound;
  return {
    submitter,
    workers: workerCount,
    concurrencyPerWorker: setup.concurrency,
    rounds: setup.rounds,
    idleSeconds: setup.idleSeconds,
    tasksPerRound: setup.tasksPerRound,
    arrivalsPerSecond: ARRIVALS_PER_SECOND,
    afterIdleWindowMs: CEILING_MS,
    steady: waits(steady),
    afterIdle: waits(afterIdle),
    all: waits([...steady, ...afterIdle]),
    firstTaskMs: firstTaskMs.map((n) => round(n, 0)),
    requestsPerTask: round(streamRequests / tasks, 2),
    idlePerWorkerMinute: round((idleRequests * 60_000) / idleMs / workerCount, 1),
  };
}

/** Reset `storage`'s counts; returns the local time it did. */
function reset(storage: CountedStorage): number {
  storage.reset();
  return Date.now();
}

const total = (storage: CountedStorage) => storage.total();

/**
 * Submit `n` no-op tasks one at a time at {@link ARRIVALS_PER_SECOND} (on a fixed schedule, so a
 * slow submit does not slow the rate), then wait until all started. Per task: when it was
 * submitted (local ms), how far into the stream, and its submit-to-start wait.
 */
async function submitStream(
  queue: Queue,
  n: number,
  startedAt: ReadonlyMap<string, number>,
): Promise<{ submittedAt: number; offsetMs: number; waitMs: number }[]> {
  const t0 = Date.now();
  const submitted: { id: string; submittedAt: number }[] = [];
  for (let i = 0; i < n; i++) {
    await sleep(t0 + (i * 1000) / ARRIVALS_PER_SECOND - Date.now());
    const submittedAt = Date.now();
    submitted.push({ id: (await queue.submit("noop", i)).id, submittedAt });
  }
  const end = Date.now() + 120_000;
  while (submitted.some((s) => !startedAt.has(s.id))) {
    if (Date.now() > end) throw new Error("latency after idle: tasks did not start in 2 min");
    await sleep(20);
  }
  return submitted.map((s) => ({
    submittedAt: s.submittedAt,
    offsetMs: s.submittedAt - t0,
    waitMs: startedAt.get(s.id)! - s.submittedAt,
  }));
}

/** The words for a submitter, for the table. */
const SUBMITTER_TEXT: Record<Submitter, string> = {
  "same-queue": "the workers' own `Queue` object",
  "other-queue": "another `Queue` object (as another process)",
};

/**
 * The markdown section, with the previous run's figures as "(was …)" (`was` formats them, so the
 * report's one style of comparison is kept).
 */
export function renderLatencyIdle(
  run: LatencyIdleResult | undefined,
  previous: LatencyIdleResult | undefined,
  was: (text: string, previous: string | undefined) => string,
): string[] {
  if (run === undefined || run.runs.length === 0) return [];
  const first = run.runs[0]!;
  const ms = (n: number | undefined) =>
    n === undefined ? undefined : `${n.toLocaleString("en-US")} ms`;
  const cell = (n: number, o: number | undefined) => was(ms(n)!, ms(o));
  return [
    "## Latency after an idle spell",
    "",
    `N workers (${first.concurrencyPerWorker} slots each, default polling: 250 ms between polls while there is work, doubling to 6 s when idle) idle ${first.idleSeconds} s plus a random 0-6 s, long enough for their poll interval to reach the 6 s ceiling; then ${first.tasksPerRound} no-op tasks arrive one at a time at ${first.arrivalsPerSecond} a second. ${first.rounds} such rounds per row. Submit-to-start is from calling \`submit()\` to the handler starting (local clock, one process). Tasks submitted within the first ${first.afterIdleWindowMs / 1000} s of a stream count as after idle, the rest as steady; "all" is both. A submit through the workers' own \`Queue\` object wakes one idle worker at once (no request); a submit through another \`Queue\` object, as from another process, reaches the workers only through storage, so its first tasks wait for the next poll: up to one 6 s pause per worker (12 requests per idle worker-minute allow no more polls). Requests per task count workers and submitter while the streams ran; idle cost is the workers' requests in the settled part of the idle spells (short windows, so one heartbeat more or less shows; \`An idle worker\` above is the measure of record).`,
    "",
    "| submitter | workers | steady p50 | steady p99 | after idle p99 | all p99 | all max | first task of each stream | requests per task | idle requests per worker-minute |",
    "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ...run.runs.map((r) => {
      const o = previous?.runs.find((x) => x.submitter === r.submitter && x.workers === r.workers);
      return `| ${SUBMITTER_TEXT[r.submitter]} | ${r.workers} | ${cell(r.steady.p50Ms, o?.steady.p50Ms)} | ${cell(r.steady.p99Ms, o?.steady.p99Ms)} | ${cell(r.afterIdle.p99Ms, o?.afterIdle.p99Ms)} | ${cell(r.all.p99Ms, o?.all.p99Ms)} | ${cell(r.all.maxMs, o?.all.maxMs)} | ${r.firstTaskMs.map((n) => `${n}`).join(", ")} ms | ${was(`${r.requestsPerTask}`, o === undefined ? undefined : `${o.requestsPerTask}`)} | ${was(`${r.idlePerWorkerMinute}`, o === undefined ? undefined : `${o.idlePerWorkerMinute}`)} |`;
    }),
    "",
    `The goal (issue 15) is a p99 of at most 500 ms including the first tasks after idle: ${run.runs.map((r) => `${r.all.p99Ms <= 500 ? "met" : "NOT met"} with ${SUBMITTER_TEXT[r.submitter]} and ${r.workers} worker${r.workers === 1 ? "" : "s"} (${r.all.p99Ms} ms)`).join("; ")}.`,
    "",
  ];
}
