/**
 * The chaos harness: fleets of workers (in-process, or each in its own process), fault-tolerant
 * submission, waiting for a run to settle, and the scenarios themselves. The chaos tests run the
 * scenarios small; `scripts/chaos.ts` runs them large.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { UnavailableError } from "../../src/errors.ts";
import { Queue } from "../../src/queue/queue.ts";
import type { SubmitOptions } from "../../src/queue/types.ts";
import { Scheduler } from "../../src/schedule/scheduler.ts";
import { slotIdempotencyKey } from "../../src/schedule/slots.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { isTerminal } from "../../src/task/transitions.ts";
import { mapLimit } from "../../src/util/async.ts";
import type { WorkerEvent } from "../../src/worker/worker.ts";
import type { TargetInstance } from "../helpers/targets.ts";
import { addFaults, type FaultCounts, FaultyStorage, noFaults } from "../support/faulty.ts";
import {
  CHAOS_TYPE,
  type ChaosInput,
  type ChaosStatus,
  type ChaosWorker,
  type ChaosWorkerConfig,
  type FaultConfig,
  isPassError,
  startChaosWorker,
} from "./chaos-worker.ts";
import { startHostileWriter } from "./hostile.ts";
import { type CheckOptions, checkRun, type InvariantReport, type RunLog } from "./invariants.ts";
import { type ProxiedTarget, proxyTarget, runNetwork } from "./network.ts";

/** Where workers run: each in its own process (file, S3), or all in this one (any storage). */
export type FleetMode = "process" | "inline";

/** One worker of a {@link Fleet}. */
export interface FleetWorker {
  /** Its id. */
  readonly id: string;
  /** Its last reported counters. */
  readonly status: ChaosStatus | undefined;
  /** False once killed, stopped or crashed. */
  readonly alive: boolean;
  /** Kill it without a chance to clean up (SIGKILL; in-process: cut its link to storage). */
  kill(): Promise<void>;
  /** Stop it gracefully. */
  stop(): Promise<void>;
  /**
   * Freeze it for `ms`, then let it go on as if nothing happened (SIGSTOP/SIGCONT, like a long
   * GC pause or a frozen VM; in-process: its storage link is cut for that long).
   */
  pause(ms: number): Promise<void>;
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHILD = fileURLToPath(new URL("./worker-process.ts", import.meta.url));

/**
 * A storage whose link can be cut, like a process that died (`kill`: for good) or froze (`cut`,
 * then `restore`): every call fails meanwhile. A killed process also never reads the answers to
 * calls it sent before it died (their writes still land), so those fail too.
 */
function cuttable(storage: Storage): {
  storage: Storage;
  cut(): void;
  restore(): void;
  kill(): void;
} {
  let cut = false;
  let dead = false;
  const view = new Proxy(storage, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop === "serverTime") return value.bind(target);
      return async (...args: unknown[]) => {
        if (cut || dead) throw new UnavailableError("link cut");
        const answer = await value.apply(target, args);
        if (dead) throw new UnavailableError("the process was killed");
        return answer;
      };
    },
  });
  return {
    storage: view,
    cut: () => {
      cut = true;
    },
    restore: () => {
      cut = false;
    },
    kill: () => {
      dead = true;
    },
  };
}

/**
 * Workers over one target, and everything they report: handler runs and completions (the
 * {@link RunLog} the invariants check), events, warnings and crashes.
 */
export class Fleet {
  /** Runs and completions; the scenario fills `submitted`. */
  readonly log: RunLog = { submitted: [], executions: [], completions: [] };
  /** Every worker ever started. */
  readonly workers: FleetWorker[] = [];
  /** Worker events by kind. */
  readonly events: Record<string, number> = {};
  readonly #eventsByWorker = new Map<string, Record<string, number>>();
  /** Tasks a worker reported finished (a hint for {@link waitTerminal}). */
  readonly reportedDone = new Set<string>();
  /** The first warnings workers logged. */
  readonly warningSamples: string[] = [];
  /** Workers that died on their own, with what they said. */
  readonly crashes: string[] = [];
  readonly #target: TargetInstance;
  readonly #mode: FleetMode;

  constructor(target: TargetInstance, mode: FleetMode) {
    this.#target = target;
    this.#mode = mode;
  }

