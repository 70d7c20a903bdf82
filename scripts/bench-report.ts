/**
 * Turns the JSON of `scripts/bench.ts` into docs/benchmarks.md and docs/benchmarks.svg (a
 * hand-written SVG: no plotting dependency). `npm run bench` does this after a full run; to
 * redo the documents from a saved run:
 *
 *   npx tsx scripts/bench.ts --json bench.json      # then
 *   npx tsx scripts/bench-report.ts bench.json [--chaos chaos.json] [--previous old.json]
 *
 * Every table shows the previous run's figure beside the new one ("5.03 (was 5.02)"): the previous
 * run is read from docs/benchmarks.json (or `--previous`) before this run is saved over it.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { type BundleResult, renderBundle } from "./bench-bundle.ts";
import { renderGoals } from "./bench-goals.ts";
import { type IndexResult, renderIndex } from "./bench-index.ts";
import { type LatencyIdleResult, renderLatencyIdle } from "./bench-latency.ts";
import {
  type DrainTrial,
  type LimitResult,
  renderLimit,
  type SubmitResult,
} from "./bench-limit.ts";
import { type MemoryResult, renderMemory, type TsxMemoryResult } from "./bench-memory.ts";
import { renderStart, type StartResult } from "./bench-start.ts";
import { PRICE_PER_REQUEST } from "./sim/pricing.ts";
import { renderSoakMarkdown, type SoakResult } from "./soak-report.ts";

type Kinds = Record<"GET" | "HEAD" | "PUT" | "POST" | "LIST" | "DELETE", number>;

/**
 * What the queue holds while the idle worker is measured: nothing, finished tasks, tasks of its
 * type running on other workers, or due tasks of a type it has no handler for.
 */
export const IDLE_CASES = ["empty", "finished", "running", "unhandled"] as const;
/** One of {@link IDLE_CASES}. */
export type IdleCase = (typeof IDLE_CASES)[number];
/** The most requests an idle worker may make per minute in every idle case (issue 10). */
export const IDLE_CEILING_PER_MINUTE = 12;

/** One idle case's measurement (runs before the running and unhandled cases have no `case`). */
export interface IdleResult {
  case?: IdleCase;
  /** The tasks of the case (finished, running or unhandled); 0 for an empty queue. */
  tasks?: number;
  /** The finished tasks stored (0 in the other cases). */
  storedTasks: number;
  seconds: number;
  perMinute: number;
  byKind: Kinds;
  /** running: the other workers holding the tasks, their lease, and what held at the window's end. */
  otherWorkers?: number;
  leaseSeconds?: number;
  runningAtEnd?: number;
  idleClaims?: number;
  leasesLost?: number;
  /** unhandled: how long after they became due submitting them ended (absent when before). */
  lateSeconds?: number;
}

/** The result JSON of scripts/bench.ts (the parts the report reads). */
export interface BenchResult {
  date: string;
  endpoint: string;
  minio?: string;
  node: string;
  cores: number;
  seconds: number;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
  requests: {
    tasks: number;
    workers: number;
    submitPerTask: Kinds;
    workerPerTask: Kinds;
    totalPerTask: Kinds;
    requestsPerTask: number;
    dollarsPerMillionTasks: number;
  }[];
  idle: IdleResult[];
  throughput: {
    workers: number;
    concurrencyPerWorker: number;
    tasks: number;
    seconds: number;
    tasksPerSecond: number;
    submitPerSecond: number;
    requestsPerTask: number;
    backlogWaitP50Ms: number;
  }[];
  /** The drain by 4 workers at the `Worker`'s default concurrency (absent before it was measured). */
  drainDefault?: BenchResult["throughput"][number] & {
    defaultConcurrency?: boolean;
    /** Its trials, each against its own ceiling (absent in older runs). */
    trials?: DrainTrial[];
    /** The median of the trials' fractions: the goal's figure. */
    fractionOfOwnCeiling?: number;
  };
  latency: {
    workers: number;
    tasks: number;
    arrivalsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
  }[];
  /** Latency at 5 tasks/s including the first tasks after idle (absent before it was measured). */
  latencyIdle?: LatencyIdleResult;
  /** The ready index after a drain, markers deleted by version or plainly (absent before it existed). */
  index?: IndexResult;
  claims: {
    storedTasks: number;
    storeSeconds: number;
    tasks: number;
    concurrency: number;
    empty: { tasksPerSecond: number; trials: number[]; requestsPerClaim: Kinds };
    stored: { tasksPerSecond: number; trials: number[]; requestsPerClaim: Kinds };
    ratio: number;
  };
  /** One `queue.stats()` call with 0 and with many stored finished tasks (absent before it existed). */
  stats?: {
    storedTasks: number;
    requests: number;
    byKind: Kinds;
    reported: { LIST: number; GET: number };
    ms: number;
    completedLastHour: number;
  }[];
  /** Loading dashboard pages through its handler with many finished tasks (absent before it existed). */
  dashboard?: {
    storedTasks: number;
    storeSeconds: number;
    repetitions: number;
    pages: {
      page: string;
      path: string;
      medianMs: number;
      maxMs: number;
      requests: number;
      byKind: Kinds;
    }[];
  };
  /** The portable bundle's size (absent before it was measured). */
  bundle?: BundleResult;
  /** The compiled `oq worker`'s RSS (older runs: a tsx-run `Worker`'s). */
  memory: MemoryResult | TsxMemoryResult;
  /** Raw storage rates and the ceiling they set (absent before they were measured). */
  limit?: LimitResult;
  /** `submitMany` against its limit (absent before it was measured). */
  submit?: SubmitResult;
  /** Spawn to first task, and the library's start to first claim (absent before it was measured). */
  start?: StartResult;
  /** The chaos results shown with this run, and the date of the run that produced them. */
  chaos?: { date: string; runs: ChaosRun[] };
  /** Set when the figures were copied from an older report instead of saved by a run. */
  transcribedFrom?: string;
}

