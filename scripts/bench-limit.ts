/**
 * Bench sections `limit` and `submit` (issue 15, items 2 and 3): the raw rate of the requests a
 * queue is made of, from one process with a fixed number in flight, the ceiling for any S3
 * queue that follows from it, and how close `queue.submitMany` gets to its share of it.
 *
 * The ceiling of a queue on this storage is what one process could do if it did nothing but a
 * task's requests back to back: a task that needs `p` conditional creates, `o` conditional
 * overwrites and `g` GETs takes at least `p/create + o/overwrite + g/get` seconds of the
 * storage's attention. The per-task counts come from the `requests` section when it ran (its
 * 1-worker row), else from the protocol's model: submit 2 PUT (marker, task), worker 1 GET and
 * 2 PUT (claim, completion); listings, heartbeats and batched deletes add a few hundredths.
 *
 * @module
 */
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import type { Storage } from "../src/storage/storage.ts";

/** Requests in flight for the raw rates (the issue's figures were measured so). */
export const LIMIT_IN_FLIGHT = 32;

/** Per-task requests the ceiling is computed for. */
export interface TaskModel {
  /** PUTs of submitting (the marker, then the task with If-None-Match). */
  submitPuts: number;
  /** PUTs of the worker (the claim and the completion, both If-Match). */
  workerPuts: number;
  /** GETs (the read before the claim, and reads of tasks others took). */
  gets: number;
  /** Where the counts come from. */
  source: "requests section" | "model";
}

/** The result of the `limit` section. */
export interface LimitResult {
  inFlight: number;
  secondsEach: number;
  /** Raw rates, requests per second. */
  createPerSecond: number;
  overwritePerSecond: number;
  getPerSecond: number;
  /** Unconditional PUTs of empty objects (what a marker is), for comparison. */
  plainPutPerSecond: number;
  model: TaskModel;
  /** Tasks per second of the whole life of a task (submit and drain) at the raw rates. */
  tasksPerSecond: number;
  /** Tasks per second of submitting alone: the create rate ÷ PUTs per submitted task. */
  submitTasksPerSecond: number;
  /** Tasks per second of draining alone (the worker's PUTs and GETs). */
  drainTasksPerSecond: number;
}

/** One trial of the `submit` section: a raw create rate, `submitMany`, and the rate again. */
export interface SubmitTrial {
  /** The mean of the raw create rates measured right before and right after the trial. */
  createPerSecond: number;
  /** Those two rates (absent in runs before they were measured on both sides). */
  createBefore?: number;
  createAfter?: number;
  tasksPerSecond: number;
  /** tasksPerSecond ÷ (createPerSecond ÷ PUTs per submitted task). */
  fraction: number;
}

