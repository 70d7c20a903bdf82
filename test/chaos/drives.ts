/**
 * The `drives` chaos scenario: worker processes on an erasure-coded MinIO (4 drives, EC:2) that
 * loses a drive, then a second one for a while (below write quorum: every write answers 503
 * SlowDownWrite), gets them back stale (MinIO heals them), and is killed and restarted once,
 * while the work goes on. The invariants are the harness's, checked from every task's history;
 * `oq doctor` runs while one drive is missing and while two are.
 *
 * The faults are real ones, made by `scripts/minio.sh` (through {@link ErasureMinio}); nothing is
 * injected above the storage.
 *
 * @module
 */
import { runDoctor } from "../../src/doctor/mod.ts";
import type { Verdict } from "../../src/doctor/types.ts";
import { Queue } from "../../src/queue/queue.ts";
import type { ErasureMinio } from "../helpers/minio.ts";
import type { TargetInstance } from "../helpers/targets.ts";
import { noFaults } from "../support/faulty.ts";
import { Fleet, type ScenarioResult, submitTasks, waitTerminal } from "./harness.ts";
import { checkRun } from "./invariants.ts";

/** Options of {@link runDrivesScenario}. */
export interface DrivesOptions {
  /** The erasure-coded MinIO the target lives on (its drives are taken away). */
  minio: ErasureMinio;
  /** A fresh prefix on `minio`. */
  target: TargetInstance;
  /** Tasks to submit. */
  tasks: number;
  /** Worker processes. Default 4. */
  workers?: number;
  /** Tasks per worker at once. Default 4. */
  concurrency?: number;
  /** Handler duration range, ms. Default 20-300. */
  handlerMs?: [number, number];
  /** Lease length, s. Default 3. */
  leaseSeconds?: number;
  /** How long a second drive stays away (below write quorum), ms; 0: never. Default 10 s. */
  belowQuorumMs?: number;
  /** Give up waiting for the tasks after this long, ms. Default 10 minutes. */
  timeoutMs?: number;
  /** Progress lines. */
  progress?: (line: string) => void;
}

/** One thing done to the store, and what followed. */
export interface DriveStep {
  /** What was done. */
  step: string;
  /** When it began, ms since the start. */
  atMs: number;
  /** How long it took, ms (a restart: until the server had write quorum again). */
  tookMs?: number;
  /** Tasks finished by then. */
  doneBefore: number;
  /** After a drive came back: how long until MinIO reported write quorum, ms. */
  unwritableMs?: number;
  /** From the end of the step until the next task finished, ms (the queue's own recovery). */
  nextCompletionMs?: number;
}

/** What the drives scenario found: a scenario result with the store's side of the story. */
export type DrivesResult = Omit<ScenarioResult, "scenario"> & {
  scenario: "drives";
  /** The store's faults, in order. */
  steps: DriveStep[];
  /** doctor's verdict with one drive missing, and with two (below write quorum). */
  doctor: { oneDriveLost?: DoctorSeen; belowQuorum?: DoctorSeen };
  /** Errors the workers' storage threw, by kind (code, status, S3 code). */
  storageErrors: Record<string, number>;
  /** The longest stretches with no task finishing, ms since the first submit (top 3). */
  pauses: { fromMs: number; ms: number }[];
};