const KINDS = ["PUT", "GET", "LIST", "POST", "DELETE", "HEAD"] as const;

const fmt = (n: number, d = 2) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: d }) : "–";
const kinds = (k: Kinds, d = 3) =>
  KINDS.filter((x) => k[x] > 0)
    .map((x) => `${fmt(k[x], d)} ${x}`)
    .join(", ");
const sum = (k: Kinds) => KINDS.reduce((n, x) => n + k[x], 0);
const count = (ids: string[] | number) => (typeof ids === "number" ? ids : ids.length);
/** `text`, then the previous run's figure as " (was …)" when there is one. */
const was = (text: string, previous: string | undefined) =>
  previous === undefined ? text : `${text} (was ${previous})`;
/** A number formatted as `fmt` does, or undefined when the previous run lacks it. */
const fmtOr = (n: number | null | undefined, d = 2, unit = "") =>
  typeof n === "number" ? `${fmt(n, d)}${unit}` : undefined;

/** Which idle case a measurement is (older runs measured only an empty queue and finished tasks). */
const idleCase = (i: IdleResult): IdleCase => i.case ?? (i.storedTasks > 0 ? "finished" : "empty");

/**
 * Why idle case `i` did not measure what it is set up for, or undefined when it did: the running
 * tasks must all still run at the window's end, none of them on the idle worker (a machine too
 * loaded to renew 6 s leases lets them lapse, and the idle worker then takes some and is no
 * longer idle; a lease lost and taken back by another of the busy workers is shown, not
 * disqualifying), and the unhandled tasks must all be stored before they become due.
 */
export function idleSetupFailure(i: IdleResult): string | undefined {
  const n = i.tasks ?? i.storedTasks;
  if (idleCase(i) === "running" && (i.runningAtEnd !== n || (i.idleClaims ?? 0) > 0))
    return `the running tasks did not stay on the other workers (${fmt(i.runningAtEnd ?? 0, 0)} of ${fmt(n, 0)} still ran, the idle worker took ${fmt(i.idleClaims ?? 0, 0)}, ${fmt(i.leasesLost ?? 0, 0)} leases were lost)`;
  if (idleCase(i) === "unhandled" && i.lateSeconds !== undefined)
    return `submitting the tasks ended ${fmt(i.lateSeconds, 1)} s after they became due, so the worker read some before the window`;
  return undefined;
}

/** Each idle case in a few words, for the ceiling's verdict. */
const IDLE_CASE_TEXT: Record<IdleCase, string> = {
  empty: "an empty queue",
  finished: "finished tasks",
  running: "tasks running elsewhere",
  unhandled: "tasks of another type",
};

/**
 * What the queue held in idle case `i` (with the previous run's count when it differs), and for
 * the running case whether the tasks really ran elsewhere all through the window.
 */
function idleHolds(i: IdleResult, previous: IdleResult | undefined): string {
  const n = i.tasks ?? i.storedTasks;
  const before = previous?.tasks ?? previous?.storedTasks;
  const count = was(fmt(n, 0), before === undefined || before === n ? undefined : fmt(before, 0));
  switch (idleCase(i)) {
    case "empty":
      return "nothing";
    case "finished":
      return `${count} finished tasks`;
    case "running": {
      const all = i.runningAtEnd === n ? "all" : `only ${fmt(i.runningAtEnd ?? 0, 0)}`;
      return `${count} \`email\` tasks running on ${i.otherWorkers ?? "?"} other workers (${i.leaseSeconds ?? "?"} s leases); at the window's end ${all} still ran, the idle worker had taken ${fmt(i.idleClaims ?? 0, 0)} of them and ${fmt(i.leasesLost ?? 0, 0)} leases were lost`;
    }
    case "unhandled":
      return `${count} due \`video\` tasks, a type it has no handler for${i.lateSeconds === undefined ? "" : ` (submitting them ended ${fmt(i.lateSeconds, 1)} s after they became due: the worker saw some before the window)`}`;
  }
}

