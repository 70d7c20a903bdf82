/**
 * The worker: polls the ready index, claims due tasks it has handlers for with a conditional
 * write, runs them under a lease it renews, and records the outcome. Every worker also runs the
 * monitor by default (expired leases, TTLs, stale markers), so liveness needs no separate daemon.
 *
 * This class wires the parts: {@link Poller} (finding and claiming work), {@link Slots}
 * (handlers running and outcomes being written), {@link Attempt} (one running task, with its
 * {@link Lease}), {@link Peers} (heartbeats and shares), {@link Monitor} (recovery and stale
 * markers) and {@link ClaimProbes} (claims that may have landed unseen).
 *
 * @module
 */
import { requireSafeBackend } from "../doctor/require.ts";
import { InvalidStateError, type UnsafeBackendError, ValidationError } from "../errors.ts";
import { checkTaskType, checkWorkerId } from "../keys.ts";
import { checkOptions, handlerOptionsSchema, workerOptionsSchema } from "../options.ts";
import { FinishedCounter } from "../queue/finished-counts.ts";
import { internals, type QueueInternals } from "../queue/internals.ts";
import type { Queue } from "../queue/queue.ts";
import type { Versioned } from "../queue/types.ts";
import {
  type AnyTaskDefinition,
  type HandlerInput,
  type HandlerResult,
  isTaskDefinition,
} from "../task/definition.ts";
import type { Failure } from "../task/transitions.ts";
import { sleep } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import { Attempt, type Interrupt, signalReason } from "./attempt.ts";
import { ClaimProbes } from "./claim-probes.ts";
import { type Emit, emitter, newStats, type WorkerStats } from "./events.ts";
import { ClaimLimits, type StartedClaim } from "./limits.ts";
import { LogScan } from "./log-scan.ts";
import { Monitor } from "./monitor.ts";
import {
  type CheckedHandlerOptions,
  type Handler,
  type HandlerEntry,
  type HandlerOptions,
  type ResolvedOptions,
  resolveOptions,
  type WorkerOptions,
} from "./options.ts";
import { Peers } from "./peers.ts";
import { Poller } from "./poller.ts";
import { QUICK_HANDLER_MS } from "./read-ahead.ts";
import { SkipList } from "./skip.ts";
import { Slots } from "./slots.ts";
import { validatingHandler } from "./typed-handler.ts";

export type { WorkerEvent, WorkerStats } from "./events.ts";
export {
  type Handler,
  type HandlerOptions,
  PermanentError,
  type TaskContext,
  type WorkerOptions,
} from "./options.ts";

const live = new Set<Worker>();

/** Workers started and not yet stopped in this process (tests use it to catch leaks). */
export function liveWorkers(): readonly Worker[] {
  return [...live];
}

/**
 * A worker over a queue. Register handlers with {@link Worker.task}, then {@link Worker.start}.
 * A worker never claims a type it has no handler for; with no handlers it is a pure monitor.
 */
export class Worker {
  /** This worker's id. */
  readonly id: string;
  /** Counters since start. */
  readonly stats: WorkerStats = newStats();
  /** The terminal states this worker wrote, by type and minute/hour: its heartbeat reports them. */
  readonly #finished: FinishedCounter;
  readonly #queue: Queue;
  /** The queue's internals (task store, ready index), which the parts work through. */
  readonly #q: QueueInternals;
  readonly #handlers = new Map<string, HandlerEntry>();
  readonly #options: ResolvedOptions;
  readonly #emit: Emit;
  /** Handlers running and outcomes being written: what the poller counts against `concurrency`. */
  readonly #slots: Slots<Attempt>;
  /** Whether the last handler returned quickly enough for claims to read ahead. */
  #quickHandlers = false;
  /**
   * Attempts that gave up their slot leaving their task pending (a retry scheduled, or handed
   * back): a drain looks again when one did so during its pass.
   */
  #requeued = 0;
  readonly #probes: ClaimProbes;
  readonly #peers: Peers;
  readonly #poller: Poller;
  /** Per-type limits of claims: this worker's own, and the fleet's. */
  readonly #limits: ClaimLimits;
  /** The background scan of `tasks/` (`logScan` option), when on. */
  readonly #logScan: LogScan | undefined;
  #state: "new" | "running" | "stopping" | "stopped" = "new";
  #loop: Promise<void> | undefined;
  /** The first heartbeat (and the look for peers), written while the first claims run. */
  #peersStarted: Promise<void> | undefined;
  #startedAt = 0;
  #unsafe: UnsafeBackendError | undefined;

