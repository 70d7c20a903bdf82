/**
 * The worker: polls the ready index, claims due tasks it has handlers for with a conditional
 * write, runs them under a lease it renews, and records the outcome. Every worker also runs the
 * monitor by default (expired leases, TTLs, stale markers), so liveness needs no separate daemon.
 *
 * @module
 */
import type { ServerClock } from "./clock.ts";
import { requireSafeBackend } from "./doctor/mod.ts";
import { InvalidStateError, OqError, type UnsafeBackendError, ValidationError } from "./errors.ts";
import { checkTaskType, checkWorkerId, type ReadyMarker } from "./keys.ts";
import { checkOptions, workerOptionsSchema } from "./options.ts";
import { internals } from "./queue/internals.ts";
import type { Queue } from "./queue/queue.ts";
import { MARKER_GRACE_MS } from "./queue/ready-index.ts";
import type { Versioned } from "./queue/types.ts";
import { RefusedClaims } from "./refused-claims.ts";
import type { TaskRecord } from "./task/record.ts";
import {
  canRetry,
  claimTask,
  completeTask,
  expireLease,
  expireTask,
  type Failure,
  failAttempt,
  finishCancelled,
  holdsLease,
  isExpired,
  isLeaseExpired,
  isTerminal,
  leaseStopAt,
  leaseTakeoverAt,
  ms,
  releaseTask,
  renewLease,
} from "./task/transitions.ts";
import { sleep } from "./util/async.ts";

/** Context passed to a handler with its input. */
export interface TaskContext {
  /** The task as claimed (status running, this attempt's lease). */
  readonly task: TaskRecord;
  /** This attempt's number (1 for the first run). */
  readonly attempt: number;
  /** The id of the worker running it. */
  readonly workerId: string;
  /**
   * Fires when the handler should stop: cancellation was requested, the lease was lost (the
   * task may be run elsewhere), the attempt timed out, or the worker is shutting down.
   * `signal.reason` is an {@link OqError}-free `Error` whose `name` says which.
   */
  readonly signal: AbortSignal;
  /** Reads the stored task now and tells whether cancellation was requested (one GET). */
  isCancellationRequested(): Promise<boolean>;
  /** Extend the lease to `seconds` from now (one PUT). Throws when the lease was lost. */
  extendLease(seconds: number): Promise<void>;
}

/** A task handler: gets the input, returns the output (any JSON value). */
export type Handler<Input = unknown, Output = unknown> = (
  input: Input,
  ctx: TaskContext,
) => Promise<Output> | Output;

/** Throw this (or a subclass) from a handler to fail the task at once, skipping retries. */
export class PermanentError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentError";
  }
}

/** Per-type settings, given with {@link Worker.task}. */
export interface HandlerOptions {
  /** Lease length for this type, in seconds. */
  leaseSeconds?: number;
  /** Default per-attempt time limit for this type when the task has none, in seconds. */
  timeoutSeconds?: number;
}

/** What a worker reports through {@link WorkerOptions.onEvent}. */
export interface WorkerEvent {
  /** What happened. */
  kind:
    | "started"
    | "completed"
    | "retry-scheduled"
    | "failed"
    | "cancelled"
    | "lease-lost"
    | "released"
    | "recovered"
    | "expired"
    | "skipped-malformed"
    | "abandoned"
    | "result-dropped"
    | "unsafe-backend";
  /**
   * The task id, or the object key for `skipped-malformed`. `abandoned`: a handler did not settle
   * within `signalGraceMs` of its signal, so its lease is left to lapse (the attempt counts).
   * `result-dropped`: storage refused the outcome until the lease ran out (the task will run again).
   * `unsafe-backend`: the worker stopped because the backend refuses valid conditional writes
   * (its `error` says so; see {@link Worker.unsafeBackend}).
   */
  id: string;
  /** Task type, when known. */
  type?: string;
  /** Attempt, when known. */
  attempt?: number;
  /** How long the attempt ran, for outcomes. */
  durationMs?: number;
  /** Error message, for failures. */
  error?: string;
}

/** Options of {@link Worker}. */
export interface WorkerOptions {
  /** Worker id (default `w-` and random hex). Shown in leases and heartbeats. */
  id?: string;
  /** Tasks run at once. Default 1. */
  concurrency?: number;
  /** Lease length in seconds. Renewed while the handler runs. Default 60. */
  leaseSeconds?: number;
  /** Default per-attempt time limit when the task has none, in seconds. Default: none. */
  timeoutSeconds?: number;
  /** Shortest pause between polls, in ms (after finding work). Default 250. */
  minPollMs?: number;
  /** Longest pause between polls when idle, in ms. Default 6000 (10 LISTs a minute). */
  maxPollMs?: number;
  /** Run the monitor (lease recovery, TTL expiry, stale marker removal). Default true. */
  monitor?: boolean;
  /** Seconds between heartbeat writes; 0 disables heartbeats. Default 60. */
  heartbeatSeconds?: number;
  /** How long {@link Worker.stop} waits for running handlers before firing their signals, ms. Default 10000. */
  shutdownGraceMs?: number;
  /**
   * How long a handler gets to settle once its signal fired (cancel, timeout, shutdown, lost
   * lease), ms. The lease is renewed meanwhile; after it the worker stops renewing, and the slot
   * frees when the lease lapses (the attempt then counts). Default 5000.
   */
  signalGraceMs?: number;
  /** How long a listing is reused to find more candidates before listing again, ms. Default 2000. */
  listReuseMs?: number;
  /** Called on every task outcome (the CLI logs these). */
  onEvent?: (event: WorkerEvent) => void;
  /**
   * Do not require a doctor verdict before claiming (like `oq worker --skip-doctor`). By default
   * {@link Worker.start} and {@link Worker.drain} refuse a backend whose cached verdict is
   * `unsafe`, and probe one that has no fresh verdict for this exact path first. Only set this
   * when you know the backend honours conditional writes.
   */
  skipDoctor?: boolean;
}

/**
 * The lease length to write with an expiry computed from `queue.now()`, the lower bound of
 * server time: stretched by the width of the clock's interval, so that the lease lasts at least
 * `leaseMs` of server time and the holder, which stops by the upper bound, keeps all of it.
 */