/** The parts of a `scripts/chaos.ts --json` result the report shows. */
export interface ChaosRun {
  scenario: string;
  target: string;
  mode: string;
  tasks: number;
  workersStarted: number;
  faults: Record<string, number>;
  calls: number;
  elapsedMs: number;
  report: {
    // Counts instead of id lists in results transcribed from an older report.
    duplicated: string[] | number;
    executions: number;
    completedTwice: string[] | number;
    lost: string[] | number;
    takeovers: number;
    renewals?: number;
    violations: string[];
  };
  facts: Record<string, unknown>;
  problems: string[];
  ok: boolean;
}

/** What each scenario does, for the table. */
const SCENARIO_TEXT: Record<string, string> = {
  faults: "10% of all storage calls fail (every kind below), 4 workers and the submitter",
  kills:
    "2 workers SIGKILLed at random moments and replaced, 3 rounds; a 3rd frozen (SIGSTOP) for 2.5 leases each round",
  latency: "2% of storage calls take 1-3 s (p99 about 2 s), 4 s leases",
  skew: "worker clocks 5 min fast and 5 min slow; a third of the tasks delayed, a tenth outliving their lease",
  hostile: "another client writes garbage under tasks/, ready/, leases/, schedules/, workers/",
  network:
    "workers reach MinIO through a fault proxy: connection resets, answers of committed writes lost, delays, held connections, then a 20 s storm of 503 SlowDown",
};

/** The faults of a run, by kind; the network scenario's come from its proxy, not the wrapper. */
function faultsOf(c: ChaosRun): Record<string, number> {
  const proxy = c.facts.proxyFaults;
  return c.scenario === "network" && typeof proxy === "object" && proxy !== null
    ? (proxy as Record<string, number>)
    : c.faults;
}

function renderChaos(runs: readonly ChaosRun[], fromDate: string | undefined): string[] {
  const faultText = (f: Record<string, number>) =>
    Object.entries(f)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${fmt(n, 0)}`)
      .join(", ") || "none";
  return [
    "## Under faults: the chaos scenarios at full size",
    "",
    ...(fromDate === undefined
      ? []
      : [
          `Not rerun with this benchmark: these are the chaos results of ${fromDate}, carried over from the previous docs/benchmarks.json.`,
          "",
        ]),
    `From \`npx tsx scripts/chaos.ts --scenario all --tasks ${Math.min(...runs.map((c) => c.tasks))} --json chaos.json\` on a MinIO of the same build (worker processes), rendered here with \`npm run bench -- --chaos chaos.json\`. The invariants (test/chaos/invariants.ts) are checked from every task's full history afterwards: one terminal state, one completion, valid transitions, only the current lease holder writes a running task, no early runs or premature steals by the storage's clock, no loss.`,
    "",
    "| scenario | what | tasks | faults injected | ran twice (at-least-once) | completed twice | lost | elapsed | invariants |",
    "|---|---|---:|---|---:|---:|---:|---:|---|",
    ...runs.map(
      (c) =>
        `| ${c.scenario} | ${SCENARIO_TEXT[c.scenario] ?? ""} | ${fmt(c.tasks, 0)} | ${c.scenario === "kills" ? `${c.facts.kills} kills, ${c.facts.freezes} freezes` : c.scenario === "hostile" ? `${c.facts.garbageWritten} garbage objects` : faultText(faultsOf(c))}${c.calls ? ` (${fmt(c.calls, 0)} calls)` : ""} | ${fmt(count(c.report.duplicated), 0)} | ${fmt(count(c.report.completedTwice), 0)} | ${fmt(count(c.report.lost), 0)} | ${fmt(c.elapsedMs / 1000, 1)} s | ${c.ok ? "all kept" : `BROKEN: ${[...c.report.violations, ...c.problems].slice(0, 2).join("; ")}`} |`,
    ),
  ];
}

/**
 * The markdown report. `svgPath` is where the plot was written (linked relatively); `previous`
 * is the run before this one, whose figures appear beside the new ones as "(was …)".
 */