  /** Start a worker and wait until it is polling. */
  start(config: ChaosWorkerConfig): Promise<FleetWorker> {
    return this.#mode === "inline" ? this.#startInline(config) : this.#startProcess(config);
  }

  /** One worker's events by kind. */
  eventsOf(workerId: string): Record<string, number> {
    return { ...this.#eventsByWorker.get(workerId) };
  }

  /** Faults injected into all workers so far, by kind. */
  faults(): FaultCounts {
    const total = noFaults();
    for (const w of this.workers) if (w.status) addFaults(total, w.status.faults);
    return total;
  }

  /** Warnings all workers logged. */
  get warnings(): number {
    return this.workers.reduce((n, w) => n + (w.status?.warnings ?? 0), 0);
  }

  /** Storage errors the workers' loops ran into (see `ChaosStatus.passErrors`). */
  get passErrors(): number {
    return this.workers.reduce((n, w) => n + (w.status?.passErrors ?? 0), 0);
  }

  /** Errors the storage threw at all workers, by kind (see `ChaosStatus.storageErrors`). */
  storageErrors(): Record<string, number> {
    const total: Record<string, number> = {};
    for (const w of this.workers)
      for (const [kind, n] of Object.entries(w.status?.storageErrors ?? {}))
        total[kind] = (total[kind] ?? 0) + n;
    return total;
  }

  /** Storage calls all workers made (that faults could hit). */
  calls(): number {
    return this.workers.reduce((n, w) => n + (w.status?.calls ?? 0), 0);
  }

  /** Stop every live worker gracefully. */
  async stopAll(): Promise<void> {
    await Promise.all(this.workers.filter((w) => w.alive).map((w) => w.stop()));
  }

  /** Kill every live worker (cleanup after a failed run). */
  async killAll(): Promise<void> {
    await Promise.all(this.workers.filter((w) => w.alive).map((w) => w.kill()));
  }

  #record = {
    run: (workerId: string, id: string, attempt: number, at: number) => {
      this.log.executions.push({ id, workerId, attempt, at });
    },
    event: (workerId: string, e: WorkerEvent) => {
      this.events[e.kind] = (this.events[e.kind] ?? 0) + 1;
      const mine = this.#eventsByWorker.get(workerId) ?? {};
      mine[e.kind] = (mine[e.kind] ?? 0) + 1;
      this.#eventsByWorker.set(workerId, mine);
      if (e.kind === "completed")
        this.log.completions.push({ id: e.id, workerId, attempt: e.attempt ?? -1 });
      if (e.kind === "completed" || e.kind === "failed" || e.kind === "cancelled")
        this.reportedDone.add(e.id);
    },
    warn: (message: string) => {
      if (this.warningSamples.length < 50) this.warningSamples.push(message);
    },
  };

  async #startInline(config: ChaosWorkerConfig): Promise<FleetWorker> {
    const link = cuttable(this.#target.storage);
    const r = this.#record;
    let chaos: ChaosWorker | undefined;
    let alive = true;
    chaos = await startChaosWorker(link.storage, this.#target.prefix, config, {
      run: (id, attempt, at) => r.run(config.id, id, attempt, at),
      event: (e) => r.event(config.id, e),
      warn: (m) => r.warn(m),
    });
    const worker: FleetWorker = {
      id: config.id,
      get status() {
        return chaos?.status();
      },
      get alive() {
        return alive;
      },
      async kill() {
        if (!alive) return;
        alive = false;
        link.kill();
        await chaos?.stop(0).catch(() => {});
      },
      async stop() {
        if (!alive) return;
        alive = false;
        await chaos?.stop();
      },
      async pause(ms) {
        link.cut();
        await sleep(ms);
        link.restore();
      },
    };
    this.workers.push(worker);
    return worker;
  }

  async #startProcess(config: ChaosWorkerConfig): Promise<FleetWorker> {
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", CHILD], {
      cwd: ROOT,
      env: { ...process.env, ...this.#target.env, CHAOS_WORKER: JSON.stringify(config) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const r = this.#record;
    let status: ChaosStatus | undefined;
    let alive = true;
    let expectedExit = false;
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const ready = new Promise<void>((resolve, reject) => {
      let buffer = "";
      child.stdout!.on("data", (d: Buffer) => {
        buffer += d.toString();
        let nl = buffer.indexOf("\n");
        while (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          nl = buffer.indexOf("\n");
          const space = line.indexOf(" ");
          const tag = space < 0 ? line : line.slice(0, space);
          const rest = space < 0 ? "" : line.slice(space + 1);
          if (tag === "ready") resolve();
          else if (tag === "run") {
            const [id, attempt, at] = rest.split(" ");
            r.run(config.id, id!, Number(attempt), Number(at));
          } else if (tag === "event") r.event(config.id, JSON.parse(rest) as WorkerEvent);
          else if (tag === "warn") r.warn(rest);
          else if (tag === "status") status = JSON.parse(rest) as ChaosStatus;
          else if (tag === "crash") this.crashes.push(`${config.id}: ${rest}`);
        }
      });
      void exited.then((code) => {
        alive = false;
        if (!expectedExit)
          this.crashes.push(`${config.id} exited (${code}) on its own: ${stderr.slice(-800)}`);
        reject(new Error(`worker ${config.id} exited (${code}) before it was ready: ${stderr}`));
      });
    });
    const worker: FleetWorker = {
      id: config.id,
      get status() {
        return status;
      },
      get alive() {
        return alive;
      },
      async kill() {
        if (!alive) return;
        expectedExit = true;
        child.kill("SIGKILL");
        await exited;
      },
      async stop() {
        if (!alive) return;
        expectedExit = true;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      },
      async pause(ms) {
        if (!alive) return;
        child.kill("SIGSTOP");
        await sleep(ms);
        child.kill("SIGCONT");
      },
    };
    this.workers.push(worker);
    await ready;
    return worker;
  }
}

