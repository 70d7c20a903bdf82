/**
 * The worker's public option and handler types, with their defaults ({@link resolveOptions}).
 *
 * @module
 */
import type { QueueInternals } from "../queue/internals.ts";
import type { TaskRecord } from "../task/record.ts";
import type { WorkerEvent } from "./events.ts";
import type { LogScanOptions } from "./log-scan.ts";

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
  /**
   * Extend the lease to `seconds` from now (one PUT; at most 604,800, 7 days, as `leaseSeconds`).
   * Throws when the lease was lost.
   */
  extendLease(seconds: number): Promise<void>;
  /**
   * Report progress: any JSON value of at most 4 KiB (a percentage, `{ done, total }`), shown by
   * `queue.get()`, `oq status` and the dashboard. Call it as often as you like: the worker keeps
   * the latest value and writes it with the lease renewals it makes anyway, with the outcome,
   * and otherwise at most once per `progressSeconds` (default 10). Returns at once; throws
   * `ValidationError` (code `VALIDATION`) for a value that is not JSON, by the same check as a
   * task's input (a Map or a Set is refused, not stored as `{}`), or too large, and does nothing
   * once the lease was lost (the signal fires then).
   */
  progress(value: unknown): void;
}

/**
 * A task handler: gets the input, returns the output (any JSON value, checked like a task's
 * input: one that is not, such as a Map or a Set, fails the task permanently with
 * `InvalidOutput` rather than being stored as `{}`).
 */
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
  /** Lease length for this type: seconds or a duration string like `"2m"`. */
  leaseSeconds?: number | string;
  /**
   * Default per-attempt time limit for this type when the task has none: seconds or a duration
   * string like `"30m"`.
   */
  timeoutSeconds?: number | string;
  /**
   * At most this many tasks of this type at once in this worker (1 to 1000); the worker's own
   * `concurrency` still caps all types together. Default: no limit of its own. For a limit
   * across all workers see `queue.setLimits`.
   */
  concurrency?: number;
}

/** {@link HandlerOptions} once checked: the durations as numbers of seconds. */
export type CheckedHandlerOptions = Omit<HandlerOptions, "leaseSeconds" | "timeoutSeconds"> & {
  leaseSeconds?: number;
  timeoutSeconds?: number;
};

/** A registered handler with its per-type settings. */
export interface HandlerEntry {
  handler: Handler;
  options: CheckedHandlerOptions;
}

/** Options of {@link Worker}. */
export interface WorkerOptions {
  /** Worker id (default `w-` and random hex). Shown in leases and heartbeats. */
  id?: string;
  /** Tasks run at once. Default 1. */
  concurrency?: number;
  /**
   * Lease length: seconds or a duration string like `"2m"`. Renewed while the handler runs.
   * Default 60.
   */
  leaseSeconds?: number | string;
  /**
   * Default per-attempt time limit when the task has none: seconds or a duration string like
   * `"30m"`. Default: none.
   */
  timeoutSeconds?: number | string;
  /** Shortest pause between polls, in ms (after finding work). Default 250. */
  minPollMs?: number;
  /** Longest pause between polls when idle, in ms. Default 6000 (10 LISTs a minute). */
  maxPollMs?: number;
  /**
   * Run the monitor (lease recovery, TTL expiry, stale marker removal, pruning finished tasks
   * past their retention). Default true.
   */
  monitor?: boolean;
  /**
   * Time between the starts of the monitor's rounds (manifest refresh, types nobody here
   * runs, pruning): seconds or a duration string like `"10m"`. Each round spends one request
   * per poll, in place of a poll's listing. Default 600 (10 minutes).
   */
  monitorRoundSeconds?: number | string;
  /**
   * Time between heartbeat writes: seconds or a duration string like `"1m"`; 0 disables
   * heartbeats. Default 60.
   */
  heartbeatSeconds?: number | string;
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
  /**
   * The longest a handler's progress report (`ctx.progress()`) waits to be written, in seconds:
   * a task is written for its progress at most once per this interval (each write is a PUT,
   * billed). Lease renewals and the outcome carry the latest value anyway. 1 to 86400.
   * Default 10.
   */
  progressSeconds?: number;
  /** Called on every task outcome (the CLI logs these). */
  onEvent?: (event: WorkerEvent) => void;
  /**
   * Do not require a doctor verdict before claiming (like `oq worker --skip-doctor`). By default
   * {@link Worker.start} and {@link Worker.drain} refuse a backend whose cached verdict is
   * `unsafe`, and probe one that has no fresh verdict for this exact path first. Only set this
   * when you know the backend honours conditional writes.
   */
  skipDoctor?: boolean;
  /**
   * The log-scan fallback, for a bucket whose index (`ready/`) was deleted by hand or by a
   * lifecycle rule: the worker also reads `tasks/` in the background, one page per step
   * (`pageSize`, default 100 objects, every `intervalMs`, default `maxPollMs`), wrapping around
   * at the end, and puts back the markers of non-terminal tasks that are missing, so the
   * poller finds and runs them. It never claims. Cost with the defaults: per minute at most 10
   * LISTs, 1,000 GETs and 1,000 HEADs (one GET per task object, one HEAD per non-terminal
   * task), plus a PUT per marker put back. `true` uses the defaults. Default `false` (off).
   */
  logScan?: boolean | LogScanOptions;
}

/** The options of {@link WorkerOptions} given as durations. */
type DurationOption =
  | "leaseSeconds"
  | "timeoutSeconds"
  | "monitorRoundSeconds"
  | "heartbeatSeconds";

/** {@link WorkerOptions} once checked: the durations as numbers of seconds. */
export type CheckedWorkerOptions = Omit<WorkerOptions, DurationOption> & {
  [K in DurationOption]?: number;
};

/** {@link WorkerOptions} (checked) with every default filled in, except the id. */
export type ResolvedOptions = Required<
  Omit<CheckedWorkerOptions, "id" | "onEvent" | "timeoutSeconds">
> &
  Pick<CheckedWorkerOptions, "onEvent" | "timeoutSeconds">;

/** Tasks a worker runs at once when its options say nothing (`WorkerOptions.concurrency`). */
export const DEFAULT_CONCURRENCY = 1;

/** Fill in the defaults of checked worker options. */
export function resolveOptions(
  options: Omit<CheckedWorkerOptions, "onEvent">,
  onEvent: WorkerOptions["onEvent"],
): ResolvedOptions {
  return {
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    leaseSeconds: options.leaseSeconds ?? 60,
    timeoutSeconds: options.timeoutSeconds,
    minPollMs: options.minPollMs ?? 250,
    maxPollMs: options.maxPollMs ?? 6000,
    monitor: options.monitor ?? true,
    monitorRoundSeconds: options.monitorRoundSeconds ?? 600,
    heartbeatSeconds: options.heartbeatSeconds ?? 60,
    shutdownGraceMs: options.shutdownGraceMs ?? 10_000,
    signalGraceMs: options.signalGraceMs ?? 5000,
    listReuseMs: options.listReuseMs ?? 2000,
    progressSeconds: options.progressSeconds ?? 10,
    skipDoctor: options.skipDoctor ?? false,
    logScan: options.logScan ?? false,
    onEvent,
  };
}

/**
 * The lease length to write with an expiry computed from `queue.now()`, the lower bound of
 * server time: stretched by the width of the clock's interval, so that the lease lasts at least
 * `leaseMs` of server time and the holder, which stops by the upper bound, keeps all of it.
 */
export function leaseToWrite(queue: QueueInternals, leaseMs: number): number {
  const { lower, upper } = queue.clock.bounds();
  return leaseMs + (upper - lower);
}