export function renderMarkdown(
  r: BenchResult,
  svgPath = "docs/benchmarks.svg",
  previous?: BenchResult,
): string {
  const p = previous;
  const idleRows = [...r.idle].sort(
    (a, b) => IDLE_CASES.indexOf(idleCase(a)) - IDLE_CASES.indexOf(idleCase(b)),
  );
  const previousIdle = (i: IdleResult) => p?.idle.find((x) => idleCase(x) === idleCase(i));
  const idleFailed = idleRows.filter((i) => idleSetupFailure(i) !== undefined);
  const idleAbove = idleRows.filter(
    (i) => i.perMinute > IDLE_CEILING_PER_MINUTE && !idleFailed.includes(i),
  );
  const idleDollarsPerMonth = (i: IdleResult) =>
    KINDS.reduce((n, k) => n + (i.byKind[k] / i.seconds) * 60 * PRICE_PER_REQUEST[k], 0) *
    60 *
    24 *
    30;
  /** The previous run's breakdown by kind, on a line of its own in the same cell. */
  const wasKinds = (text: string, k: Kinds | undefined, withTotal = false) =>
    k === undefined
      ? text
      : `${text}<br>(was ${kinds(k)}${withTotal ? ` (${fmt(sum(k), 3)})` : ""})`;
  const c = r.claims;
  const pc = p?.claims;
  const submitRate = (x: BenchResult) =>
    Math.max(...x.throughput.map((t) => t.submitPerSecond).filter((n) => typeof n === "number"));
  const lines = [
    "# Benchmarks",
    "",
    "Generated by `npm run bench` (scripts/bench.ts, which starts a private MinIO, runs every",
    "section and writes this file, `benchmarks.svg` and `benchmarks.json`; scripts/bench-report.ts",
    "renders them). Regenerate with:",
    "",
    "```sh",
    "npm run bench",
    "```",
    "",
    `Run of ${r.date}: ${r.endpoint} (MinIO ${r.minio ?? "?"}, single drive), Node ${r.node}, ${r.cores} cores shared by MinIO, the workers and the benchmark itself; load average ${r.loadAverageAtStart.join(" / ")} at the start and ${r.loadAverageAtEnd.join(" / ")} at the end (1 / 5 / 15 min); ${Math.max(1, Math.round(r.seconds / 60))} min in all.`,
    "Request counts are exact and carry over to any S3 provider; times are this machine's, where",
    "MinIO competes with the workers for two cores, so absolute throughput and latency on AWS or R2",
    "will differ (network round trips instead of CPU). Compare times between runs as ratios, and",
    "mind the load average of each.",
    "",
    ...(p === undefined
      ? []
      : [
          `**Previous figures**, shown as "(was …)" beside the new ones, are those of the run of ${p.date} (load average ${p.loadAverageAtStart.join(" / ")} at its start and ${p.loadAverageAtEnd.join(" / ")} at its end)${p.transcribedFrom === undefined ? ", read from benchmarks.json before this run replaced it" : `, transcribed from ${p.transcribedFrom.split(",")[0]} into benchmarks.json`}.`,
          "",
        ]),
    "Workers require a doctor verdict before their first claim, and the verdict is cached per",
    "queue prefix. The benchmark proves each prefix it uses once in its setup, outside the counts",
    "and timings (the probe is about 160 requests, paid once a day per path, not per task); every",
    "worker start then reads the cached verdict, one GET, which is counted like any other request.",
    "",
    ...renderGoals(r, p),
    "## Requests per task, and what they cost",
    "",
    "Every storage request of submitting and completing no-op tasks, counted by kind (submit: the",
    "marker and the task; worker: the verdict read at start, the read, the claim, the completion,",
    "its share of listings, heartbeats and the batched marker deletes). Dollars at AWS S3 Standard",
    "list prices (PUT, POST, LIST $0.005 per 1,000; GET $0.0004 per 1,000; DELETE free).",
    "",
    "| workers | tasks | submit | worker | total requests per task | $ per million tasks |",
    "|---:|---:|---|---|---:|---:|",
    ...r.requests.map((q) => {
      const o = p?.requests.find((x) => x.workers === q.workers);
      return `| ${q.workers} | ${q.tasks} | ${wasKinds(kinds(q.submitPerTask), o?.submitPerTask)} | ${wasKinds(kinds(q.workerPerTask), o?.workerPerTask)} | ${was(fmt(q.requestsPerTask, 3), fmtOr(o?.requestsPerTask, 3))} | ${was(`$${fmt(q.dollarsPerMillionTasks)}`, o ? `$${fmt(o.dollarsPerMillionTasks)}` : undefined)} |`;
    }),
    "",
    "A GET beyond the one per task is a read of a task that another worker claimed (or finished)",
    "since the listing it came from: workers racing over one backlog waste more of them, and GETs",
    "are the cheapest request (a tenth of a PUT). Most are reads of tasks already finished: a",
    "finished task's marker is deleted in a batch (after up to 500 ms, then one `DeleteObjects`),",
    "and every listing in between still shows it, so their number grows with the worker count and",
    "with how slow the machine is, and varies from run to run.",
    "",
    "## An idle worker",
    "",
    "Requests per minute of one worker with nothing it may do (a handler for `email`, one slot,",
    "the monitor on, as by default), counted on its own storage client so that no other worker's",
    "requests reach the count, in a window that opens once its poll interval has backed off to",
    `the 6 s ceiling (15 s after its start)${idleRows.some((i) => i.seconds < 60) ? "; a window shorter than a minute is scaled to one" : ""}. The queue holds:`,
    "",
    "- nothing;",
    "- finished tasks, to show that idle cost does not grow with history;",
    "- `email` tasks running on other workers (100 slots each, handlers that run through the",
    "  whole measurement, 6 s leases that their workers renew), claimed before the idle worker",
    "  starts: it has a free slot and they are of its type, but a live lease is not its to take;",
    "- due `video` tasks, a type the idle worker has no handler for, that nobody runs. They are",
    "  submitted as it starts and become due 60 s later, as the window opens, so its polling",
    "  settles first and the window is the first minute in which they are due.",
    "",
    "| the queue holds | requests per worker-minute | by kind (in the measured window) | $ per idle worker-month |",
    "|---|---:|---|---:|",
    ...idleRows.map((i) => {
      const o = previousIdle(i);
      return `| ${idleHolds(i, o)} | ${was(fmt(i.perMinute, 1), fmtOr(o?.perMinute, 1))} | ${was(`${kinds(i.byKind, 0) || "none"} in ${i.seconds} s`, o ? `${kinds(o.byKind, 0) || "none"} in ${o.seconds} s` : undefined)} | ${was(`$${fmt(idleDollarsPerMonth(i), 3)}`, o ? `$${fmt(idleDollarsPerMonth(o), 3)}` : undefined)} |`;
    }),
    "",
    `The ceiling is ${IDLE_CEILING_PER_MINUTE} requests per idle worker-minute in every case: ${idleAbove.length === 0 ? `kept in all${idleFailed.length === 0 ? "" : " measured"}.` : `ABOVE it with ${idleAbove.map((i) => `${IDLE_CASE_TEXT[idleCase(i)]} (${fmt(i.perMinute, 1)})`).join(", ")}.`}${idleFailed.map((i) => ` NOT MEASURED as set up, ${IDLE_CASE_TEXT[idleCase(i)]}: ${idleSetupFailure(i)}; rerun on a quieter machine.`).join("")}`,
    "",
    "## Throughput and submit-to-start latency",
    "",
    `![Throughput and latency against worker count](${basename(svgPath)})`,
    "",
    `Throughput: ${r.throughput[0]?.tasks ?? "?"} no-op tasks submitted first, then drained by N workers of ${r.throughput[0]?.concurrencyPerWorker ?? "?"} slots each (wall time from start to the last completion, the verdict read included). Latency: tasks submitted one at a time at ${r.latency[0]?.arrivalsPerSecond ?? "?"} per second to N running workers, from calling \`submit()\` to the handler starting (local clock, same process). Workers back off while idle (up to 6 s between polls), so the first tasks of the stream wait longest: that is the p99; the p50 is the steady state of polling every 250 ms while there is work.${p === undefined ? "" : " The plot's faint dotted lines are the previous run."}`,
    "",
    "| workers | tasks/s | requests per task | backlog wait p50 | latency p50 | latency p99 | latency max |",
    "|---:|---:|---:|---:|---:|---:|---:|",
    ...r.throughput.map((t) => {
      const l = r.latency.find((x) => x.workers === t.workers);
      const ot = p?.throughput.find((x) => x.workers === t.workers);
      const ol = p?.latency.find((x) => x.workers === t.workers);
      const ms = (n: number | undefined) => (n === undefined ? undefined : `${fmt(n, 0)} ms`);
      return `| ${t.workers} | ${was(fmt(t.tasksPerSecond, 1), fmtOr(ot?.tasksPerSecond, 1))} | ${was(fmt(t.requestsPerTask, 3), fmtOr(ot?.requestsPerTask, 3))} | ${was(`${fmt(t.backlogWaitP50Ms / 1000, 1)} s`, fmtOr(ot === undefined ? undefined : ot.backlogWaitP50Ms / 1000, 1, " s"))} | ${l ? was(`${fmt(l.p50Ms, 0)} ms`, ms(ol?.p50Ms)) : "–"} | ${l ? was(`${fmt(l.p99Ms, 0)} ms`, ms(ol?.p99Ms)) : "–"} | ${l ? was(`${fmt(l.maxMs, 0)} ms`, ms(ol?.maxMs)) : "–"} |`;
    }),
    "",
    `Submitting runs at about ${was(fmt(submitRate(r), 0), p ? fmt(submitRate(p), 0) : undefined)} tasks a second from one process (32 at a time, two PUTs each).`,
    "",
    ...renderLimit(r, p, was),
    ...renderLatencyIdle(r.latencyIdle, p?.latencyIdle, was),
    ...renderIndex(r.index, p?.index, was),
    "## Claim throughput does not depend on stored history",
    "",
    `One worker (${c.concurrency} slots) drains ${fmt(c.tasks, 0)} tasks in an empty queue and in one that also holds ${fmt(c.storedTasks, 0)} finished tasks (written in ${was(`${fmt(c.storeSeconds, 0)} s`, fmtOr(pc?.storeSeconds, 0, " s"))} beforehand), in ${c.empty.trials.length} alternating trials each after an untimed warm-up; the median counts. Each trial starts a new worker, which reads the cached verdict (one GET, counted).`,
    "",
    "| stored finished tasks | claims/s (median) | trials | requests per claim |",
    "|---:|---:|---|---|",
    `| 0 | ${was(fmt(c.empty.tasksPerSecond, 1), fmtOr(pc?.empty.tasksPerSecond, 1))} | ${wasList(c.empty.trials, pc?.empty.trials)} | ${wasKinds(`${kinds(c.empty.requestsPerClaim)} (${fmt(sum(c.empty.requestsPerClaim), 3)})`, pc?.empty.requestsPerClaim, true)} |`,
    `| ${fmt(c.storedTasks, 0)} | ${was(fmt(c.stored.tasksPerSecond, 1), fmtOr(pc?.stored.tasksPerSecond, 1))} | ${wasList(c.stored.trials, pc?.stored.trials)} | ${wasKinds(`${kinds(c.stored.requestsPerClaim)} (${fmt(sum(c.stored.requestsPerClaim), 3)})`, pc?.stored.requestsPerClaim, true)} |`,
    "",
    `Ratio ${was(fmt(c.ratio, 3), fmtOr(pc?.ratio, 3))}: ${Math.abs(1 - c.ratio) <= 0.1 ? "within" : "OUTSIDE"} the 10% the design allows. LISTs per claim (${fmt(c.empty.requestsPerClaim.LIST, 3)} and ${fmt(c.stored.requestsPerClaim.LIST, 3)}) and GETs per claim (${fmt(c.empty.requestsPerClaim.GET, 3)} and ${fmt(c.stored.requestsPerClaim.GET, 3)}) do not grow with the stored tasks: a worker lists only the ready index (non-terminal tasks) and reads only the tasks it tries to claim.`,
    "",
    ...renderStats(r.stats, p?.stats),
    ...renderDashboard(r.dashboard, p?.dashboard),
    ...renderBundle(r.bundle, p?.bundle),
    ...renderStart(r.start, p?.start ?? undefined, was),
    ...renderMemory(r.memory, p?.memory, was),
    ...(r.chaos === undefined || r.chaos.runs.length === 0
      ? [
          "## Under faults",
          "",
          "Correctness under crashes, injected storage faults, slow storage, skewed clocks and hostile",
          "bucket contents is proven by the chaos scenarios (`test/chaos/`, run small by `npm test`,",
          "and large by `npx tsx scripts/chaos.ts --scenario all --tasks 2000`).",
        ]
      : renderChaos(r.chaos.runs, r.chaos.date === r.date ? undefined : r.chaos.date)),
    "",
  ];
  return lines.join("\n");
}