function leaseToWrite(queue: { clock: ServerClock }, leaseMs: number): number {
  const { lower, upper } = queue.clock.bounds();
  return leaseMs + (upper - lower);
}

/** Counters a worker keeps, for the CLI's summary line and heartbeats. */
export interface WorkerStats {
  started: number;
  completed: number;
  failed: number;
  retried: number;
  cancelled: number;
  leaseLost: number;
  recovered: number;
  expired: number;
  polls: number;
}

interface Running {
  id: string;
  type: string;
  token: string;
  leaseMs: number;
  current: Versioned;
  controller: AbortController;
  /** Serializes writes of this worker to this task (renewal vs. outcome). */
  chain: Promise<unknown>;
  /** Set once the task must not be written by us any more. */
  done: boolean;
  lost: boolean;
  startedLocal: number;
  /** Resolves once the outcome was written (or given up) after the handler settled. */
  settled: Promise<void>;
  /** The task's marker (relative key) while we run it. */
  marker: string | null;
  /** Local time at which the handler's signal fired. */
  signalledAt: number | undefined;
  /** Why the worker itself interrupted the handler; decides what a late outcome records. */
  interrupt: Interrupt | undefined;
  /** Set once the signal grace ran out: the lease is no longer renewed and will lapse. */
  lapsing: boolean;
  /** Set once the slot was given up (handler settled, or lease lapsed, or worker ended). */
  freed: boolean;
  /** Resolves when the slot is given up. */
  ended: Promise<void>;
  /** Gives up the slot (once). */
  free: () => void;
  /** Fires when the lease must be given up unless renewed first (see `#guardLease`). */
  leaseTimer?: ReturnType<typeof setTimeout>;
}

/**
 * Why the worker fired a handler's signal itself, which decides what the attempt records once
 * its handler settles: `shutdown` — the task is released (pending, the attempt not counted);
 * `timeout`, or `budget` (a drain ran out of time) — a failed attempt, whatever the handler
 * returned, so a task too long for any drain reaches its retry limit and fails.
 */
type Interrupt = { kind: "shutdown" } | { kind: "timeout" | "budget"; failure: Failure };

const live = new Set<Worker>();

/** A due marker from the last listing. */
type Candidate = ReadyMarker & { lastModified: Date };

/**
 * A pending task of a type this worker cannot run is read again after this long (or at its TTL):
 * only its expiry concerns this worker's monitor, and re-reading it every poll would make idle
 * cost grow with the backlog of other types.
 */
const UNHANDLED_RECHECK_MS = 10 * 60_000;

/**
 * How often a monitor lists the keys under `ready/` that sort after every due time (a listing
 * for work stops at the first future marker, so garbage there is never seen otherwise).
 */
const TAIL_SWEEP_MS = 10 * 60_000;

/** A task outside this worker's share is taken once it has been due this long. */
const STEAL_AFTER_MS = 3000;

/** Workers started and not yet stopped in this process (tests use it to catch leaks). */
export function liveWorkers(): readonly Worker[] {
  return [...live];
}

function signalReason(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

function toFailure(error: unknown): Failure {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, permanent: error instanceof PermanentError };
  }
  return { name: "Error", message: String(error) };
}

/**
 * A worker over a queue. Register handlers with {@link Worker.task}, then {@link Worker.start}.
 * A worker never claims a type it has no handler for; with no handlers it is a pure monitor.
 */
export class Worker {
  /** This worker's id. */
  readonly id: string;
  /** Counters since start. */
  readonly stats: WorkerStats = {
    started: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    cancelled: 0,
    leaseLost: 0,
    recovered: 0,
    expired: 0,
    polls: 0,
  };
  readonly #queue: Queue;
  readonly #handlers = new Map<string, { handler: Handler; options: HandlerOptions }>();
  readonly #options: Required<Omit<WorkerOptions, "id" | "onEvent" | "timeoutSeconds">> &
    Pick<WorkerOptions, "onEvent" | "timeoutSeconds">;
  readonly #running = new Map<string, Running>();
  /** Marker key → local time until which it is not worth reading its task again. */
  readonly #skip = new Map<string, number>();
  /** Stale markers and malformed keys found by the monitor, deleted in one batch per listing. */
  readonly #sweep = new Map<string, Pick<ReadyMarker, "key"> & Partial<ReadyMarker>>();
  /** When the monitor last listed the part of `ready/` after every possible due time. */
  #tailListedAt = Number.NEGATIVE_INFINITY;
  #candidates: Candidate[] = [];
  /** Live worker ids (sorted), for splitting work; just this worker until heartbeats say more. */
  #peers: string[] = [];
  /** Where the next listing continues when the last one stopped at its page limit. */
  #resumeAfter: string | undefined;
  #listedAt = Number.NEGATIVE_INFINITY;
  #state: "new" | "running" | "stopping" | "stopped" = "new";
  #wake: AbortController = new AbortController();
  #loop: Promise<void> | undefined;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #peerTimer: ReturnType<typeof setTimeout> | undefined;
  #startedAt = 0;
  /** Background checks of claims whose write had an unknown outcome (see #confirmClaim). */
  readonly #probes = new Set<Promise<void>>();
  /** Aborted when the worker has stopped: ends the probes. */
  readonly #ending = new AbortController();
  readonly #refusals = new RefusedClaims();
  #unsafe: UnsafeBackendError | undefined;