/**
 * Submit `count` chaos tasks through `queue` (which may be faulty), each with an idempotency key,
 * retrying a failed submit until it is acknowledged: a submit whose answer was lost is then
 * found by its key, never duplicated. Returns the ids, in order.
 */
export async function submitTasks(
  queue: Queue,
  count: number,
  options: {
    runId: string;
    input: (i: number) => ChaosInput;
    options?: (i: number) => SubmitOptions;
    concurrency?: number;
    maxTries?: number;
  },
): Promise<{ ids: string[]; retries: number }> {
  let retries = 0;
  const indexes = Array.from({ length: count }, (_, i) => i);
  const ids = await mapLimit(indexes, options.concurrency ?? 16, async (i) => {
    // Drawn once: a retry must send the same input (and options), or a submit whose create
    // landed before its answer was lost meets its own key with another input (a conflict).
    const input = options.input(i);
    const submitOptions = options.options?.(i);
    for (let tries = 1; ; tries++) {
      try {
        const task = await queue.submit(CHAOS_TYPE, input, {
          ...submitOptions,
          idempotencyKey: `${options.runId}:${i}`,
        });
        return task.id;
      } catch (error) {
        if (tries >= (options.maxTries ?? 30)) throw error;
        retries++;
        await sleep(10 + Math.random() * 50 * tries);
      }
    }
  });
  return { ids, retries };
}

/**
 * Wait until every task in `ids` is terminal, reading them through `queue` (fault-free) a few at
 * a time, those a worker reported finished first. Returns the ids still not terminal when
 * `timeoutMs` ran out (empty on success). A failed read counts as not terminal yet.
 */
export async function waitTerminal(
  queue: Queue,
  ids: readonly string[],
  options: { timeoutMs: number; hint?: ReadonlySet<string>; batch?: number },
): Promise<string[]> {
  const remaining = new Set(ids);
  const deadline = Date.now() + options.timeoutMs;
  const batch = options.batch ?? 100;
  let rotate = 0;
  while (remaining.size > 0) {
    const all = [...remaining];
    const hinted = options.hint ? all.filter((id) => options.hint!.has(id)).slice(0, batch) : [];
    rotate = (rotate + batch) % Math.max(1, all.length);
    const others = [...all.slice(rotate), ...all.slice(0, rotate)].slice(0, batch / 2);
    const check = [...new Set([...hinted, ...others])];
    // A read that fails (a store restarting under the run) leaves the task to the next round.
    const states = await mapLimit(
      check,
      16,
      async (id) => (await queue.read(id).catch(() => undefined))?.task.status,
    );
    check.forEach((id, i) => {
      const s = states[i];
      if (s !== undefined && isTerminal(s)) remaining.delete(id);
    });
    if (remaining.size === 0 || Date.now() > deadline) break;
    await sleep(hinted.length >= batch ? 0 : 250);
  }
  return [...remaining];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The task id `Queue.submit` gives an idempotency key (the first 32 hex digits of its SHA-256). */
async function idempotentId(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`oq-idempotency:${key}`),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0"))
    .join("")
    .slice(0, 32);
}
const rid = () => Math.random().toString(36).slice(2, 8);