/** The section on the cost of `queue.stats()`, when the run measured it. */
function renderStats(runs: BenchResult["stats"], previous: BenchResult["stats"]): string[] {
  if (runs === undefined || runs.length === 0) return [];
  const same = runs.every((x) => x.requests === runs[0]!.requests);
  return [
    "## `queue.stats()` does not depend on finished tasks",
    "",
    "One `queue.stats()` call in a queue with two task types (10 due and 10 delayed tasks of one),",
    "a stopped worker's counts and a live worker's heartbeat (20 tasks completed each), with and",
    "without stored finished tasks. Requests as counted by the storage client; time the median of",
    "three calls.",
    "",
    "| stored finished tasks | requests | by kind | time |",
    "|---:|---:|---|---:|",
    ...runs.map((x) => {
      const o = previous?.find((y) => y.storedTasks === x.storedTasks);
      return `| ${fmt(x.storedTasks, 0)} | ${was(String(x.requests), o === undefined ? undefined : String(o.requests))} | ${kinds(x.byKind, 0)} | ${was(`${fmt(x.ms, 1)} ms`, fmtOr(o?.ms, 1, " ms"))} |`;
    }),
    "",
    `${same ? "The same requests" : "DIFFERENT requests"} with and without them: the live counts come from the ready index (non-terminal tasks only) and the finished counts from the workers' heartbeats, never from \`tasks/\`.`,
    "",
  ];
}