/** A doctor run during the scenario. */
export interface DoctorSeen {
  verdict: Verdict;
  /** The checks that failed (`UNSAFE` marks those that showed misbehaviour). */
  failed: string[];
  ms: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rid = () => Math.random().toString(36).slice(2, 8);
const pick = ([lo, hi]: [number, number]) => Math.round(lo + Math.random() * (hi - lo));

/** Run the scenario once. */
export async function runDrivesScenario(o: DrivesOptions): Promise<DrivesResult> {
  const { minio, target } = o;
  const say = o.progress ?? (() => {});
  const fleet = new Fleet(target, "process");
  const verify = new Queue({ storage: target.storage, prefix: target.prefix });
  const problems: string[] = [];
  const steps: DriveStep[] = [];
  const doctor: DrivesResult["doctor"] = {};
  const started = Date.now();
  const since = () => Date.now() - started;
  const done = () => fleet.reportedDone.size;
  const timeline: { atMs: number; done: number }[] = [];
  let elapsedMs = 0;
  let settled = false;

  const probe = async (name: string): Promise<DoctorSeen> => {
    const t0 = Date.now();
    const queue = new Queue({ storage: target.storage, prefix: `${target.prefix}${name}/` });
    const report = await runDoctor(queue, { writeVerdict: false });
    const failed = report.checks
      .filter((c) => c.status === "failed")
      .map((c) => `${c.id}${c.unsafe ? " UNSAFE" : ""}`);
    say(
      `doctor (${name}): ${report.verdict}${failed.length ? `; failed: ${failed.join(", ")}` : ""}`,
    );
    return { verdict: report.verdict, failed, ms: Date.now() - t0 };
  };
  const step = async (name: string, act: (s: DriveStep) => Promise<void>): Promise<DriveStep> => {
    const s: DriveStep = { step: name, atMs: since(), doneBefore: done() };
    steps.push(s);
    await act(s);
    s.tookMs = since() - s.atMs;
    say(`${name} (${s.doneBefore} tasks finished, took ${s.tookMs} ms)`);
    return s;
  };
  /** Wait until a share of the tasks is finished (or the run is over). */
  const reach = async (share: number) => {
    while (!settled && done() < share * o.tasks) await sleep(100);
  };

  const chaos = async () => {
    await reach(0.1);
    await step("drive 1 out", () => minio.driveOut(1));
    doctor.oneDriveLost = await probe("doctor-one-drive-lost");
    if ((o.belowQuorumMs ?? 10_000) > 0) {
      await reach(0.25);
      await step("drive 2 out (below write quorum)", () => minio.driveOut(2));
      const window = sleep(o.belowQuorumMs ?? 10_000);
      doctor.belowQuorum = await probe("doctor-below-quorum");
      await window;
      await step("drive 2 back", async (s) => {
        await minio.driveIn(2);
        s.unwritableMs = await minio.untilWritable();
      });
    }
    await reach(0.45);
    await step("drive 1 back", () => minio.driveIn(1));
    await reach(0.65);
    await step("MinIO killed and restarted", () => minio.restart());
  };

  const sampler = (async () => {
    while (!settled) {
      timeline.push({ atMs: since(), done: done() });
      await sleep(250);
    }
  })();
  let chaosRun: Promise<void> | undefined;
  try {
    const n = o.workers ?? 4;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        fleet.start({
          id: `drives-${i}-${rid()}`,
          concurrency: o.concurrency ?? 4,
          leaseSeconds: o.leaseSeconds ?? 3,
          minPollMs: 20,
          maxPollMs: 500,
          heartbeatSeconds: 1,
        }),
      ),
    );
    chaosRun = chaos();
    // A failed step must not leave the run waiting for work the store can no longer do.
    chaosRun.catch((error: unknown) => {
      problems.push(`chaos step failed: ${String(error)}`);
      settled = true;
    });
    const ms = o.handlerMs ?? [20, 300];
    const { ids, retries } = await submitTasks(verify, o.tasks, {
      runId: `drives-${rid()}`,
      input: () => ({ ms: pick(ms) }),
      options: () => ({ maxRetries: 20 }),
      maxTries: 200,
    });
    fleet.log.submitted.push(...ids);
    say(`submitted ${ids.length} tasks (${retries} retried submits)`);
    const timeoutMs = o.timeoutMs ?? 10 * 60_000;
    const left = await waitTerminal(verify, ids, {
      timeoutMs: Math.max(1000, timeoutMs - since()),
      hint: fleet.reportedDone,
    });
    elapsedMs = since();
    if (left.length > 0) problems.push(`${left.length} tasks not terminal after ${timeoutMs} ms`);
    say(`settled in ${elapsedMs} ms`);
    settled = true;
    await chaosRun.catch(() => {});
    await fleet.stopAll();
  } finally {
    settled = true;
    // A step in flight (a restart) finishes before anyone stops the server under it.
    await chaosRun?.catch(() => {});
    await sampler;
    await fleet.killAll();
  }
  // Whatever the chaos left undone, the store is whole again before the history is read.
  await minio.untilWritable();
  for (const s of steps) s.nextCompletionMs = nextCompletion(timeline, s.atMs + (s.tookMs ?? 0));
  for (const c of fleet.crashes) problems.push(`crash: ${c}`);
  const report = await checkRun(verify, fleet.log, { scanForStrays: true });
  return {
    scenario: "drives",
    target: "s3 (MinIO, 4 drives, EC:2)",
    mode: "process",
    tasks: fleet.log.submitted.length,
    workersStarted: fleet.workers.length,
    faults: noFaults(),
    calls: fleet.calls(),
    elapsedMs: elapsedMs || since(),
    report,
    facts: {
      events: fleet.events,
      warnings: fleet.warnings,
      passErrors: fleet.passErrors,
      recovered: report.takeovers + report.recoveries,
    },
    problems,
    ok: report.ok && problems.length === 0,
    steps,
    doctor,
    storageErrors: fleet.storageErrors(),
    pauses: pauses(timeline),
  };
}

/** From `atMs` until the finished count first grew, ms (undefined: it never did). */
function nextCompletion(timeline: { atMs: number; done: number }[], atMs: number) {
  const before = timeline.filter((p) => p.atMs <= atMs).at(-1)?.done ?? 0;
  const next = timeline.find((p) => p.atMs > atMs && p.done > before);
  return next === undefined ? undefined : next.atMs - atMs;
}

/**
 * The three longest stretches in which no task finished, after the first finished and while
 * some were still unfinished.
 */
function pauses(timeline: { atMs: number; done: number }[]) {
  const out: { fromMs: number; ms: number }[] = [];
  const last = timeline.at(-1)?.done ?? 0;
  let from = timeline[0];
  for (const p of timeline) {
    if (from === undefined || p.done > from.done) {
      if (from !== undefined && from.done > 0 && from.done < last)
        out.push({ fromMs: from.atMs, ms: p.atMs - from.atMs });
      from = p;
    }
  }
  return out.sort((a, b) => b.ms - a.ms).slice(0, 3);
}