// ---- scenarios ------------------------------------------------------------------------------

/** The scenarios, by name (`scripts/chaos.ts --scenario NAME`). */
export const SCENARIOS = ["faults", "kills", "latency", "skew", "hostile", "network"] as const;
/** A scenario name. */
export type ScenarioName = (typeof SCENARIOS)[number];

/** Options every scenario takes. */
export interface ScenarioOptions {
  /** The storage and prefix to run on (its prefix should be empty of tasks). */
  target: TargetInstance;
  /** A name for reports. */
  targetName: string;
  /** Worker processes or in-process workers. Default: processes when the target is shared. */
  mode?: FleetMode;
  /** Tasks to submit. */
  tasks: number;
  /** Workers (for `kills`: workers killed per round). Default 4 (kills: 2). */
  workers?: number;
  /** Tasks per worker at once. Default 4. */
  concurrency?: number;
  /** Handler duration range, ms. Default per scenario. */
  handlerMs?: [number, number];
  /** Lease length, s. Default per scenario. */
  leaseSeconds?: number;
  /** Fault rate of the `faults` scenario. Default 0.1. */
  faultRate?: number;
  /** Kill rounds of the `kills` scenario. Default 3. */
  rounds?: number;
  /** Give up waiting for the tasks after this long, ms. Default 5 minutes. */
  timeoutMs?: number;
  /** Options of the invariant check. */
  check?: CheckOptions;
  /** Progress lines. */
  progress?: (line: string) => void;
}

/** What a scenario run found. */
export interface ScenarioResult {
  /** Scenario name. */
  scenario: ScenarioName;
  /** Target name. */
  target: string;
  /** How workers ran. */
  mode: FleetMode;
  /** Tasks submitted. */
  tasks: number;
  /** Workers started over the run (kills count the restarted ones). */
  workersStarted: number;
  /** Faults injected into workers and the submitter, by kind. */
  faults: FaultCounts;
  /** Storage calls that faults could hit. */
  calls: number;
  /** From the first submit until every task was terminal (or the timeout), ms. */
  elapsedMs: number;
  /** The invariant check. */
  report: InvariantReport;
  /** Scenario-specific facts (kills done, warnings, polls...). */
  facts: Record<string, unknown>;
  /** Scenario-specific failures (crashes, spins), beside the invariant violations. */
  problems: string[];
  /** No violation and no problem. */
  ok: boolean;
}

function baseConfig(
  id: string,
  o: ScenarioOptions,
  lease: number,
  extra: Partial<ChaosWorkerConfig> = {},
): ChaosWorkerConfig {
  return {
    id,
    concurrency: o.concurrency ?? 4,
    leaseSeconds: o.leaseSeconds ?? lease,
    minPollMs: 20,
    maxPollMs: 500,
    heartbeatSeconds: 1,
    ...extra,
  };
}

const pick = ([lo, hi]: [number, number]) => Math.round(lo + Math.random() * (hi - lo));