/** The section on loading dashboard pages, when the run measured it. */
function renderDashboard(
  run: BenchResult["dashboard"],
  previous: BenchResult["dashboard"],
): string[] {
  if (run === undefined) return [];
  return [
    "## Dashboard pages with many finished tasks",
    "",
    `Each page of the dashboard loaded ${run.repetitions} times through its handler (\`createDashboard\`, no HTTP server), in a queue holding ${fmt(run.storedTasks, 0)} completed tasks noted in the finished journal, 20 pending tasks of another type and one live worker. Time the median and maximum of the loads; requests as counted by the storage client on the last load.`,
    "",
    "| page | median | max | requests | by kind |",
    "|---|---:|---:|---:|---|",
    ...run.pages.map((x) => {
      const o = previous?.pages.find((y) => y.path === x.path);
      return `| ${x.page} (\`${x.path}\`) | ${was(`${fmt(x.medianMs, 1)} ms`, fmtOr(o?.medianMs, 1, " ms"))} | ${was(`${fmt(x.maxMs, 1)} ms`, fmtOr(o?.maxMs, 1, " ms"))} | ${was(String(x.requests), o === undefined ? undefined : String(o.requests))} | ${kinds(x.byKind, 0)} |`;
    }),
    "",
    "The overview reads the ready index and the workers' heartbeats (`queue.stats()`), never `tasks/`; the task list reads one journal of recent finished tasks and one GET per task shown.",
    "",
  ];
}

/** Trials as a list, then the previous run's on a line of its own. */
function wasList(trials: number[], previous: number[] | undefined): string {
  const list = (t: number[]) => t.map((x) => fmt(x, 1)).join(", ");
  return previous === undefined ? list(trials) : `${list(trials)}<br>(was ${list(previous)})`;
}

