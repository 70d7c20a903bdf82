/**
 * One running attempt: runs the handler under a lease it renews, fires the handler's signal on
 * cancel, timeout, shutdown or a lost lease, and records the outcome (retrying while the lease
 * is ours, through its {@link Lease}). See "Leases and time", "Cancellation" and "Shutdown" in
 * docs/protocol.md.
 *
 * @module
 */
import { InvalidStateError, ValidationError } from "../errors.ts";
import type { LogFields } from "../logger.ts";
import { MAX_LEASE_SECONDS } from "../options.ts";
import type { FinishedCounter } from "../queue/finished-counts.ts";
import type { QueueInternals } from "../queue/internals.ts";
import type { LimitGrant } from "../queue/limits.ts";
import type { Versioned } from "../queue/types.ts";
import type { PayloadRef, TaskRecord } from "../task/record.ts";
import { type Failure, holdsLease, ms, releaseTask } from "../task/transitions.ts";
import { startTimer, type Timer } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import type { Emit, WorkerStats } from "./events.ts";
import { Lease } from "./lease.ts";
import type { ClaimLimits, StartedClaim } from "./limits.ts";
import type { HandlerEntry, TaskContext } from "./options.ts";
import { finishChange, recordOutcome, toFailure } from "./outcome.ts";
import { readInput, storeOutput } from "./payloads.ts";
import { ProgressReporter } from "./progress.ts";
import type { SkipList } from "./skip.ts";
import { logTaskEvent, taskFields } from "./task-log.ts";

/**
 * How long a finished task's own marker is not read again. The batched delete lands within about
 * half a second; longer only grows the skip map with the worker's throughput (a 60 s window held
 * about 6 MB at 800 tasks/s in the 60,000-task memory test), and a marker that outlives it costs
 * one GET before the sweep removes it.
 */
const FINISHED_SKIP_MS = 5000;

/**
 * When the first lease check comes after the claim, ms (or sooner for short leases): it renews the
 * lease, which moves the task's marker to the lease's expiry (docs/protocol.md, "Leases in the
 * index").
 */
export const FIRST_CHECK_MS = 1000;

/**
 * Why the worker fired a handler's signal itself, which decides what the attempt records once
 * its handler settles: `shutdown` — the task is released (pending, the attempt not counted);
 * `timeout`, or `budget` (a drain ran out of time) — a failed attempt, whatever the handler
 * returned, so a task too long for any drain reaches its retry limit and fails.
 */
export type Interrupt = { kind: "shutdown" } | { kind: "timeout" | "budget"; failure: Failure };

/** What an attempt needs from its worker. */
export interface AttemptOptions {
  workerId: string;
  /** How long a signalled handler's lease is still renewed, ms. */
  signalGraceMs: number;
  /** The worker's default per-attempt time limit, seconds. */
  timeoutSeconds: number | undefined;
  /** At most one write of its own per this many seconds for a handler's progress. */
  progressSeconds: number;
  stats: WorkerStats;
  /** The worker's finished counts (its heartbeat reports them). */
  finished: FinishedCounter;
  emit: Emit;
  /** Where a finished attempt's marker is skipped until its batched delete lands. */
  skip: SkipList;
  /** Called once when the slot is given up (handler settled, lease lapsed, or abandoned). */
  onFree: (attempt: Attempt) => void;
  /**
   * Called once when the handler returned or threw on its own (no interrupt) and only the
   * outcome write is left, for a type without fleet limits: the worker may hand the slot to the
   * next claim while the write goes on (the attempt stays running until {@link onFree}).
   */
  onHandled?: (attempt: Attempt) => void;
  /** The worker's type limits: a fleet slot is extended with the lease and freed at the end. */
  limits?: ClaimLimits;
}