  constructor(queue: Queue, given: WorkerOptions = {}) {
    this.#queue = queue;
    const q = internals(queue);
    this.#q = q;
    this.#finished = new FinishedCounter(() => q.now());
    const options = checkOptions(workerOptionsSchema, given, "worker options");
    this.id = checkWorkerId(options.id ?? `w-${q.randomHex(10)}`);
    this.#options = resolveOptions(options, given.onEvent);
    this.#slots = new Slots(this.#options.concurrency);
    this.#emit = emitter(given.onEvent);
    const o = this.#options;
    const skip = new SkipList(queue.clock);
    const monitor = new Monitor(q, {
      enabled: o.monitor,
      roundMs: o.monitorRoundSeconds * 1000,
      stats: this.stats,
      finished: this.#finished,
      emit: this.#emit,
      skip,
      handles: (type) => this.#handlers.has(type),
      owns: (partition) => this.#peers.owns(partition),
      mine: (id) => this.#peers.mine(id),
      workerId: this.id,
    });
    this.#probes = new ClaimProbes(q, this.#emit, this.#finished);
    this.#limits = this.#claimLimits();
    this.#peers = new Peers(q, this.id, o.heartbeatSeconds, () => this.#heartbeatState(), {
      idIsNew: options.id === undefined,
    });
    this.#poller = new Poller(q, {
      ...o,
      workerId: this.id,
      handlers: this.#handlers,
      running: this.#slots,
      skip,
      monitor,
      mine: (id) => this.#peers.mine(id),
      shareVersion: () => this.#peers.live,
      alone: () => this.#peers.live.length <= 1,
      onContended: () => this.#peers.contended(),
      probes: this.#probes,
      limits: this.#limits,
      stats: this.stats,
      emit: this.#emit,
      quickHandlers: () => this.#quickHandlers,
      isRunning: () => this.#state === "running",
      start: (claimed, claim) => this.#startAttempt(claimed, claim, skip),
      onUnsafe: (id, error) => this.#onUnsafe(id, error),
    });
    this.#logScan = logScanOf(q, o);
  }

  /** The limits of this worker's claims: per type its own, and the fleet's (`./limits.ts`). */
  #claimLimits(): ClaimLimits {
    return new ClaimLimits(this.#q, {
      ...this.#options,
      workerId: this.id,
      handlers: this.#handlers,
      runningOf: (type) => this.#slots.takenBy(type),
    });
  }

  /**
   * Register the handler for a task definition ({@link defineTask}): the handler's input and
   * return types come from its schemas; the stored input is validated before the handler is
   * called and the return value after (either failing fails the task at once, without retries).
   * Returns the worker, for chaining.
   */
  task<D extends AnyTaskDefinition>(
    definition: D,
    handler: Handler<HandlerInput<D>, HandlerResult<D>>,
    options?: HandlerOptions,
  ): this;
  /** Register the handler for a task type. Returns the worker, for chaining. */
  task<Input = unknown, Output = unknown>(
    type: string,
    handler: Handler<Input, Output>,
    options?: HandlerOptions,
  ): this;
  task(
    typeOrDefinition: string | AnyTaskDefinition,
    handler: Handler,
    options: HandlerOptions = {},
  ): this {
    const definition = isTaskDefinition(typeOrDefinition) ? typeOrDefinition : undefined;
    const type = definition?.type ?? (typeOrDefinition as string);
    checkTaskType(type);
    if (typeof handler !== "function")
      throw new ValidationError(`The handler for ${type} must be a function.`);
    // Two modules registering one type would otherwise leave the last one's handler in silence.
    if (this.#handlers.has(type))
      throw new ValidationError(
        `This worker already has a handler for ${type}: register each task type once.`,
      );
    // Other keys of the options pass through as given; the durations become seconds.
    const checked = checkOptions(handlerOptionsSchema, options, `handler options of ${type}`);
    const resolved = { ...options, ...checked } as CheckedHandlerOptions;
    const run = definition === undefined ? handler : validatingHandler(definition, handler);
    this.#handlers.set(type, { handler: run, options: resolved });
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
    return [...this.#slots.attempts.keys()];
  }

  /** What this worker's heartbeat says about it. */
  #heartbeatState() {
    return {
      types: this.types,
      concurrency: this.#options.concurrency,
      active: this.active,
      startedAt: this.#startedAt,
      stats: this.stats,
      finished: this.#finished,
    };
  }

  /**
   * Start polling. Resolves once started; the loop runs until {@link Worker.stop}. Throws
   * `UnsafeBackendError` when doctor found the backend unsafe (see `skipDoctor`).
   */
  async start(): Promise<void> {
    if (this.#state !== "new")
      throw new InvalidStateError(`Worker ${this.id} was already started.`);
    this.#state = "running";
    // The verdict and the manifest are read at once (a start waits for one round trip, not
    // two); nothing is claimed before both are in, so never before a verdict says safe.
    const manifest = this.#q.manifest.load();
    manifest.catch(() => {});
    if (!(await this.#provenSafe())) return;
    try {
      await manifest;
    } catch (error) {
      this.#state = "stopped";
      throw error;
    }
    this.#startedAt = this.#queue.now();
    live.add(this);
    // The first listing goes out before the first heartbeat, which is written while the first
    // claims run: peers only divide the work, and until they are known this worker takes the
    // whole index, as it would with no peers.
    this.#loop = this.#poller.run();
    this.#peersStarted = this.#peers
      .start(() => this.#state === "running")
      .catch((error) => this.#queue.logger.warn(`heartbeat failed: ${errorMessage(error)}`));
    this.#q.wake.add(this.#poller);
    this.#logScan?.start();
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
    this.#q.wake.remove(this.#poller);
    this.#poller.wake();
    await Promise.all([this.#loop, this.#logScan?.stop()]);
    const grace = options.graceMs ?? this.#options.shutdownGraceMs;
    await this.#interruptAll(grace, { kind: "shutdown" }, this.#options.signalGraceMs);
    await raceTimeout(
      Promise.all([this.#probes.all(), this.#limits.released()]),
      this.#options.signalGraceMs,
    );
    this.#probes.end();
    await this.#q.flush();
    // Its first heartbeat written before it is deleted, not after.
    await this.#peersStarted;
    await this.#peers.stop();
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
    // The verdict and the manifest at once, as in start(); no claim before both are in.
    if (wasNew)
      await Promise.all([
        this.#options.skipDoctor ? undefined : requireSafeBackend(this.#queue),
        this.#q.manifest.load(),
      ]);
    if (wasNew) {
      this.#state = "running";
      live.add(this);
    }
    try {
      const started = await this.#drainUntil(signalAt);
      // An attempt cut short by the budget counts: a task that can never finish within one
      // drain must reach its retry limit and fail, not be handed back forever.
      const failure: Failure = {
        name: "BudgetExceeded",
        message: `the attempt did not finish within the drain budget of ${budgetMs} ms`,
      };
      const graceMs = Math.max(0, signalAt - clock.localNow());
      await this.#interruptAll(graceMs, { kind: "budget", failure }, settleMs);
      await this.#limits.released();
      await this.#q.flush();
      // A drain writes no heartbeats: keep what it finished where `stats()` counts it.
      if (wasNew || this.#state === "stopped") await this.#peers.keepCounts({ clear: true });
      return started;
    } finally {
      if (wasNew) {
        this.#state = "stopped";
        live.delete(this);
      }
    }
  }

  /** Claim and start due tasks until none is left or local time `signalAt`; how many started. */
  async #drainUntil(signalAt: number): Promise<number> {
    const clock = this.#queue.clock;
    let started = 0;
    while (clock.localNow() < signalAt && this.#state === "running") {
      if (this.#slots.size >= this.#options.concurrency) {
        await sleep(signalAt - clock.localNow(), this.#poller.wakeSignal);
        continue;
      }
      this.#poller.relist();
      const requeuedBefore = this.#requeued;
      const claimed = await this.#poller.pass();
      started += claimed;
      // An attempt that ended during the pass was still running when its partition was listed,
      // so the retry it scheduled went unseen: look again before calling the queue drained.
      if (claimed === 0 && this.#slots.attempts.size === 0 && this.#requeued !== requeuedBefore)
        continue;
      if (claimed === 0 && this.#slots.attempts.size === 0) {
        // A task that may be due by the server's clock but not yet by our lower bound of it (a
        // submit a moment ago) is waited for when that fits the budget, instead of being left
        // to the next drain.
        const dueAt = this.#poller.notDueUntil;
        const waitMs = dueAt === undefined ? Number.POSITIVE_INFINITY : dueAt - clock.localNow();
        if (waitMs > signalAt - clock.localNow()) break;
        await sleep(Math.max(10, waitMs + 10));
        continue;
      }
      if (claimed === 0) await sleep(signalAt - clock.localNow(), this.#poller.wakeSignal);
    }
    return started;
  }

  /**
   * Wait up to `graceMs` for the running handlers, then fire the signals of those still running
   * and wait up to `settleMs` for them to settle; whatever still runs is abandoned to its lease.
   */
  async #interruptAll(graceMs: number, interrupt: Interrupt, settleMs: number): Promise<void> {
    const ended = () => Promise.all([...this.#slots.attempts.values()].map((r) => r.ended));
    await raceTimeout(ended(), graceMs);
    for (const run of this.#slots.attempts.values()) {
      const name = interrupt.kind === "shutdown" ? "Shutdown" : "Timeout";
      const message =
        interrupt.kind === "shutdown" ? "the worker is shutting down" : interrupt.failure.message;
      run.interrupt(interrupt, signalReason(name, message));
    }
    await raceTimeout(ended(), settleMs);
    for (const run of [...this.#slots.attempts.values()]) run.abandon();
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

  /** Run a task the poller just claimed, in a slot given back when the attempt frees it. */
  #startAttempt(claimed: Versioned, claim: StartedClaim, skip: SkipList): void {
    const attempt = new Attempt(this.#q, claimed, claim, {
      workerId: this.id,
      signalGraceMs: this.#options.signalGraceMs,
      progressSeconds: this.#options.progressSeconds,
      timeoutSeconds: this.#options.timeoutSeconds,
      stats: this.stats,
      finished: this.#finished,
      emit: this.#emit,
      skip,
      limits: this.#limits,
      onFree: (freed) => {
        this.#slots.freed(freed);
        if (freed.task.status === "pending") this.#requeued++;
        this.#poller.wake();
      },
      onHandled: (handled) => {
        this.#quickHandlers = handled.ageMs <= QUICK_HANDLER_MS;
        if (this.#slots.handled(handled)) this.#poller.wake();
      },
    });
    this.#slots.add(attempt);
    attempt.start();
  }

  /**
   * Stop the worker when the backend keeps refusing conditions that held (see
   * `refused-claims.ts`) instead of livelocking silently.
   */
  #onUnsafe(id: string, unsafe: UnsafeBackendError): void {
    if (this.#state !== "running") return;
    this.#queue.logger.error(unsafe.message, {
      worker: this.id,
      taskId: id,
      event: "unsafe-backend",
      error: unsafe,
    });
    this.#emit({ kind: "unsafe-backend", id, error: unsafe.message });
    this.#unsafe = unsafe;
    void this.stop();
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

/** The scan of task logs `options.logScan` asks for, if any. */
function logScanOf(q: QueueInternals, o: ResolvedOptions): LogScan | undefined {
  const scan = o.logScan === true ? {} : o.logScan;
  if (scan === false) return undefined;
  return new LogScan(q, {
    pageSize: scan.pageSize ?? 100,
    intervalMs: scan.intervalMs ?? o.maxPollMs,
  });
}