/**
 * A two-panel plot: throughput, and latency p50/p99, against worker count; the previous run's
 * lines, when given, faint and dotted behind the new ones.
 */
export function renderSvg(r: BenchResult, previous?: BenchResult): string {
  const W = 760;
  const H = 340;
  const panel = { w: 300, h: 220, top: 60 };
  const lefts = [70, 440];
  const workers = r.throughput.map((t) => t.workers);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>oq throughput and submit-to-start latency (p50, p99) against worker count: ${r.throughput.map((t) => `${t.workers} workers ${fmt(t.tasksPerSecond, 0)} tasks/s`).join(", ")}</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">oq on MinIO (${r.cores} cores, ${r.date.slice(0, 10)}): throughput and submit-to-start latency</text>`,
  ];
  /** An axis maximum and tick step with round numbers, at most 5 ticks. */
  const niceScale = (v: number) => {
    const raw = Math.max(v, 1e-9) / 4;
    const p = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
    return { max: Math.ceil(v / step) * step, step };
  };
  const axis = (
    left: number,
    title: string,
    unit: string,
    scale: { max: number; step: number },
    series: { name: string; color: string; values: number[]; dash?: string }[],
    before: { color: string; values: (number | undefined)[] }[],
  ) => {
    const { w, h, top } = panel;
    const max = scale.max;
    const x = (i: number) => left + (w * (i + 0.5)) / workers.length;
    const y = (v: number) => top + h - (h * v) / max;
    out.push(
      `<text x="${left + w / 2}" y="${top - 14}" text-anchor="middle" font-size="13" font-weight="600">${title}</text>`,
    );
    for (let v = 0; v <= max + 1e-9; v += scale.step) {
      out.push(
        `<line x1="${left}" x2="${left + w}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`,
        `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${fmt(v, 1)}</text>`,
      );
    }
    out.push(
      `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + h}" stroke="#333"/>`,
      `<line x1="${left}" x2="${left + w}" y1="${top + h}" y2="${top + h}" stroke="#333"/>`,
      `<text x="${left - 48}" y="${top + h / 2}" text-anchor="middle" transform="rotate(-90 ${left - 48} ${top + h / 2})" fill="#333">${unit}</text>`,
      `<text x="${left + w / 2}" y="${top + h + 36}" text-anchor="middle" fill="#333">workers (${r.throughput[0]?.concurrencyPerWorker ?? "?"} slots each)</text>`,
    );
    workers.forEach((n, i) => {
      out.push(
        `<text x="${x(i)}" y="${top + h + 18}" text-anchor="middle" fill="#333">${n}</text>`,
      );
    });
    for (const s of before) {
      const at = s.values.flatMap((v, i) =>
        v === undefined ? [] : [[x(i).toFixed(1), y(v).toFixed(1)] as const],
      );
      out.push(
        `<polyline points="${at.map(([px, py]) => `${px},${py}`).join(" ")}" fill="none" stroke="${s.color}" stroke-opacity="0.4" stroke-width="2" stroke-dasharray="2 3"/>`,
        ...at.map(
          ([px, py]) =>
            `<circle cx="${px}" cy="${py}" r="3" fill="${s.color}" fill-opacity="0.4"/>`,
        ),
      );
    }
    series.forEach((s, si) => {
      const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      out.push(
        `<polyline points="${pts.join(" ")}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
      );
      s.values.forEach((v, i) => {
        out.push(
          `<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="4" fill="${s.color}"/>`,
          `<text x="${x(i).toFixed(1)}" y="${(y(v) - 9).toFixed(1)}" text-anchor="middle" fill="${s.color}">${fmt(v, v >= 100 ? 0 : 1)}</text>`,
        );
      });
      const lx = left + 10 + si * 110;
      out.push(
        `<line x1="${lx}" x2="${lx + 22}" y1="${top + 10}" y2="${top + 10}" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
        `<text x="${lx + 28}" y="${top + 14}" fill="#333">${s.name}</text>`,
      );
    });
  };
  const tput = r.throughput.map((t) => t.tasksPerSecond);
  const tputBefore = workers.map(
    (n) => previous?.throughput.find((t) => t.workers === n)?.tasksPerSecond,
  );
  const known = (list: (number | undefined)[]) => list.filter((v) => v !== undefined);
  axis(
    lefts[0]!,
    "Throughput (no-op tasks)",
    "tasks per second",
    niceScale(Math.max(...tput, ...known(tputBefore)) * 1.15),
    [{ name: "tasks/s", color: "#2563eb", values: tput }],
    previous === undefined ? [] : [{ color: "#2563eb", values: tputBefore }],
  );
  const byWorkers = (k: "p50Ms" | "p99Ms") =>
    workers.map((n) => r.latency.find((l) => l.workers === n)?.[k] ?? 0);
  const beforeByWorkers = (k: "p50Ms" | "p99Ms") =>
    workers.map((n) => previous?.latency.find((l) => l.workers === n)?.[k]);
  const p50 = byWorkers("p50Ms");
  const p99 = byWorkers("p99Ms");
  const p50Before = beforeByWorkers("p50Ms");
  const p99Before = beforeByWorkers("p99Ms");
  axis(
    lefts[1]!,
    "Submit-to-start latency",
    "milliseconds",
    niceScale(Math.max(...p99, ...p50, ...known(p99Before), ...known(p50Before)) * 1.15),
    [
      { name: "p50", color: "#16a34a", values: p50 },
      { name: "p99", color: "#dc2626", values: p99, dash: "6 4" },
    ],
    previous === undefined
      ? []
      : [
          { color: "#16a34a", values: p50Before },
          { color: "#dc2626", values: p99Before },
        ],
  );
  out.push(
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle" fill="#777" font-size="11">Generated by npm run bench (scripts/bench.ts) from the run in docs/benchmarks.md${previous === undefined ? "" : `; faint dotted lines: the previous run (${previous.date.slice(0, 10)})`}</text>`,
    "</svg>",
    "",
  );
  return out.join("\n");
}