  constructor(queue: Queue, given: WorkerOptions = {}) {
    this.#queue = queue;
    const options = checkOptions(workerOptionsSchema, given, "worker options");
    this.id = checkWorkerId(options.id ?? `w-${internals(queue).randomHex(10)}`);
    this.#options = {
      concurrency: options.concurrency ?? 1,
      leaseSeconds: options.leaseSeconds ?? 60,
      timeoutSeconds: options.timeoutSeconds,
      minPollMs: options.minPollMs ?? 250,
      maxPollMs: options.maxPollMs ?? 6000,
      monitor: options.monitor ?? true,
      heartbeatSeconds: options.heartbeatSeconds ?? 60,
      shutdownGraceMs: options.shutdownGraceMs ?? 10_000,
      signalGraceMs: options.signalGraceMs ?? 5000,
      listReuseMs: options.listReuseMs ?? 2000,
      skipDoctor: options.skipDoctor ?? false,
      onEvent: given.onEvent,
    };
  }

  /** Register the handler for a task type. Returns the worker, for chaining. */
  task<Input = unknown, Output = unknown>(
    type: string,
    handler: Handler<Input, Output>,
    options: HandlerOptions = {},
  ): this {
    checkTaskType(type);
    if (typeof handler !== "function")
      throw new ValidationError(`The handler for ${type} must be a function.`);
    this.#handlers.set(type, { handler: handler as Handler, options });
    return this;
  }

  /** The task types this worker handles. */
  get types(): string[] {
    return [...this.#handlers.keys()];
  }

  /**
   * Set when the worker stopped itself because the backend refused valid conditional writes
   * (code `UNSAFE_BACKEND`): run `oq doctor` against it.
   */
  get unsafeBackend(): UnsafeBackendError | undefined {
    return this.#unsafe;
  }

  /** Ids of the tasks running now. */
  get active(): string[] {
    return [...this.#running.keys()];
  }

  /**
   * Start polling. Resolves once started; the loop runs until {@link Worker.stop}. Throws
   * `UnsafeBackendError` when doctor found the backend unsafe (see `skipDoctor`).
   */
  async start(): Promise<void> {
    if (this.#state !== "new")
      throw new InvalidStateError(`Worker ${this.id} was already started.`);
    this.#state = "running";
    if (!(await this.#provenSafe())) return;
    this.#startedAt = this.#queue.now();
    live.add(this);
    if (this.#options.heartbeatSeconds > 0) {
      await this.#heartbeat();
      // Workers started together miss each other in their first listing: look again soon,
      // and again, until the heartbeat interval takes over.
      const again = (delays: number[]) => {
        const [next, ...rest] = delays;
        if (next === undefined) return;
        this.#peerTimer = setTimeout(() => {
          void this.#refreshPeers()
            .catch(() => {})
            .finally(() => {
              if (this.#state === "running") again(rest);
            });
        }, next);
      };
      again([300, 700, 2000]);
      this.#heartbeatTimer = setInterval(
        () => void this.#heartbeat(),
        this.#options.heartbeatSeconds * 1000,
      );
    }
    this.#loop = this.#run();
  }

  /**
   * Stop: no new claims; running handlers get `shutdownGraceMs` to finish, then their signals
   * fire (`Shutdown`) and they get `signalGraceMs` more to settle. A task is handed back as
   * pending (the attempt does not count) only once its handler has settled. A handler still
   * running after both graces keeps the task's lease, no longer renewed, until it lapses: no
   * other worker can start the same attempt meanwhile, and the attempt counts.
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#state === "new") {
      this.#state = "stopped";
      return;
    }
    if (this.#state === "stopped") return;
    this.#state = "stopping";
    this.#wake.abort();
    await this.#loop;
    const grace = options.graceMs ?? this.#options.shutdownGraceMs;
    await this.#interruptAll(grace, { kind: "shutdown" }, this.#options.signalGraceMs);
    await raceTimeout(Promise.all(this.#probes), this.#options.signalGraceMs);
    this.#ending.abort();
    await internals(this.#queue).flush();
    if (this.#heartbeatTimer !== undefined) clearInterval(this.#heartbeatTimer);
    if (this.#peerTimer !== undefined) clearTimeout(this.#peerTimer);
    if (this.#options.heartbeatSeconds > 0) {
      await this.#queue.storage.delete(this.#queue.keys.worker(this.id)).catch(() => {});
    }
    this.#state = "stopped";
    live.delete(this);
  }

  /**
   * One pass without starting the loop: claim and run due tasks until none is left or the time
   * budget runs out, then wait for the handlers. For runtimes that wake up briefly (a Worker's
   * cron trigger). The budget is a deadline: handlers still running shortly before it get their
   * signal, and their attempts count as failed (`BudgetExceeded`), so a task longer than any
   * drain fails after its retries; handlers that do not settle by then are left to their
   * leases. Returns how many tasks it started.
   */
  async drain(options: { budgetMs?: number } = {}): Promise<number> {
    const clock = this.#queue.clock;
    const budgetMs = options.budgetMs ?? 25_000;
    const deadline = clock.localNow() + budgetMs;
    // Handlers still running then get their signal early enough to settle and have their
    // outcome written by the deadline.
    const settleMs = Math.min(this.#options.signalGraceMs, budgetMs / 4);
    const signalAt = deadline - settleMs;
    const wasNew = this.#state === "new";
    if (wasNew && !this.#options.skipDoctor) await requireSafeBackend(this.#queue);
    if (wasNew) {
      this.#state = "running";
      live.add(this);
    }
    let started = 0;
    try {
      while (clock.localNow() < signalAt && this.#state === "running") {
        if (this.#running.size >= this.#options.concurrency) {
          await sleep(signalAt - clock.localNow(), this.#wake.signal);
          continue;
        }
        this.#listedAt = Number.NEGATIVE_INFINITY;
        const claimed = await this.#pass();
        started += claimed;
        if (claimed === 0 && this.#running.size === 0) break;
        if (claimed === 0) await sleep(signalAt - clock.localNow(), this.#wake.signal);
      }
      // An attempt cut short by the budget counts: a task that can never finish within one
      // drain must reach its retry limit and fail, not be handed back forever.
      const failure: Failure = {
        name: "BudgetExceeded",
        message: `the attempt did not finish within the drain budget of ${budgetMs} ms`,
      };
      await this.#interruptAll(
        Math.max(0, signalAt - clock.localNow()),
        { kind: "budget", failure },
        settleMs,
      );
      await internals(this.#queue).flush();
    } finally {
      if (wasNew) {
        this.#state = "stopped";
        live.delete(this);
      }
    }
    return started;
  }

  /**
   * Wait up to `graceMs` for the running handlers, then fire the signals of those still running
   * and wait up to `settleMs` for them to settle; whatever still runs is abandoned to its lease.
   */
  async #interruptAll(graceMs: number, interrupt: Interrupt, settleMs: number): Promise<void> {
    const ended = () => Promise.all([...this.#running.values()].map((r) => r.ended));
    await raceTimeout(ended(), graceMs);
    for (const run of this.#running.values()) {
      const name = interrupt.kind === "shutdown" ? "Shutdown" : "Timeout";
      const message =
        interrupt.kind === "shutdown" ? "the worker is shutting down" : interrupt.failure.message;
      this.#interrupt(run, interrupt, signalReason(name, message));
    }
    await raceTimeout(ended(), settleMs);
    for (const run of [...this.#running.values()]) this.#abandon(run);
  }

  /**
   * Require doctor's verdict before the first claim (claims rely on conditional writes). False
   * when the worker was stopped meanwhile; on an unsafe backend the worker ends stopped.
   */
  async #provenSafe(): Promise<boolean> {
    if (this.#options.skipDoctor) return true;
    try {
      await requireSafeBackend(this.#queue);
    } catch (error) {
      this.#state = "stopped";
      throw error;
    }
    return this.#state === "running";
  }

  // ---- the loop -----------------------------------------------------------------------------

  async #run(): Promise<void> {
    let idle = this.#options.minPollMs;
    while (this.#state === "running") {
      if (this.#running.size >= this.#options.concurrency) {
        // A freed slot aborts #wake. Racing the running tasks' promises instead would attach a
        // reaction to each of them per turn, kept until that task ends: a long task on a busy
        // worker held gigabytes of them.
        await sleep(60_000, this.#wake.signal);
        continue;
      }
      let claimed = 0;
      try {
        claimed = await this.#pass();
      } catch (error) {
        // Storage trouble (throttling, an outage) must not kill the loop: back off and retry.
        this.#queue.logger.warn(
          `poll failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      if (this.#state !== "running") break;
      if (claimed > 0) {
        idle = this.#options.minPollMs;
        if (this.#running.size < this.#options.concurrency && this.#candidates.length === 0) {
          await sleep(this.#options.minPollMs, this.#wake.signal);
        }
        continue;
      }
      await sleep(idle, this.#wake.signal);
      idle = Math.min(this.#options.maxPollMs, idle * 2);
    }
  }

  /** Try to fill free slots from the ready index. Returns how many tasks were claimed. */
  async #pass(): Promise<number> {
    const local = this.#queue.clock.localNow();
    if (this.#candidates.length === 0 || local - this.#listedAt > this.#options.listReuseMs) {
      await this.#list();
    }
    let claimed = 0;
    // Our own share first, oldest first; then others' shares once their tasks have waited a
    // while (their owner may be busy, dead or a pure monitor); then anything, when our share
    // gave nothing. Stealing goes newest first, away from where the owner is working.
    const stealBefore = this.#queue.now() - STEAL_AFTER_MS;
    const passes: { pick: (m: Candidate) => boolean; oldestFirst: boolean }[] = [
      { pick: (m) => this.#mine(m.id), oldestFirst: true },
      { pick: (m) => m.dueMs <= stealBefore, oldestFirst: false },
      { pick: () => claimed === 0, oldestFirst: false },
    ];
    for (const { pick, oldestFirst } of passes) {
      for (const marker of oldestFirst ? [...this.#candidates] : [...this.#candidates].reverse()) {
        if (this.#running.size >= this.#options.concurrency || this.#state !== "running")
          return claimed;
        if (!pick(marker)) continue;
        this.#candidates.splice(this.#candidates.indexOf(marker), 1);
        if ((this.#skip.get(marker.key) ?? 0) > this.#queue.clock.localNow()) continue;
        try {
          if (await this.#inspect(marker)) claimed++;
        } catch (error) {
          // One task's storage trouble (a throttled or failed read or claim) must not end the
          // pass: the other candidates are still due, and a pass that throws counts as idle and
          // backs the worker off (the chaos tests measured 10% faults making a worker ~80x
          // slower). The marker stays in the index, so a later listing retries it.
          this.#queue.logger.warn(
            `task ${marker.id}: ${error instanceof Error ? error.message : String(error)} (retried at the next listing)`,
          );
        }
      }
    }
    return claimed;
  }

  /**
   * True when a task falls in this worker's share. Workers split the id space evenly between
   * the live workers they see in heartbeats, so they rarely read a task another worker is
   * claiming at the same moment (each such read is a wasted GET).
   */
  #mine(id: string): boolean {
    if (this.#peers.length <= 1) return true;
    const slot = Number.parseInt(id.slice(-6), 16) % this.#peers.length;
    return this.#peers[slot] === this.id;
  }

  async #list(): Promise<void> {
    this.stats.polls++;
    if (this.#sweep.size > 0) {
      const swept = [...this.#sweep.values()];
      this.#sweep.clear();
      for (const key of await internals(this.#queue).sweepMarkers(swept)) this.#skip.delete(key);
    }
    const now = this.#queue.now();
    const local = this.#queue.clock.localNow();
    for (const [key, until] of this.#skip) if (until <= local) this.#skip.delete(key);
    const malformed = (o: { key: string; lastModified: Date }) => {
      // Nothing can name a malformed key; still, give whatever wrote it the grace period.
      if (this.#options.monitor && o.lastModified.getTime() + MARKER_GRACE_MS <= now)
        this.#sweep.set(o.key, { key: o.key });
    };
    if (this.#options.monitor && local - this.#tailListedAt > TAIL_SWEEP_MS) {
      this.#tailListedAt = local;
      const tail = `${this.#queue.keys.ready}9999~`;
      for await (const _ of internals(this.#queue).markers({
        startAfter: tail,
        onMalformed: malformed,
      }));
    }
    const found: Candidate[] = [];
    // A deep index (many running or unhandled tasks) is read a few pages per poll, resuming
    // where the last poll stopped, so a poll's cost stays bounded.
    const progress = { capped: false };
    let last: string | undefined;
    for await (const marker of internals(this.#queue).markers({
      dueBy: now,
      maxPages: 3,
      progress,
      ...(this.#resumeAfter === undefined ? {} : { startAfter: this.#resumeAfter }),
      onMalformed: malformed,
    })) {
      last = marker.key;
      if ((this.#skip.get(marker.key) ?? 0) > local || this.#running.has(marker.id)) continue;
      if (!this.#options.monitor && !this.#handlers.has(marker.type)) continue;
      found.push(marker);
    }
    this.#resumeAfter = progress.capped ? last : undefined;
    this.#candidates = found;
    this.#listedAt = this.#queue.clock.localNow();
  }

  #skipUntil(key: string, serverMs: number): void {
    const local = serverMs - this.#queue.clock.offsetMs();
    this.#skip.set(key, Math.max(local, this.#queue.clock.localNow() + 200));
  }

  /** Look at one due marker's task and act on it. True when the task was claimed. */
  async #inspect(marker: ReadyMarker & { lastModified: Date }): Promise<boolean> {
    const q = internals(this.#queue);
    let found: Versioned | undefined;
    try {
      found = await q.read(marker.id);
    } catch (error) {
      if (error instanceof OqError && error.code === "MALFORMED") {
        q.warnOnce(marker.key, `skipping task ${marker.id}: ${error.message}`);
        this.#emit({ kind: "skipped-malformed", id: q.keys.task(marker.id) });
        // A malformed object names no marker: once the grace is over the marker is garbage.
        this.#stale(marker, q.now(), true);
        return false;
      }
      throw error;
    }
    const now = q.now();
    // A finished task that still names its marker was written before terminal transitions
    // cleared it: the marker is garbage all the same (a replay writes a new one).
    if (
      found === undefined ||
      found.task.marker !== marker.relative ||
      isTerminal(found.task.status)
    ) {
      const pastGrace = marker.lastModified.getTime() + MARKER_GRACE_MS <= now;
      if (pastGrace && this.#options.monitor && !(found && isTerminal(found.task.status))) {
        // A task written by hand with a mistake (a wrong shard, a wrong "marker") would be lost
        // with its only marker: keep that marker and say what to fix.
        const stranded = await q.strandedTask(marker, found);
        if (stranded !== undefined) {
          q.warnOnce(marker.key, stranded);
          this.#skip.set(marker.key, q.clock.localNow() + 10 * 60_000);
          return false;
        }
      }
      this.#stale(marker, now, false);
      return false;
    }
    const task = found.task;
    const handled = this.#handlers.get(task.type);
    if (task.status === "pending") {
      if (isExpired(task, now)) {
        if (this.#options.monitor || handled)
          await this.#apply(found, (t) => expireTask(t, q.now()), "expired");
        return false;
      }
      if (ms(task.availableAt) > now) {
        this.#skipUntil(marker.key, ms(task.availableAt));
        return false;
      }
      if (!handled) {
        this.#skipUntil(
          marker.key,
          Math.min(
            task.expiresAt === null ? Number.POSITIVE_INFINITY : ms(task.expiresAt),
            now + UNHANDLED_RECHECK_MS,
          ),
        );
        return false;
      }
      return this.#claim(found);
    }
    if (task.status === "running") {
      if (!isLeaseExpired(task, now)) {
        this.#skipUntil(marker.key, leaseTakeoverAt(task));
        return false;
      }
      if (handled && task.cancel === null && canRetry(task)) return this.#claim(found);
      if (this.#options.monitor || handled) {
        await this.#apply(found, (t) => expireLease(t, q.now(), q.random()), "recovered");
      }
      return false;
    }
    return false;
  }

  /**
   * A marker its task does not name (an interrupted submit or move, a finished task whose
   * marker was not deleted, or a malformed task object). Its writer may still be mid-way, so it
   * is swept (in a batch, at the next listing) only after the grace period.
   */
  #stale(marker: Candidate, now: number, malformed: boolean): void {
    const staleAt = marker.lastModified.getTime() + MARKER_GRACE_MS;
    if (staleAt <= now && this.#options.monitor) {
      this.#sweep.set(marker.key, marker);
      return;
    }
    // A young marker is most likely a submit or move between its two writes: its task may
    // name it any moment, and skipping it for the whole grace delayed such tasks by up to 2
    // minutes on a slow link (found by the chaos tests' latency run). So a marker younger than
    // 10 s is looked at again after twice its age (at least 1 s); an older one, or one whose
    // task is malformed, only when the grace is over (the sweep heals a late write anyway).
    const age = Math.max(0, now - marker.lastModified.getTime());
    const young = !malformed && age < 10_000;
    this.#skipUntil(
      marker.key,
      young
        ? Math.min(staleAt, now + Math.max(1000, 2 * age))
        : staleAt > now
          ? staleAt
          : now + 60_000, // only a worker without the monitor gets here: a monitor sweeps it
    );
  }

  /** Apply a monitor transition; losing the race to another monitor or worker is fine. */
  async #apply(
    found: Versioned,
    change: (t: TaskRecord) => TaskRecord,
    kind: "expired" | "recovered",
  ): Promise<void> {
    const q = internals(this.#queue);
    let next: TaskRecord;
    try {
      next = change(found.task);
    } catch {
      return;
    }
    // write() places the marker: none once terminal (its old one is deleted in the next batch),
    // a new one when lease recovery moves the task to its backoff time.
    const written = await q.write(found, next, { batchMarkerDelete: true });
    if (written === undefined) return;
    next = written.task;
    if (kind === "expired") this.stats.expired++;
    else this.stats.recovered++;
    q.logger.warn(`${kind} task ${next.id} (${next.type}): now ${next.status}`);
    this.#emit({ kind, id: next.id, type: next.type, attempt: next.attempt });
  }

  async #claim(found: Versioned): Promise<boolean> {
    const q = internals(this.#queue);
    const entry = this.#handlers.get(found.task.type)!;
    const leaseMs = (entry.options.leaseSeconds ?? this.#options.leaseSeconds) * 1000;
    const token = q.randomHex(32);
    let next: TaskRecord;
    try {
      const now = q.now();
      const lease = leaseToWrite(q, leaseMs);
      next = claimTask(found.task, { workerId: this.id, token, leaseMs: lease, now });
    } catch {
      return false;
    }
    const key = q.keys.task(found.task.id);
    if (this.#unsafeBackend(found.task.id, this.#refusals.claiming(key, found.etag))) return false;
    let refused = false;
    let written: Versioned | undefined;
    try {
      written = await q.write(found, next, { onPreconditionFailed: () => (refused = true) });
    } catch (error) {
      this.#confirmClaim(next, token);
      throw error;
    }
    if (written === undefined) {
      if (refused) this.#refusals.refused(key, found.etag);
      return false;
    }
    this.#refusals.won();
    this.#start(written, token, leaseMs, entry);
    return true;
  }

  /**
   * A claim whose write failed may still have committed (an ambiguous write whose read-back
   * failed too). Nobody would run that attempt, yet it would count once its lease expired. So
   * keep reading the task until its lease would expire: if the claim did land, hand the task
   * back (released, attempt not counted) — its handler never ran.
   */
  #confirmClaim(claimed: TaskRecord, token: string): void {
    const q = internals(this.#queue);
    const until = ms(claimed.lease!.expiresAt);
    const probe = (async () => {
      for (let round = 0; q.now() < until && !this.#ending.signal.aborted; round++) {
        await sleep(Math.min(250 * 2 ** round, 2000), this.#ending.signal);
        try {
          const seen = await q.read(claimed.id);
          if (seen === undefined || !holdsLease(seen.task, token)) return;
          const back = await q.update(claimed.id, (t) => releaseTask(t, token, q.now()), seen);
          q.logger.warn(`task ${claimed.id}: its claim landed unseen; handed it back`);
          this.#emit({
            kind: "released",
            id: claimed.id,
            type: claimed.type,
            attempt: back.task.attempt,
          });
          return;
        } catch (error) {
          if (
            error instanceof OqError &&
            (error.code === "INVALID_STATE" || error.code === "NOT_FOUND")
          )
            return;
        }
      }
    })();
    this.#probes.add(probe);
    void probe.finally(() => this.#probes.delete(probe));
  }

  /**
   * Stop the worker when the backend keeps refusing conditions that held (see
   * `refused-claims.ts`) instead of livelocking silently. True when it stopped.
   */
  #unsafeBackend(id: string, unsafe: UnsafeBackendError | undefined): boolean {
    if (unsafe === undefined) return false;
    if (this.#state !== "running") return true;
    this.#queue.logger.error(unsafe.message);
    this.#emit({ kind: "unsafe-backend", id, error: unsafe.message });
    this.#unsafe = unsafe;
    void this.stop();
    return true;
  }

  // ---- running one task -------------------------------------------------------------------

  #start(
    claimed: Versioned,
    token: string,
    leaseMs: number,
    entry: { handler: Handler; options: HandlerOptions },
  ): void {
    const q = internals(this.#queue);
    const task = claimed.task;
    const controller = new AbortController();
    let free = () => {};
    const ended = new Promise<void>((resolve) => {
      free = resolve;
    });
    const run: Running = {
      id: task.id,
      type: task.type,
      token,
      leaseMs,
      current: claimed,
      controller,
      chain: Promise.resolve(),
      done: false,
      lost: false,
      startedLocal: q.clock.localNow(),
      settled: Promise.resolve(),
      marker: task.marker,
      signalledAt: undefined,
      interrupt: undefined,
      lapsing: false,
      freed: false,
      ended,
      free: () => {},
    };
    this.#running.set(task.id, run);
    this.#guardLease(run);
    this.stats.started++;
    this.#emit({ kind: "started", id: task.id, type: task.type, attempt: task.attempt });
    controller.signal.addEventListener(
      "abort",
      () => {
        run.signalledAt = q.clock.localNow();
      },
      { once: true },
    );

    const ctx: TaskContext = {
      task,
      attempt: task.attempt,
      workerId: this.id,
      signal: controller.signal,
      isCancellationRequested: async () => {
        const now = await q.read(task.id);
        if (now === undefined || !holdsLease(now.task, token)) {
          this.#lose(run);
          return true;
        }
        if (now.task.cancel !== null)
          controller.abort(
            signalReason("Cancelled", now.task.cancel.reason ?? "cancellation requested"),
          );
        return now.task.cancel !== null;
      },
      extendLease: async (seconds: number) => {
        if (!(seconds > 0))
          throw new ValidationError(`extendLease needs seconds > 0, got ${seconds}.`);
        const ok = await this.#renew(run, seconds * 1000);
        this.#guardLease(run);
        if (!ok)
          throw new InvalidStateError(
            `Task ${task.id}: the lease was lost or is no longer renewed (the signal fired); stop working on it.`,
          );
      },
    };

    const timeoutSeconds =
      task.timeoutSeconds ?? entry.options.timeoutSeconds ?? this.#options.timeoutSeconds;
    let timeoutTimer: ReturnType<typeof setTimeout> | undefined;
    if (timeoutSeconds !== undefined && timeoutSeconds !== null) {
      timeoutTimer = setTimeout(() => {
        const message = `attempt ${task.attempt} timed out after ${timeoutSeconds}s`;
        this.#interrupt(
          run,
          { kind: "timeout", failure: { name: "Timeout", message } },
          signalReason("Timeout", `timed out after ${timeoutSeconds}s`),
        );
      }, timeoutSeconds * 1000);
    }
    const checkEvery = Math.max(200, Math.min(leaseMs / 3, 10_000));
    const watchTimer = setInterval(() => void this.#watch(run), checkEvery);
    run.free = () => {
      if (run.freed) return;
      run.freed = true;
      clearInterval(watchTimer);
      if (timeoutTimer !== undefined) clearTimeout(timeoutTimer);
      // The same task may run here again (a later attempt) once this slot is given up.
      if (this.#running.get(task.id) === run) this.#running.delete(task.id);
      free();
      this.#wake.abort();
      this.#wake = this.#state === "running" ? new AbortController() : this.#wake;
    };

    const outcome = Promise.resolve()
      .then(() => entry.handler(task.input, ctx))
      .then(
        (output) => ({ ok: true as const, output }),
        (error: unknown) => ({ ok: false as const, error }),
      );

    run.settled = (async () => {
      const result = await outcome;
      clearInterval(watchTimer);
      clearTimeout(run.leaseTimer);
      if (timeoutTimer !== undefined) clearTimeout(timeoutTimer);
      const interrupt = run.interrupt;
      if (interrupt?.kind === "shutdown") await this.#release(run);
      else if (interrupt !== undefined) await this.#finish(run, { failure: interrupt.failure });
      else if (result.ok) await this.#finish(run, { output: result.output });
      else await this.#finish(run, { failure: toFailure(result.error) });
    })()
      .catch((error) => {
        q.logger.error(
          `task ${task.id}: could not record its outcome: ${error instanceof Error ? error.message : String(error)}`,
        );
      })
      .finally(() => run.free());
  }

  /** Fire a handler's signal on the worker's own account (timeout, shutdown, drain budget). */
  #interrupt(run: Running, interrupt: Interrupt, reason: Error): void {
    if (run.controller.signal.aborted && run.interrupt !== undefined) return;
    run.interrupt ??= interrupt;
    run.controller.abort(reason);
  }

  /**
   * Give up a slot whose handler (or its outcome write) did not finish while the worker ends
   * (stop, drain): the
   * lease is no longer renewed and lapses, and the attempt then counts. The task is not handed
   * back, because its handler may still be running; its result is still recorded if it comes
   * while the lease is ours.
   */
  #abandon(run: Running): void {
    if (run.freed) return;
    this.#letLapse(run);
    run.free();
  }

  /** Stop renewing a signalled attempt's lease (once), and say so. */
  #letLapse(run: Running): void {
    if (run.lapsing) return;
    run.lapsing = true;
    this.#queue.logger.warn(
      `task ${run.id}: its handler did not settle after its signal; its lease is left to lapse (the attempt counts)`,
    );
    this.#emit({
      kind: "abandoned",
      id: run.id,
      type: run.type,
      attempt: run.current.task.attempt,
    });
  }

  #lose(run: Running, why = "the lease was lost; the task may run elsewhere"): void {
    if (run.lost) return;
    run.lost = true;
    run.done = true;
    clearTimeout(run.leaseTimer);
    this.stats.leaseLost++;
    run.controller.abort(signalReason("LeaseLost", why));
    this.#queue.logger.warn(`task ${run.id}: lease lost; its result will be discarded`);
    this.#emit({ kind: "lease-lost", id: run.id, type: run.type });
  }

  /**
   * Arm the lease deadline of a running task: once the upper bound of server time reaches
   * {@link leaseStopAt} without a renewal, the handler's signal fires (`LeaseLost`) and nothing
   * more is written for this attempt — before the earliest moment another worker may take the
   * task over. A timer, not a later clock reading, measures the wait, so a step of the local
   * clock after arming cannot postpone it; it is armed from the response that granted the lease
   * (claim or renewal). Writes already in flight stay guarded by their `If-Match`.
   */
  #guardLease(run: Running): void {
    clearTimeout(run.leaseTimer);
    const expiresAt = run.current.task.lease?.expiresAt;
    if (run.done || expiresAt === undefined) return;
    const wait = leaseStopAt(run.current.task, run.leaseMs) - this.#queue.clock.bounds().upper;
    run.leaseTimer = setTimeout(
      () => {
        if (run.done) return;
        // Renewed meanwhile (by a path that did not re-arm): watch the new expiry instead.
        if (run.current.task.lease?.expiresAt !== expiresAt) return this.#guardLease(run);
        this.#lose(
          run,
          "the lease is about to run out and was not renewed; the task may run elsewhere",
        );
      },
      Math.max(0, wait),
    );
  }

  /** Serialize a write to this task after any write already in flight. */
  #serial<T>(run: Running, fn: () => Promise<T>): Promise<T> {
    const next = run.chain.then(fn, fn);
    run.chain = next.catch(() => {});
    return next;
  }

  /**
   * Periodic check while a handler runs: renew when half the lease is gone, else look for a
   * cancel request. Once the signal has fired, renewal goes on for `signalGraceMs` only; then the
   * lease is left to lapse and the slot is given up when it has (or at once if it was lost).
   */
  async #watch(run: Running): Promise<void> {
    const q = internals(this.#queue);
    if (
      run.signalledAt !== undefined &&
      q.clock.localNow() - run.signalledAt >= this.#options.signalGraceMs
    ) {
      this.#letLapse(run);
    }
    if (run.lapsing) {
      const lease = run.current.task.lease;
      if (run.lost || lease === null || ms(lease.expiresAt) <= q.now()) run.free();
      return;
    }
    if (run.done) return;
    try {
      const lease = run.current.task.lease;
      // By the upper bound, as the lease deadline (#guardLease) is: renew in time for it.
      const left = lease === null ? 0 : ms(lease.expiresAt) - q.clock.bounds().upper;
      if (left < run.leaseMs / 2) {
        await this.#renew(run, run.leaseMs);
        this.#guardLease(run);
        return;
      }
      const seen = await q.read(run.id);
      if (run.done) return;
      if (seen === undefined || !holdsLease(seen.task, run.token)) return this.#lose(run);
      if (seen.task.cancel !== null) {
        run.controller.abort(
          signalReason("Cancelled", seen.task.cancel.reason ?? "cancellation requested"),
        );
      }
    } catch (error) {
      q.logger.warn(
        `task ${run.id}: lease check failed: ${error instanceof Error ? error.message : String(error)}`,
      );
      // Past its expiry without a renewal, the lease may already belong to someone else: the
      // handler must stop, and its result will be refused if the task moved on.
      // Its outcome is still written if the token turns out to be ours (the CAS checks it).
      const lease = run.current.task.lease;
      if (lease !== null && ms(lease.expiresAt) <= q.now() && !run.controller.signal.aborted) {
        run.controller.abort(
          signalReason("LeaseLost", "the lease expired before it could be renewed"),
        );
      }
    }
  }

  async #renew(run: Running, leaseMs: number): Promise<boolean> {
    const q = internals(this.#queue);
    return this.#serial(run, async () => {
      if (run.done || run.lapsing) return false;
      try {
        run.current = await q.update(
          run.id,
          (t) => renewLease(t, run.token, leaseToWrite(q, leaseMs), q.now()),
          run.current,
        );
      } catch (error) {
        if (
          error instanceof OqError &&
          (error.code === "INVALID_STATE" || error.code === "NOT_FOUND")
        ) {
          this.#lose(run);
          return false;
        }
        throw error;
      }
      if (run.current.task.cancel !== null) {
        run.controller.abort(
          signalReason("Cancelled", run.current.task.cancel.reason ?? "cancellation requested"),
        );
      }
      return true;
    });
  }

  /**
   * Write `change` (the attempt's outcome) with the lease token. Storage trouble must not throw
   * a finished result away: the task would stay running until its lease ran out and then run
   * again (an 8 s storage restart did that). So the write is retried for as long as the lease
   * is ours, renewing it whenever storage takes writes again; `update()` re-reads after a failed
   * CAS, so only the current lease holder can still write. Returns false when the lease was lost
   * or ran out first (a `result-dropped` event says which task).
   */
  async #writeOutcome(run: Running, change: (t: TaskRecord) => TaskRecord): Promise<boolean> {
    const q = internals(this.#queue);
    for (let round = 0; ; round++) {
      try {
        run.current = await q.update(run.id, change, run.current, { batchMarkerDelete: true });
        return true;
      } catch (error) {
        if (
          error instanceof OqError &&
          (error.code === "INVALID_STATE" || error.code === "NOT_FOUND")
        ) {
          this.#lose(run);
          return false;
        }
        if (!isTransient(error)) throw error;
        const lease = run.current.task.lease;
        const left = lease === null ? 0 : ms(lease.expiresAt) - q.now();
        if (left <= 0) {
          const message = error instanceof Error ? error.message : String(error);
          q.logger.error(
            `task ${run.id}: gave up recording its outcome, the lease ran out (${message}); it will run again`,
          );
          this.#emit({
            kind: "result-dropped",
            id: run.id,
            type: run.type,
            attempt: run.current.task.attempt,
            error: message,
          });
          return false;
        }
        await sleep(Math.min(100 * 2 ** round, 2000, left));
        if (left < run.leaseMs / 2 && !run.lapsing) {
          try {
            run.current = await q.update(
              run.id,
              (t) => renewLease(t, run.token, run.leaseMs, q.now()),
              run.current,
            );
          } catch {
            // Still unreachable: the outcome write above tries again.
          }
        }
      }
    }
  }

  async #finish(run: Running, result: { output?: unknown; failure?: Failure }): Promise<void> {
    const q = internals(this.#queue);
    const durationMs = q.clock.localNow() - run.startedLocal;
    await this.#serial(run, async () => {
      if (run.done) return;
      let change: (t: TaskRecord) => TaskRecord;
      if (result.failure !== undefined) {
        const failure = result.failure;
        change = (t) =>
          t.cancel !== null
            ? finishCancelled(t, run.token, q.now())
            : failAttempt(t, run.token, failure, q.now(), q.random());
      } else {
        const output = result.output;
        const bad = checkOutput(output);
        change =
          bad === undefined
            ? (t) => completeTask(t, run.token, output, q.now())
            : (t) => failAttempt(t, run.token, bad, q.now(), q.random());
      }
      if (!(await this.#writeOutcome(run, change))) return;
      run.done = true;
      // Until the batched delete lands, do not spend a GET on our own finished task's marker.
      if (run.marker !== null) this.#skip.set(q.keys.full(run.marker), q.clock.localNow() + 60_000);
      const t = run.current.task;
      const kind =
        t.status === "completed"
          ? "completed"
          : t.status === "pending"
            ? "retry-scheduled"
            : t.status === "cancelled"
              ? "cancelled"
              : "failed";
      if (kind === "completed") this.stats.completed++;
      else if (kind === "retry-scheduled") this.stats.retried++;
      else if (kind === "cancelled") this.stats.cancelled++;
      else this.stats.failed++;
      this.#emit({
        kind,
        id: t.id,
        type: t.type,
        attempt: t.attempt,
        durationMs,
        ...(kind === "completed" || t.lastError === null ? {} : { error: t.lastError.message }),
      });
    });
  }

  /**
   * Hand a task back unfinished after its handler settled on a shutdown signal: pending, due at
   * once, the attempt not counted. Never while the handler may still run (another worker would
   * start the same attempt beside it).
   */
  async #release(run: Running): Promise<void> {
    const q = internals(this.#queue);
    await this.#serial(run, async () => {
      if (run.done) return;
      if (!(await this.#writeOutcome(run, (t) => releaseTask(t, run.token, q.now())))) return;
      run.done = true;
      this.#emit({ kind: "released", id: run.id, type: run.type });
    });
  }

  async #heartbeat(): Promise<void> {
    const q = internals(this.#queue);
    const body = JSON.stringify({
      id: this.id,
      types: this.types,
      concurrency: this.#options.concurrency,
      active: this.active,
      startedAt: new Date(this.#startedAt).toISOString(),
      seenAt: new Date(q.now()).toISOString(),
      heartbeatSeconds: this.#options.heartbeatSeconds,
      stats: this.stats,
    });
    try {
      await q.storage.put(q.keys.worker(this.id), body, { contentType: "application/json" });
      await this.#refreshPeers();
    } catch (error) {
      q.logger.warn(`heartbeat failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Live workers from the heartbeat listing (one LIST per heartbeat; no reads). */
  async #refreshPeers(): Promise<void> {
    const q = internals(this.#queue);
    const freshAfter = q.now() - 3 * this.#options.heartbeatSeconds * 1000;
    const peers = new Set([this.id]);
    let continuationToken: string | undefined;
    do {
      const page = await q.storage.list({
        prefix: q.keys.workers,
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const o of page.objects) {
        const m = /^([^/]+)\.json$/.exec(o.key.slice(q.keys.workers.length));
        if (m !== null && o.lastModified.getTime() >= freshAfter) peers.add(m[1]!);
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken !== undefined);
    this.#peers = [...peers].sort();
  }

  #emit(event: WorkerEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A listener's bug must not break task processing.
    }
  }
}

/** Wait for `promise` at most `ms`, without leaving a timer behind to keep the process alive. */
async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  const timer = new AbortController();
  try {
    await Promise.race([promise, sleep(ms, timer.signal)]);
  } finally {
    timer.abort();
  }
}

/** A storage error that may well not happen again: throttling, an outage, a 5xx, a lost answer. */
function isTransient(error: unknown): boolean {
  if (!(error instanceof OqError)) return false;
  if (error.code === "STORAGE") return error.status === undefined || error.status >= 500;
  return ["THROTTLED", "UNAVAILABLE", "AMBIGUOUS_WRITE", "CONFLICT"].includes(error.code);
}

function checkOutput(output: unknown): Failure | undefined {
  try {
    JSON.stringify(output === undefined ? null : output);
    return undefined;
  } catch (error) {
    return {
      name: "InvalidOutput",
      message: `handler output is not JSON-serializable: ${error instanceof Error ? error.message : String(error)}`,
      permanent: false,
    };
  }
}