/** The result of the `submit` section. */
export interface SubmitResult {
  tasks: number;
  /** `submitMany`'s concurrency: its default unless `--submit-concurrency` set one. */
  concurrency: number | "default";
  /** Medians of the trials. */
  seconds: number;
  tasksPerSecond: number;
  createPerSecond: number;
  putsPerTask: number;
  requestsPerTask: number;
  /** Median of the trials' fractions of their own limit (the goal is at least 0.85). */
  fractionOfLimit: number;
  /** tasksPerSecond ÷ the `limit` section's submitTasksPerSecond (when it ran). */
  fractionOfLimitSection?: number;
  trials: SubmitTrial[];
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

/** Run `op(lane, i)` with `inFlight` lanes for `seconds`; returns completed ops per second. */
async function rate(
  inFlight: number,
  seconds: number,
  op: (lane: number, i: number) => Promise<unknown>,
): Promise<number> {
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let done = 0;
  const lane = async (l: number) => {
    for (let i = 0; performance.now() < end; i++) {
      await op(l, i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, l) => lane(l)));
  return done / ((performance.now() - start) / 1000);
}

/** A small task-like JSON body, as the raw rates write. */
const rawBody = (lane: number, i: number) =>
  JSON.stringify({ oq: 1, id: `${lane}-${i}`, type: "noop", status: "pending", input: i });

/**
 * The raw rates a drain is made of: conditional overwrites (If-Match, each lane on its own
 * object under `prefix`, so no lane loses a race), then GETs of those objects.
 */
async function drainRates(
  storage: Storage,
  prefix: string,
  inFlight: number,
  seconds: number,
): Promise<{ overwritePerSecond: number; getPerSecond: number }> {
  const json = { contentType: "application/json" };
  const etags = await Promise.all(
    Array.from({ length: inFlight }, async (_, l) => {
      return (await storage.put(`${prefix}own/${l}.json`, rawBody(l, 0), json)).etag;
    }),
  );
  const overwritePerSecond = await rate(inFlight, seconds, async (l, i) => {
    etags[l] = (
      await storage.put(`${prefix}own/${l}.json`, rawBody(l, i), { ...json, ifMatch: etags[l]! })
    ).etag;
  });
  const getPerSecond = await rate(inFlight, seconds, (l) => storage.get(`${prefix}own/${l}.json`));
  return { overwritePerSecond, getPerSecond };
}

/**
 * Raw rates of conditional creates (If-None-Match: * of new small JSON objects), conditional
 * overwrites (If-Match, each lane on its own object, so no lane loses a race), GETs of those
 * objects, and plain PUTs of empty objects, `inFlight` at a time for `seconds` each.
 */
export async function storageLimit(
  storage: Storage,
  prefix: string,
  model: TaskModel,
  options: { inFlight?: number; seconds?: number } = {},
): Promise<LimitResult> {
  const inFlight = options.inFlight ?? LIMIT_IN_FLIGHT;
  const seconds = options.seconds ?? 3;
  const createPerSecond = await rate(inFlight, seconds, (l, i) =>
    storage.put(`${prefix}new/${l}/${i}.json`, rawBody(l, i), {
      contentType: "application/json",
      ifNoneMatch: "*",
    }),
  );
  const { overwritePerSecond, getPerSecond } = await drainRates(storage, prefix, inFlight, seconds);
  const plainPutPerSecond = await rate(inFlight, seconds, (l, i) =>
    storage.put(`${prefix}plain/${l}/${i}`, new Uint8Array(0)),
  );
  const submitSeconds = model.submitPuts / createPerSecond;
  const drainSeconds = model.workerPuts / overwritePerSecond + model.gets / getPerSecond;
  return {
    inFlight,
    secondsEach: seconds,
    createPerSecond: round(createPerSecond, 0),
    overwritePerSecond: round(overwritePerSecond, 0),
    getPerSecond: round(getPerSecond, 0),
    plainPutPerSecond: round(plainPutPerSecond, 0),
    model,
    tasksPerSecond: round(1 / (submitSeconds + drainSeconds), 1),
    submitTasksPerSecond: round(1 / submitSeconds, 1),
    drainTasksPerSecond: round(1 / drainSeconds, 1),
  };
}

/**
 * The per-task counts of the `requests` section's 1-worker row (the least racing), else the
 * protocol's model.
 */
export function taskModel(
  requests:
    | {
        workers: number;
        submitPerTask: { PUT: number };
        workerPerTask: { PUT: number; GET: number };
      }[]
    | undefined,
): TaskModel {
  const one = requests?.find((r) => r.workers === 1);
  if (one === undefined) return { submitPuts: 2, workerPuts: 2, gets: 1, source: "model" };
  return {
    submitPuts: one.submitPerTask.PUT,
    workerPuts: one.workerPerTask.PUT,
    gets: one.workerPerTask.GET,
    source: "requests section",
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/**
 * `queue.submitMany` of `n` small tasks from this process, as a user calls it (its default
 * concurrency unless `concurrency` is given), timed and counted, in `trials` trials. Each trial
 * first measures the raw create rate for `limitSeconds` (as the `limit` section does), so the
 * fraction compares two figures taken seconds apart: the machine's load drifts less in between.
 */
export async function submitThroughput(
  storage: Storage,
  prefix: string,
  options: {
    tasks: number;
    trials?: number;
    limitSeconds?: number;
    concurrency?: number | undefined;
    limit?: LimitResult | undefined;
  },
): Promise<SubmitResult> {
  const n = options.tasks;
  const counted = countRequests(storage);
  const trials: SubmitTrial[] = [];
  const times: number[] = [];
  for (let trial = 0; trial < (options.trials ?? 3); trial++) {
    const createRate = (side: string) =>
      rate(LIMIT_IN_FLIGHT, options.limitSeconds ?? 2, (l, i) =>
        storage.put(`${prefix}raw-${trial}-${side}/${l}/${i}.json`, JSON.stringify({ i }), {
          contentType: "application/json",
          ifNoneMatch: "*",
        }),
      );
    const createBefore = await createRate("before");
    const queue = new Queue({ storage: counted, prefix: `${prefix}queue-${trial}/` });
    const tasks = Array.from({ length: n }, (_, i) => ({ type: "noop", input: { i } }));
    const start = performance.now();
    await queue.submitMany(
      tasks,
      options.concurrency === undefined ? {} : { concurrency: options.concurrency },
    );
    const seconds = (performance.now() - start) / 1000;
    times.push(seconds);
    const createAfter = await createRate("after");
    const create = (createBefore + createAfter) / 2;
    const putsPerTask = counted.counts.PUT / (n * (trial + 1));
    trials.push({
      createPerSecond: round(create, 0),
      createBefore: round(createBefore, 0),
      createAfter: round(createAfter, 0),
      tasksPerSecond: round(n / seconds, 1),
      fraction: round(n / seconds / (create / putsPerTask), 3),
    });
  }
  const tasksPerSecond = median(trials.map((t) => t.tasksPerSecond));
  const all = n * trials.length;
  return {
    tasks: n,
    concurrency: options.concurrency ?? "default",
    seconds: round(median(times)),
    tasksPerSecond,
    createPerSecond: median(trials.map((t) => t.createPerSecond)),
    putsPerTask: round(counted.counts.PUT / all, 3),
    requestsPerTask: round(counted.total() / all, 3),
    fractionOfLimit: median(trials.map((t) => t.fraction)),
    ...(options.limit === undefined
      ? {}
      : { fractionOfLimitSection: round(tasksPerSecond / options.limit.submitTasksPerSecond, 3) }),
    trials,
  };
}

/** Issue 15's goals: submitMany's and draining's fractions of their ceilings. */
export const LIMIT_GOALS = { submitFraction: 0.85, drainFraction: 0.8, drainWorkers: 4 } as const;

/** The parts of a bench run the limit and submit section reads. */
export interface LimitSectionRun {
  limit?: LimitResult;
  submit?: SubmitResult;
  throughput?: DrainRow[];
  /** The drain by 4 workers at the `Worker`'s default concurrency (the goal's case). */
  drainDefault?: DrainRow;
}

/** One drain of the throughput section. */
interface DrainRow {
  workers: number;
  concurrencyPerWorker: number;
  /** True for the run at the `Worker`'s default concurrency. */
  defaultConcurrency?: boolean;
  tasksPerSecond: number;
  /** The goal's drain: its trials, each against the mean of ceilings taken before and after it. */
  trials?: DrainTrial[];
  /** The median of the trials' fractions (the goal's figure when present). */
  fractionOfOwnCeiling?: number;
}

/** A trial's rate: "before → after" when both were measured, else the one (older runs). */
const bracketText = (rate: number, before: number | undefined, after: number | undefined) =>
  before === undefined || after === undefined ? num(rate) : `${num(before)} → ${num(after)}`;

const percent = (x: number | undefined) =>
  x === undefined ? undefined : `${Math.round(x * 1000) / 10}%`;
const num = (x: number | undefined, unit = "") =>
  x === undefined ? undefined : `${x.toLocaleString("en-US")}${unit}`;
const goalText = (x: number, goal: number) =>
  x >= goal ? `≥ ${percent(goal)}: met` : `≥ ${percent(goal)}: **missed**`;

/**
 * The figure the drain goal is judged on: the median fraction of each trial's own ceiling, or
 * (runs before the trials) the fraction of the `limit` section's ceiling.
 */
export function drainGoalFraction(r: LimitSectionRun): number | undefined {
  const d = r.drainDefault;
  if (d === undefined) return undefined;
  if (d.fractionOfOwnCeiling !== undefined) return d.fractionOfOwnCeiling;
  return r.limit === undefined ? undefined : d.tasksPerSecond / r.limit.drainTasksPerSecond;
}

/** The `throughput` rows as fractions of the drain ceiling. */
const drainFractions = (r: LimitSectionRun) =>
  r.limit === undefined
    ? []
    : [...(r.throughput ?? []), ...(r.drainDefault === undefined ? [] : [r.drainDefault])].map(
        (t) => ({ ...t, fraction: t.tasksPerSecond / r.limit!.drainTasksPerSecond }),
      );

/**
 * The section "The storage's limit, and how close submitting and draining get to it" (the
 * `limit` and `submit` sections, and the `throughput` rows against the drain ceiling), with the
 * previous run's figures as "(was …)" and issue 15's goal beside each.
 */
export function renderLimit(
  run: LimitSectionRun,
  previous: LimitSectionRun | undefined,
  was: (text: string, previous: string | undefined) => string,
): string[] {
  const { limit: l, submit: s } = run;
  if (l === undefined && s === undefined) return [];
  const pl = previous?.limit;
  const ps = previous?.submit;
  const lines = ["## The storage's limit, and how close submitting and draining get to it", ""];
  if (l !== undefined) {
    const m = l.model;
    lines.push(
      `Raw request rates this MinIO accepts from one process, ${l.inFlight} requests in flight, ${l.secondsEach} s each (scripts/bench-limit.ts): the ceiling for any S3 queue here. A task needs ${m.submitPuts} PUTs to submit (marker, then the task with If-None-Match) and ${m.workerPuts} conditional PUTs and ${m.gets} GET to drain (${m.source === "model" ? "the protocol's model" : "counted by the requests section, 1 worker"}), so at these rates submitting alone reaches ${was(num(l.submitTasksPerSecond, " tasks/s")!, num(pl?.submitTasksPerSecond, " tasks/s"))}, draining alone ${was(num(l.drainTasksPerSecond, " tasks/s")!, num(pl?.drainTasksPerSecond, " tasks/s"))}, and a task's whole life ${was(num(l.tasksPerSecond, " tasks/s")!, num(pl?.tasksPerSecond, " tasks/s"))}.`,
      "",
      "| request | per second |",
      "|---|---:|",
      `| conditional create (If-None-Match: *) | ${was(num(l.createPerSecond)!, num(pl?.createPerSecond))} |`,
      `| conditional overwrite (If-Match) | ${was(num(l.overwritePerSecond)!, num(pl?.overwritePerSecond))} |`,
      `| GET | ${was(num(l.getPerSecond)!, num(pl?.getPerSecond))} |`,
      `| plain PUT of an empty object (a marker) | ${was(num(l.plainPutPerSecond)!, num(pl?.plainPutPerSecond))} |`,
      "",
    );
  }
  if (s !== undefined) {
    const trials = (x: SubmitResult) => x.trials.map((t) => percent(t.fraction)).join(", ");
    lines.push(
      `\`submitMany\` of ${s.tasks.toLocaleString("en-US")} tasks from one process (${s.concurrency === "default" ? "its default concurrency" : `concurrency ${s.concurrency}`}), in ${s.trials.length} trials, each between two measurements of the raw create rate (${s.trials.map((t) => bracketText(t.createPerSecond, t.createBefore, t.createAfter)).join(", ")} creates/s); its limit is their mean ÷ the PUTs a submitted task needs (${s.putsPerTask}). The median counts.`,
      "",
      "| tasks/s | seconds | fraction of its limit (trials) | of the limit section's | goal |",
      "|---:|---:|---|---:|---|",
      `| ${was(num(s.tasksPerSecond)!, num(ps?.tasksPerSecond))} | ${was(num(s.seconds, " s")!, num(ps?.seconds, " s"))} | ${was(`${percent(s.fractionOfLimit)} (${trials(s)})`, ps === undefined ? undefined : `${percent(ps.fractionOfLimit)} (${trials(ps)})`)} | ${s.fractionOfLimitSection === undefined ? "–" : was(percent(s.fractionOfLimitSection)!, percent(ps?.fractionOfLimitSection))} | ${goalText(s.fractionOfLimit, LIMIT_GOALS.submitFraction)} |`,
      "",
    );
  }
  const drains = drainFractions(run);
  if (drains.length > 0) {
    const before = previous === undefined ? [] : drainFractions(previous);
    const own = run.drainDefault?.trials;
    const ownText = (d: DrainRow | undefined) =>
      d?.fractionOfOwnCeiling === undefined || d.trials === undefined
        ? undefined
        : `${percent(d.fractionOfOwnCeiling)} (${d.trials.map((t) => percent(t.fraction)).join(", ")})`;
    lines.push(
      `Draining (the throughput section's rows, and ${LIMIT_GOALS.drainWorkers} workers at the \`Worker\`'s default concurrency) as a fraction of the drain ceiling above, all workers in one process. The goal is at least ${percent(LIMIT_GOALS.drainFraction)} with ${LIMIT_GOALS.drainWorkers} workers at the default concurrency.${own === undefined ? "" : ` That drain ran in ${own.length} trials, each between two measurements of the raw overwrite and GET rates, its ceiling the mean of the two (ceilings ${own.map((t) => bracketText(t.ceilingTasksPerSecond, t.ceilingBefore, t.ceilingAfter)).join(", ")} tasks/s), as \`submitMany\` is measured; the median of their fractions is the goal's figure, and its row shows the median trial.`}`,
      "",
      "| workers | slots each | tasks/s | fraction of the drain ceiling above | of its own ceiling (trials) | goal |",
      "|---:|---:|---:|---:|---|---|",
      ...drains.map((d) => {
        const o = before.find(
          (x) => x.workers === d.workers && x.defaultConcurrency === d.defaultConcurrency,
        );
        const goalCase = d.workers === LIMIT_GOALS.drainWorkers && d.defaultConcurrency === true;
        const goal = goalCase
          ? goalText(d.fractionOfOwnCeiling ?? d.fraction, LIMIT_GOALS.drainFraction)
          : "–";
        const slots = `${d.concurrencyPerWorker}${d.defaultConcurrency === true ? " (default)" : ""}`;
        const ownCell = ownText(d) === undefined ? "–" : was(ownText(d)!, ownText(o));
        return `| ${d.workers} | ${slots} | ${was(num(d.tasksPerSecond)!, num(o?.tasksPerSecond))} | ${was(percent(d.fraction)!, percent(o?.fraction))} | ${ownCell} | ${goal} |`;
      }),
      "",
    );
  }
  return lines;
}

/**
 * One trial of the goal's drain: the raw drain ceiling, the drain, and the ceiling again; the
 * trial's ceiling is the mean of the two.
 */
export interface DrainTrial {
  /** Means of the raw rates measured before and after the drain. */
  overwritePerSecond: number;
  getPerSecond: number;
  /** Tasks per second of draining alone at those rates (the model's worker PUTs and GETs). */
  ceilingTasksPerSecond: number;
  /** The ceilings measured right before and right after the drain (absent in older runs). */
  ceilingBefore?: number;
  ceilingAfter?: number;
  tasksPerSecond: number;
  /** tasksPerSecond ÷ ceilingTasksPerSecond. */
  fraction: number;
}

/**
 * The goal's drain in `trials` trials, as {@link submitThroughput} measures `submitMany`: each
 * trial measures the raw overwrite and GET rates for `limitSeconds` each, runs `drain` (which
 * submits its own backlog and times only the draining), and measures the rates again. The
 * trial's ceiling is the mean of the two: this shared machine's load drifts within seconds, and
 * one ceiling taken in a busy or a quiet spell put single trials at 55% and 145%. Returns the
 * trials and the median fraction.
 */
export async function drainTrials<Row extends { tasksPerSecond: number }>(
  storage: Storage,
  prefix: string,
  model: TaskModel,
  drain: () => Promise<Row>,
  options: { trials?: number; limitSeconds?: number } = {},
): Promise<{ row: Row; trials: DrainTrial[]; fractionOfOwnCeiling: number }> {
  const trials: DrainTrial[] = [];
  const rows: Row[] = [];
  for (let trial = 0; trial < (options.trials ?? 3); trial++) {
    const rates = (side: string) =>
      drainRates(
        storage,
        `${prefix}raw-${trial}-${side}/`,
        LIMIT_IN_FLIGHT,
        options.limitSeconds ?? 2,
      );
    const ceilingAt = (raw: { overwritePerSecond: number; getPerSecond: number }) =>
      1 / (model.workerPuts / raw.overwritePerSecond + model.gets / raw.getPerSecond);
    const before = await rates("before");
    const row = await drain();
    const after = await rates("after");
    const ceiling = (ceilingAt(before) + ceilingAt(after)) / 2;
    rows.push(row);
    trials.push({
      overwritePerSecond: round((before.overwritePerSecond + after.overwritePerSecond) / 2, 0),
      getPerSecond: round((before.getPerSecond + after.getPerSecond) / 2, 0),
      ceilingTasksPerSecond: round(ceiling, 1),
      ceilingBefore: round(ceilingAt(before), 1),
      ceilingAfter: round(ceilingAt(after), 1),
      tasksPerSecond: row.tasksPerSecond,
      fraction: round(row.tasksPerSecond / ceiling, 3),
    });
  }
  const fractionOfOwnCeiling = median(trials.map((t) => t.fraction));
  const row = rows[trials.findIndex((t) => t.fraction === fractionOfOwnCeiling)]!;
  return { row, trials, fractionOfOwnCeiling };
}