/**
 * Writes the report of `result`: docs/benchmarks.md and .svg with the previous run's figures
 * beside the new ones, then saves `result` as the JSON the next run compares against. The
 * previous run is `previousPath` (default: `resultsPath` as it is before this call). Chaos
 * results given here are saved with the run; without them the previous run's are carried over
 * with their date.
 */
export function writeReport(options: {
  result: BenchResult;
  chaos?: ChaosRun[];
  resultsPath: string;
  mdPath: string;
  svgPath: string;
  previousPath?: string;
  /** The soak result to include (`npm run soak --json`); default `soak.json` beside `mdPath`. */
  soakPath?: string;
  /**
   * The drive-loss run's section to include as it is (`scripts/chaos.ts --scenario drives`);
   * default `chaos-drives.md` beside `mdPath`.
   */
  drivesPath?: string;
}): void {
  const previousPath = options.previousPath ?? options.resultsPath;
  const previous = existsSync(previousPath)
    ? (JSON.parse(readFileSync(previousPath, "utf8")) as BenchResult)
    : undefined;
  const chaos =
    options.chaos === undefined
      ? (options.result.chaos ?? previous?.chaos)
      : { date: options.result.date, runs: options.chaos };
  const { transcribedFrom: _, ...measured } = options.result;
  const result: BenchResult = { ...measured, ...(chaos === undefined ? {} : { chaos }) };
  writeFileSync(options.svgPath, renderSvg(result, previous));
  // The soak runs on its own (`npm run soak`, 10 minutes); its latest result goes in as it is.
  const soakPath = options.soakPath ?? join(dirname(options.mdPath), "soak.json");
  const soak = existsSync(soakPath)
    ? `\n${renderSoakMarkdown(JSON.parse(readFileSync(soakPath, "utf8")) as SoakResult, relative(dirname(options.mdPath), join(dirname(soakPath), "soak.svg")))}`
    : "";
  // So do the drive-loss and network scenarios' pages (scripts/chaos.ts), as written.
  const drivesPath = options.drivesPath ?? join(dirname(options.mdPath), "chaos-drives.md");
  const drives = existsSync(drivesPath) ? `\n${readFileSync(drivesPath, "utf8")}` : "";
  const networkPath = join(dirname(options.mdPath), "chaos-network.md");
  const network = existsSync(networkPath) ? `\n${readFileSync(networkPath, "utf8")}` : "";
  // And the hour-long process soak's (scripts/soak-processes.ts), as written.
  const processesPath = join(dirname(options.mdPath), "soak-processes.md");
  const processes = existsSync(processesPath) ? `\n${readFileSync(processesPath, "utf8")}` : "";
  writeFileSync(
    options.mdPath,
    renderMarkdown(result, options.svgPath, previous) + soak + processes + drives + network,
  );
  writeFileSync(options.resultsPath, `${JSON.stringify(result, null, 2)}\n`);
  console.error(
    `bench: wrote ${options.mdPath}, ${options.svgPath} and ${options.resultsPath}${previous === undefined ? "" : ` (previous run: ${previous.date})`}`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      chaos: { type: "string" },
      previous: { type: "string" },
      results: { type: "string", default: "docs/benchmarks.json" },
      md: { type: "string", default: "docs/benchmarks.md" },
      svg: { type: "string", default: "docs/benchmarks.svg" },
    },
  });
  const file = positionals[0];
  if (file === undefined) {
    console.error(
      "usage: tsx scripts/bench-report.ts bench.json [--chaos chaos.json] [--previous old.json] [--results docs/benchmarks.json] [--md docs/benchmarks.md] [--svg docs/benchmarks.svg]",
    );
    process.exit(2);
  }
  writeReport({
    result: JSON.parse(readFileSync(file, "utf8")) as BenchResult,
    ...(values.chaos === undefined
      ? {}
      : { chaos: JSON.parse(readFileSync(values.chaos, "utf8")) as ChaosRun[] }),
    resultsPath: values.results,
    mdPath: values.md,
    svgPath: values.svg,
    ...(values.previous === undefined ? {} : { previousPath: values.previous }),
  });
}