/** Run one scenario. */
export async function runScenario(
  name: ScenarioName,
  options: ScenarioOptions,
): Promise<ScenarioResult> {
  const mode = options.mode ?? (options.target.env === undefined ? "inline" : "process");
  // The network scenario's workers and submitter reach the bucket through a fault proxy; the
  // checks below always read it directly.
  const net: ProxiedTarget | undefined =
    name === "network" ? await proxyTarget(options.target) : undefined;
  const work = net?.target ?? options.target;
  const fleet = new Fleet(work, mode);
  const verify = new Queue({ storage: options.target.storage, prefix: options.target.prefix });
  const runId = `${name}-${rid()}`;
  const say = options.progress ?? (() => {});
  const problems: string[] = [];
  const facts: Record<string, unknown> = {};
  let submitterFaults = noFaults();
  let submitterCalls = 0;
  const started = Date.now();
  let elapsedMs = 0;
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;

  /** Submit (through `faults`, if any), wait, and note what is left. */
  const submitAndWait = async (
    faults: FaultConfig | undefined,
    input: (i: number) => ChaosInput,
    submitOptions?: (i: number) => SubmitOptions,
  ) => {
    const faulty = new FaultyStorage(work.storage, faults ?? {});
    const submitter = new Queue({ storage: faulty, prefix: options.target.prefix });
    const { ids, retries } = await submitTasks(submitter, options.tasks, {
      runId,
      input,
      ...(submitOptions === undefined ? {} : { options: submitOptions }),
    });
    submitterFaults = { ...faulty.faults };
    submitterCalls = faulty.calls;
    facts.submitRetries = retries;
    fleet.log.submitted.push(...ids);
    say(`submitted ${ids.length} tasks (${retries} retried submits)`);
    const left = await waitTerminal(verify, ids, {
      timeoutMs: Math.max(1000, timeoutMs - (Date.now() - started)),
      hint: fleet.reportedDone,
    });
    elapsedMs = Date.now() - started;
    if (left.length > 0) problems.push(`${left.length} tasks not terminal after ${timeoutMs} ms`);
    say(`settled in ${elapsedMs} ms`);
  };

  try {
    switch (name) {
      case "faults": {
        // N workers and the submitter, every storage call failing 10% of the time in every way
        // the backend can fail, plus the odd latency spike. Every 20th task outlives half its
        // lease, so renewals (and the reads that look for cancel requests) meet faults too.
        const faults: FaultConfig = {
          faultRate: options.faultRate ?? 0.1,
          latency: { baseMs: 0, spikeRate: 0.002, spikeMs: [200, 1000] },
          timeoutMs: 300,
        };
        const n = options.workers ?? 4;
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            fleet.start(baseConfig(`faulty-${i}-${rid()}`, options, 3, { faults })),
          ),
        );
        const ms = options.handlerMs ?? [0, 20];
        const lease = options.leaseSeconds ?? 3;
        await submitAndWait(
          faults,
          (i) => ({ ms: i % 20 === 0 ? lease * 1000 : pick(ms) }),
          () => ({ maxRetries: 50 }),
        );
        break;
      }
      case "kills": {
        // Two workers, each SIGKILLed at a random moment in each of three rounds and replaced
        // by a fresh one: their tasks come back when the 2 s lease runs out. A third worker is
        // frozen (SIGSTOP) once a round for 2.5 leases and then resumed: its tasks have been
        // taken over meanwhile, and it must not record anything for them.
        const n = options.workers ?? 2;
        const rounds = options.rounds ?? 3;
        const lease = options.leaseSeconds ?? 2;
        const ms = options.handlerMs ?? [50, 400];
        const live = await Promise.all(
          Array.from({ length: n }, (_, i) =>
            fleet.start(baseConfig(`k0-${i}-${rid()}`, options, lease)),
          ),
        );
        const zombie = await fleet.start(baseConfig(`zombie-${rid()}`, options, lease));
        const kills: { round: number; worker: string; atMs: number }[] = [];
        const work = submitAndWait(
          undefined,
          () => ({ ms: pick(ms) }),
          () => ({ maxRetries: 20 }),
        );
        // Spread the rounds over the time the work should take.
        const roundMs = Math.max(
          1500,
          (options.tasks * ((ms[0] + ms[1]) / 2)) /
            ((n + 1) * (options.concurrency ?? 4)) /
            (rounds + 1),
        );
        const freezeMs = 2.5 * lease * 1000;
        const freezes = (async () => {
          for (let round = 1; round <= rounds; round++) {
            await sleep(Math.random() * roundMs);
            await zombie.pause(freezeMs);
            say(`froze ${zombie.id} for ${freezeMs} ms (${round}/${rounds})`);
          }
        })();
        for (let round = 1; round <= rounds; round++) {
          await Promise.all(
            live.map(async (w, i) => {
              await sleep(Math.random() * roundMs);
              await w.kill();
              kills.push({ round, worker: w.id, atMs: Date.now() - started });
              live[i] = await fleet.start(baseConfig(`k${round}-${i}-${rid()}`, options, lease));
            }),
          );
          say(`round ${round}: killed ${n} workers`);
        }
        await freezes;
        await work;
        facts.kills = kills.length;
        facts.freezes = rounds;
        facts.zombieLeasesLost = fleet.eventsOf(zombie.id)["lease-lost"] ?? 0;
        break;
      }
      case "latency": {
        // Storage whose 99th percentile latency is 2 s (2% of calls take 1-3 s).
        const faults: FaultConfig = {
          latency: { baseMs: [2, 20], spikeRate: 0.02, spikeMs: [1000, 3000] },
        };
        const n = options.workers ?? 4;
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            fleet.start(baseConfig(`slow-${i}-${rid()}`, options, 4, { faults })),
          ),
        );
        const ms = options.handlerMs ?? [0, 50];
        await submitAndWait(
          faults,
          () => ({ ms: pick(ms) }),
          () => ({ maxRetries: 20 }),
        );
        break;
      }
      case "skew": {
        // Half the workers run 5 minutes fast, half 5 minutes slow. A third of the tasks are
        // delayed by 1-3 s (a fast clock would start them early), and every tenth runs longer
        // than its lease (a fast clock would think it expired and steal it).
        const n = options.workers ?? 4;
        const lease = options.leaseSeconds ?? 2;
        await Promise.all(
          Array.from({ length: n }, (_, i) => {
            const skew = (i % 2 === 0 ? 1 : -1) * 5 * 60_000;
            return fleet.start(
              baseConfig(`skew${skew > 0 ? "fast" : "slow"}5m-${i}-${rid()}`, options, lease, {
                faults: { clockSkewMs: skew },
              }),
            );
          }),
        );
        const ms = options.handlerMs ?? [0, 50];
        await submitAndWait(
          undefined,
          (i) => ({ ms: i % 10 === 0 ? Math.round(lease * 1000 * 1.4) : pick(ms) }),
          (i) => (i % 3 === 0 ? { delay: 1 + (i % 7) / 3 } : {}),
        );
        facts.skews = ["+5m", "-5m"];
        facts.delayedTasks = Math.ceil(options.tasks / 3);
        facts.tasksOutlivingTheirLease = Math.ceil(options.tasks / 10);
        break;
      }
      case "hostile": {
        // Another client keeps writing garbage under every prefix while workers (each also
        // running a scheduler) process valid tasks. One valid schedule fires a task each second.
        const writer = startHostileWriter(options.target.storage, verify.keys, { everyMs: 100 });
        await writer.writeAll();
        const scheduler = new Scheduler(verify);
        const schedule = await scheduler.create({
          id: `valid-${rid()}`,
          type: CHAOS_TYPE,
          input: { ms: 0 },
          cron: "* * * * * *",
        });
        const n = options.workers ?? 4;
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            fleet.start(baseConfig(`calm-${i}-${rid()}`, options, 3, { schedulerIntervalMs: 500 })),
          ),
        );
        const ms = options.handlerMs ?? [0, 20];
        try {
          await submitAndWait(undefined, () => ({ ms: pick(ms) }));
        } finally {
          await writer.stop();
        }
        // The valid schedule kept firing through the garbage. Stop it, let its last tasks
        // finish, and hold every task it fired to the same invariants as the submitted ones.
        let fired = await scheduler.get(schedule.id);
        for (let i = 0; i < 50 && fired.lastTaskId === null; i++) {
          await sleep(200);
          fired = await scheduler.get(schedule.id);
        }
        await scheduler.delete(schedule.id);
        const deletedAt = verify.now();
        await sleep(1000); // a tick already in flight may still fire the last slot
        facts.scheduleFired = fired.lastTaskId !== null;
        if (fired.lastTaskId === null) problems.push("the valid schedule never fired");
        // Every task the schedule may have fired: one per second-slot from its creation until
        // (a little after) its deletion, with the id its slot's idempotency key gives. Some may
        // still wait in the queue (workers were busy with the rest), so find them by id.
        const slots: number[] = [];
        for (
          let t = Math.ceil(Date.parse(schedule.createdAt) / 1000) * 1000;
          t <= deletedAt + 2000;
          t += 1000
        )
          slots.push(t);
        const scheduled = (
          await mapLimit(slots, 16, async (slot) => {
            const id = await idempotentId(slotIdempotencyKey(schedule.id, slot));
            return (await verify.read(id)) === undefined ? undefined : id;
          })
        ).filter((id): id is string => id !== undefined);
        fleet.log.submitted.push(...scheduled);
        facts.scheduledTasks = scheduled.length;
        const left = await waitTerminal(verify, scheduled, { timeoutMs: 30_000 });
        if (left.length > 0) problems.push(`${left.length} scheduled tasks did not finish`);

        // Idle with the garbage in place: no worker may spin on it. A worker that skips what it
        // cannot use reads each object at most twice in 2 s (a young orphan marker is rechecked
        // after twice its age, at least 1 s); one that re-read garbage on every pass would read
        // it 4 times (it polls every 500 ms here).
        type Counts = Record<string, number>;
        const snapshot = () =>
          fleet.workers.map((w) => ({
            all: { ...w.status!.requests } as Counts,
            scheduler: { ...w.status!.schedulerRequests } as Counts,
          }));
        const before = snapshot();
        const idleMs = 2000;
        await sleep(idleMs + 300); // and one more status line
        const diff = (a: Counts, b: Counts) =>
          Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]));
        const sum = (c: Counts) => Object.values(c).reduce((x, y) => x + y, 0);
        const idle = snapshot().map((after, i) => {
          const scheduler = diff(after.scheduler, before[i]!.scheduler);
          return { worker: diff(diff(after.all, before[i]!.all), scheduler), scheduler };
        });
        const perSecond = (c: Counts) => sum(c) / (idleMs / 1000);
        facts.idleWorkerRequestsPerSecond = Math.max(...idle.map((r) => perSecond(r.worker)));
        facts.idleWorkerRequests = idle[0]!.worker;
        facts.idleSchedulerRequestsPerSecond = Math.max(...idle.map((r) => perSecond(r.scheduler)));
        facts.idleSchedulerRequests = idle[0]!.scheduler;
        const hottest = fleet.workers
          .map((w) => w.status!.hottestKey)
          .sort((a, b) => b.reads - a.reads)[0];
        facts.idleHottestKey = hottest;
        if (hottest !== undefined && hottest.reads > 3)
          problems.push(
            `a worker re-reads ${hottest.key} on every pass (${hottest.reads} reads in 2 s)`,
          );
        const lists = Math.max(...idle.map((r) => (r.worker.LIST ?? 0) / (idleMs / 1000)));
        // Listing ready/ every 500 ms and workers/ with each heartbeat: 3 LISTs a second.
        if (lists > 10) problems.push(`idle workers list ${lists} times a second`);
        facts.garbageWritten = writer.counts.written;
        facts.garbageRefused = writer.counts.refused;
        if (fleet.warnings === 0) problems.push("no worker reported the malformed objects");
        // Without injected faults, every error in a worker's loop is garbage it tripped over
        // instead of reporting and skipping it.
        if (fleet.passErrors > 0)
          problems.push(
            `${fleet.passErrors} errors in worker loops instead of skipping the object: ${fleet.warningSamples.filter(isPassError).slice(0, 3).join(" | ")}`,
          );
        break;
      }
      case "network": {
        Object.assign(
          facts,
          await runNetwork({
            fleet,
            options,
            proxy: net!.proxy,
            config: (id, lease) => baseConfig(id, options, lease),
            submitAndWait: (input) => submitAndWait(undefined, input, () => ({ maxRetries: 50 })),
            say,
          }),
        );
        break;
      }
    }
    await fleet.stopAll();
  } finally {
    await fleet.killAll();
    await net?.target.cleanup();
  }

  for (const c of fleet.crashes) problems.push(`crash: ${c}`);
  const report = await checkRun(verify, fleet.log, {
    scanForStrays: name !== "hostile",
    ...options.check,
  });
  // A skewed clock shows as an early run or a premature takeover, which the invariants catch by
  // the storage's clock. A task run twice after its lease truly ran out (a renewal late on a
  // loaded machine) is at-least-once, not a clock bug: reported, not judged.
  if (name === "skew") facts.ranTwice = report.duplicated.length;
  // Tasks a killed worker held come back by takeover (or a monitor's recovery) once the lease ends.
  if (name === "kills") facts.recoveredFromKilledWorkers = report.takeovers + report.recoveries;
  facts.events = fleet.events;
  facts.warnings = fleet.warnings;
  facts.passErrors = fleet.passErrors;
  const faults = addFaults({ ...submitterFaults }, fleet.faults());
  return {
    scenario: name,
    target: options.targetName,
    mode,
    tasks: fleet.log.submitted.length,
    workersStarted: fleet.workers.length,
    faults,
    calls: fleet.calls() + submitterCalls,
    elapsedMs: elapsedMs || Date.now() - started,
    report,
    facts,
    problems,
    ok: report.ok && problems.length === 0,
  };
}