/** An `Error` for a handler's `signal.reason`, named after why the signal fired. */
export function signalReason(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

const cancelReason = (task: TaskRecord) =>
  signalReason("Cancelled", task.cancel?.reason ?? "cancellation requested");

/** One claimed task while this worker runs it. */
export class Attempt {
  /** The task id. */
  readonly id: string;
  /** The task type. */
  readonly type: string;
  /** Resolves when the slot is given up. */
  readonly ended: Promise<void>;
  /** Resolves once the outcome was written (or given up) after the handler settled. */
  settled: Promise<void> = Promise.resolve();
  readonly #queue: QueueInternals;
  readonly #options: AttemptOptions;
  readonly #entry: HandlerEntry;
  /** The slot or start a fleet limit of the type granted this attempt, if any. */
  readonly #grant: LimitGrant | undefined;
  readonly #controller = new AbortController();
  readonly #lease: Lease;
  readonly #progress: ProgressReporter;
  readonly #startedLocal: number;
  /** The task's marker (relative key) while we run it. */
  readonly #marker: string | null;
  /** Local time at which the handler's signal fired. */
  #signalledAt: number | undefined;
  /** Why the worker itself interrupted the handler; decides what a late outcome records. */
  #interrupt: Interrupt | undefined;
  /** Set once the signal grace ran out: the lease is no longer renewed and will lapse. */
  #lapsing = false;
  /** Set once the slot was given up (handler settled, or lease lapsed, or worker ended). */
  #freed = false;
  #resolveEnded: () => void = () => {};
  #watchTimer: ReturnType<typeof setInterval> | undefined;
  #firstCheck: ReturnType<typeof setTimeout> | undefined;
  #timeoutTimer: Timer | undefined;

  constructor(
    queue: QueueInternals,
    claimed: Versioned,
    claim: StartedClaim,
    options: AttemptOptions,
  ) {
    const { grant } = claim;
    this.#grant = grant;
    this.#queue = queue;
    this.#options = options;
    this.#entry = claim.entry;
    this.id = claimed.task.id;
    this.type = claimed.task.type;
    this.#lease = new Lease(queue, claimed, claim.token, claim.leaseMs, {
      lapsing: () => this.#lapsing,
      lost: (why) => this.#lost(why),
      cancelled: (task) => this.#controller.abort(cancelReason(task)),
      dropped: (message) => this.#dropResult(message),
      ...(grant?.holder === true && options.limits !== undefined
        ? { extendSlot: (leaseMs: number) => options.limits!.extend(grant, leaseMs) }
        : {}),
    });
    this.#progress = new ProgressReporter(
      this.#lease,
      options.progressSeconds * 1000,
      queue.clock,
      queue.logger,
    );
    this.#marker = claimed.task.marker;
    this.#startedLocal = queue.clock.localNow();
    this.ended = new Promise<void>((resolve) => {
      this.#resolveEnded = resolve;
    });
  }

  /** The task as last written by this attempt. */
  get task(): TaskRecord {
    return this.#lease.current.task;
  }

  /** True once the lease is no longer renewed (the signal grace ran out, or abandoned). */
  get lapsing(): boolean {
    return this.#lapsing;
  }

  /** Run the handler: arm the lease guard, the timeout and the periodic check; record the outcome. */
  start(): void {
    const q = this.#queue;
    const task = this.#lease.current.task;
    this.#lease.guard();
    this.#options.stats.started++;
    const started = {
      kind: "started",
      id: task.id,
      type: task.type,
      attempt: task.attempt,
    } as const;
    this.#options.emit(started);
    logTaskEvent(q.logger, this.#options.workerId, started);
    this.#controller.signal.addEventListener(
      "abort",
      () => {
        this.#signalledAt = q.clock.localNow();
      },
      { once: true },
    );
    const ctx = this.#context(task);
    this.#armTimeout(task);
    const checkEvery = Math.max(200, Math.min(this.#lease.leaseMs / 3, 10_000));
    this.#watchTimer = setInterval(() => void this.watch(), checkEvery);
    // The first check moves the task's marker to its lease expiry (a renewal does): a task
    // still running then drops out of the due part of the index. Shorter tasks never pay for it.
    this.#firstCheck = setTimeout(() => void this.watch(), Math.min(FIRST_CHECK_MS, checkEvery));
    const outcome = Promise.resolve()
      // A large input is read first (one GET); a small one reaches the handler as it always did.
      .then(() =>
        task.inputRef === undefined
          ? this.#entry.handler(task.input, ctx)
          : readInput(q, task).then((input) => this.#entry.handler(input, ctx)),
      )
      .then(
        // A large output is stored while the lease is still renewed (it may take a while).
        async (output) => ({ ok: true as const, stored: await storeOutput(q, task, output) }),
        (error: unknown) => ({ ok: false as const, error }),
      );
    this.settled = (async () => {
      const result = await outcome;
      this.#handlerSettled();
      const interrupt = this.#interrupt;
      if (interrupt?.kind === "shutdown") await this.#release();
      else if (interrupt !== undefined) await this.#finish({ failure: interrupt.failure });
      else if (result.ok) await this.#finish(result.stored);
      else await this.#finish({ failure: toFailure(result.error) });
    })()
      .catch((error) => {
        q.logger.error(
          `task ${task.id}: could not record its outcome: ${errorMessage(error)}`,
          taskFields(task, this.#options.workerId, { error }),
        );
      })
      .finally(() => {
        // The handler has settled: its fleet slot may go to another task.
        this.#options.limits?.release(this.#grant);
        this.free();
      });
  }

  #context(task: TaskRecord): TaskContext {
    const q = this.#queue;
    return {
      task,
      attempt: task.attempt,
      workerId: this.#options.workerId,
      signal: this.#controller.signal,
      progress: (value: unknown) => this.#progress.report(value),
      isCancellationRequested: async () => {
        const now = await q.read(task.id);
        if (now === undefined || !holdsLease(now.task, this.#lease.token)) {
          this.#lease.lose();
          return true;
        }
        if (now.task.cancel !== null) this.#controller.abort(cancelReason(now.task));
        return now.task.cancel !== null;
      },
      extendLease: async (seconds: number) => {
        // A lease longer than any claim's would also date its fleet-limit slot past what other
        // workers accept as written by a worker (they would drop it: src/queue/limits.ts).
        if (!(seconds > 0 && seconds <= MAX_LEASE_SECONDS))
          throw new ValidationError(
            `extendLease needs seconds > 0, at most ${MAX_LEASE_SECONDS} (7 days), got ${seconds}.`,
          );
        const ok = await this.#lease.renew(seconds * 1000);
        this.#lease.guard();
        if (!ok)
          throw new InvalidStateError(
            `Task ${task.id}: the lease was lost or is no longer renewed (the signal fired); stop working on it.`,
          );
      },
    };
  }

  #armTimeout(task: TaskRecord): void {
    const timeoutSeconds =
      task.timeoutSeconds ?? this.#entry.options.timeoutSeconds ?? this.#options.timeoutSeconds;
    if (timeoutSeconds === undefined || timeoutSeconds === null) return;
    // startTimer: a timeout beyond 24.8 days would fire at once from a plain setTimeout.
    this.#timeoutTimer = startTimer(() => {
      const message = `attempt ${task.attempt} timed out after ${timeoutSeconds}s`;
      this.interrupt(
        { kind: "timeout", failure: { name: "Timeout", message } },
        signalReason("Timeout", `timed out after ${timeoutSeconds}s`),
      );
    }, timeoutSeconds * 1000);
  }

  /** How long since the attempt started, local ms. */
  get ageMs(): number {
    return this.#queue.clock.localNow() - this.#startedLocal;
  }

  /**
   * The handler settled: stop its timers. Uninterrupted and without a fleet grant, only the
   * outcome write is left, so the worker may give its handler slot to the next claim.
   */
  #handlerSettled(): void {
    this.#clearTimers();
    if (this.#interrupt === undefined && this.#grant === undefined) this.#options.onHandled?.(this);
  }

  #clearTimers(): void {
    this.#progress.stop();
    clearInterval(this.#watchTimer);
    clearTimeout(this.#firstCheck);
    this.#lease.unguard();
    this.#timeoutTimer?.clear();
  }

  /** Give up the slot (once): the same task may run here again (a later attempt) after this. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#progress.stop();
    clearInterval(this.#watchTimer);
    clearTimeout(this.#firstCheck);
    this.#timeoutTimer?.clear();
    this.#options.onFree(this);
    this.#resolveEnded();
  }

  /** Fire the handler's signal on the worker's own account (timeout, shutdown, drain budget). */
  interrupt(interrupt: Interrupt, reason: Error): void {
    if (this.#controller.signal.aborted && this.#interrupt !== undefined) return;
    this.#interrupt ??= interrupt;
    this.#controller.abort(reason);
  }

  /**
   * Give up a slot whose handler (or its outcome write) did not finish while the worker ends
   * (stop, drain): the lease is no longer renewed and lapses, and the attempt then counts. The
   * task is not handed back, because its handler may still be running; its result is still
   * recorded if it comes while the lease is ours.
   */
  abandon(): void {
    if (this.#freed) return;
    this.#letLapse();
    this.free();
  }

  /** Stop renewing a signalled attempt's lease (once), and say so. */
  #letLapse(): void {
    if (this.#lapsing) return;
    this.#lapsing = true;
    this.#queue.logger.warn(
      `task ${this.id}: its handler did not settle after its signal; its lease is left to lapse (the attempt counts)`,
      this.#fields({ event: "abandoned" }),
    );
    this.#options.emit({
      kind: "abandoned",
      id: this.id,
      type: this.type,
      attempt: this.task.attempt,
    });
  }

  /** The lease was lost: the handler's signal fires (`LeaseLost`); its result is discarded. */
  #lost(why: string): void {
    this.#options.stats.leaseLost++;
    this.#controller.abort(signalReason("LeaseLost", why));
    this.#queue.logger.warn(
      `task ${this.id}: lease lost; its result will be discarded`,
      this.#fields({ event: "lease-lost" }),
    );
    this.#options.emit({ kind: "lease-lost", id: this.id, type: this.type });
  }

  /**
   * The periodic check while the handler runs: renew when half the lease is gone, else look for
   * a cancel request. Once the signal has fired, renewal goes on for `signalGraceMs` only; then
   * the lease is left to lapse and the slot is given up when it has (or at once if it was lost).
   */
  async watch(): Promise<void> {
    const q = this.#queue;
    if (
      this.#signalledAt !== undefined &&
      q.clock.localNow() - this.#signalledAt >= this.#options.signalGraceMs
    ) {
      this.#letLapse();
    }
    const held = this.#lease;
    if (this.#lapsing) {
      const lease = held.current.task.lease;
      if (held.lost || lease === null || ms(lease.expiresAt) <= q.now()) this.free();
      return;
    }
    if (held.done) return;
    try {
      const lease = held.current.task.lease;
      // By the upper bound, as the lease deadline (Lease.guard) is: renew in time for it.
      const left = lease === null ? 0 : ms(lease.expiresAt) - q.clock.bounds().upper;
      if (left < held.leaseMs / 2 || !held.indexedAtExpiry) {
        await held.renew(held.leaseMs);
        held.guard();
        return;
      }
      const seen = await q.read(this.id);
      if (held.done) return;
      if (seen === undefined || !holdsLease(seen.task, held.token)) return held.lose();
      if (seen.task.cancel !== null) this.#controller.abort(cancelReason(seen.task));
    } catch (error) {
      q.logger.warn(
        `task ${this.id}: lease check failed: ${errorMessage(error)}`,
        this.#fields({ error }),
      );
      // Past its expiry without a renewal, the lease may already belong to someone else: the
      // handler must stop, and its result will be refused if the task moved on.
      // Its outcome is still written if the token turns out to be ours (the CAS checks it).
      const lease = held.current.task.lease;
      if (lease !== null && ms(lease.expiresAt) <= q.now() && !this.#controller.signal.aborted) {
        this.#controller.abort(
          signalReason("LeaseLost", "the lease expired before it could be renewed"),
        );
      }
    }
  }

  #dropResult(message: string): void {
    this.#queue.logger.error(
      `task ${this.id}: gave up recording its outcome, the lease ran out (${message}); it will run again`,
      this.#fields({ event: "result-dropped", error: message }),
    );
    this.#options.emit({
      kind: "result-dropped",
      id: this.id,
      type: this.type,
      attempt: this.task.attempt,
      error: message,
    });
  }

  async #finish(result: {
    output?: unknown;
    outputRef?: PayloadRef;
    failure?: Failure;
  }): Promise<void> {
    const q = this.#queue;
    const durationMs = q.clock.localNow() - this.#startedLocal;
    const held = this.#lease;
    await held.serial(async () => {
      if (held.done) return;
      if (!(await held.write(finishChange(q, held.token, result)))) return;
      held.markDone();
      // Until the batched delete lands, do not spend a GET on our own finished task's marker.
      if (this.#marker !== null)
        this.#options.skip.set(q.keys.full(this.#marker), q.clock.localNow() + FINISHED_SKIP_MS);
      const t = held.current.task;
      const event = recordOutcome(t, durationMs, this.#options.stats, this.#options.emit);
      logTaskEvent(q.logger, this.#options.workerId, event, t.lastError);
      this.#options.finished.record(held.current.task);
    });
  }

  /**
   * Hand the task back unfinished after its handler settled on a shutdown signal: pending, due
   * at once, the attempt not counted. Never while the handler may still run (another worker
   * would start the same attempt beside it).
   */
  async #release(): Promise<void> {
    const q = this.#queue;
    const held = this.#lease;
    await held.serial(async () => {
      if (held.done) return;
      if (!(await held.write((t) => releaseTask(t, held.token, q.now())))) return;
      held.markDone();
      // A task whose cancel was requested ends cancelled instead of going back.
      this.#options.finished.record(held.current.task);
      const released = { kind: "released", id: this.id, type: this.type } as const;
      this.#options.emit(released);
      logTaskEvent(q.logger, this.#options.workerId, released);
    });
  }

  /** The log fields of an entry about this attempt, plus `extra`. */
  #fields(extra: LogFields): LogFields {
    return taskFields(this.task, this.#options.workerId, extra);
  }
}
