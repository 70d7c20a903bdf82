/**
 * One chaos worker: a {@link Worker} over a {@link FaultyStorage}, running `chaos` tasks (sleep
 * `input.ms`, return) and reporting what it does to a sink. The same code runs in-process (the
 * memory target, and quick runs) and in its own process (`worker-process.ts`), so both modes
 * test the same thing.
 *
 * @module
 */
import { OqError } from "../../src/errors.ts";
import type { LogFields, Logger } from "../../src/logger.ts";
import { Queue } from "../../src/queue/queue.ts";
import { type SchedulerHandle, startScheduler } from "../../src/schedule/runner.ts";
import { countRequests, type RequestCounts } from "../../src/storage/count.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { isTaskOutcome } from "../../src/worker/task-log.ts";
import { Worker, type WorkerEvent, type WorkerStats } from "../../src/worker/worker.ts";
import {
  type ErrorFaultKind,
  type FaultCounts,
  FaultyStorage,
  type LatencyOptions,
} from "../support/faulty.ts";

/** The JSON-serializable part of the fault options (it crosses a process boundary). */
export interface FaultConfig {
  /** Probability of an error fault per call. */
  faultRate?: number;
  /** Relative weight of each error kind. */
  mix?: Partial<Record<ErrorFaultKind, number>>;
  /** Latency and spikes. */
  latency?: LatencyOptions;
  /** How long a timeout fault waits, ms. */
  timeoutMs?: number;
  /** How far this worker's local clock is off, ms. */
  clockSkewMs?: number;
}

/** Everything a chaos worker needs to know (JSON, passed in `CHAOS_WORKER` to a process). */
export interface ChaosWorkerConfig {
  /** The worker id. */
  id: string;
  /** Tasks at once. */
  concurrency: number;
  /** Lease length, s. */
  leaseSeconds: number;
  /** Poll pause after work, ms. */
  minPollMs: number;
  /** Longest idle poll pause, ms. */
  maxPollMs: number;
  /** Heartbeat period, s (0: none). */
  heartbeatSeconds: number;
  /** Faults of this worker's storage. */
  faults?: FaultConfig;
  /** Also run a scheduler ticking this often, ms. */
  schedulerIntervalMs?: number;
}

/** What a chaos worker reports. */
export interface ChaosSink {
  /** A handler started (`at`: real epoch ms). */
  run(id: string, attempt: number, at: number): void;
  /** A worker event. */
  event(event: WorkerEvent): void;
  /** A warning or error the queue, worker or scheduler logged. */
  warn(message: string): void;
}

/** A running chaos worker. */
export interface ChaosWorker {
  /** The worker. */
  readonly worker: Worker;
  /** Its storage. */
  readonly faulty: FaultyStorage;
  /** Counters for status lines. */
  status(): ChaosStatus;
  /** Stop the worker (and scheduler) gracefully. */
  stop(graceMs?: number): Promise<void>;
}

/** A chaos worker's counters. */
export interface ChaosStatus {
  /** Calls its storage saw (that faults could hit). */
  calls: number;
  /** Faults injected, by kind. */
  faults: FaultCounts;
  /** Requests that reached storage, by kind (a fault before the request reached it is not one). */
  requests: RequestCounts;
  /** The part of `requests` made by the scheduler (when one runs), attempts included. */
  schedulerRequests: RequestCounts;
  /** The key the worker read most often in the last 2 s, and how often (spins show here). */
  hottestKey: { key: string; reads: number };
  /** The worker's own counters. */
  stats: WorkerStats;
  /**
   * Errors the storage itself threw (not injected faults), by kind: code, HTTP status and S3
   * code, e.g. `AMBIGUOUS_WRITE 503 SlowDownWrite` or `PRECONDITION_FAILED 412` (a lost race).
   */
  storageErrors: Record<string, number>;
  /** Warnings logged. */
  warnings: number;
  /**
   * Storage errors the worker's loop ran into: a whole pass (`poll failed`, e.g. a failed
   * listing) or one task it looked at (`... (retried at the next listing)`).
   */
  passErrors: number;
}

/** True for a warning about an error in the worker's loop (see {@link ChaosStatus.passErrors}). */
export function isPassError(message: string): boolean {
  return message.startsWith("poll failed") || message.endsWith("(retried at the next listing)");
}

/** The task type chaos workers run. */
export const CHAOS_TYPE = "chaos";

/** Input of a chaos task. */
export interface ChaosInput {
  /** How long the handler works, ms. */
  ms: number;
}

/** Build and start a chaos worker over `storage` (shared, fault-free) and `prefix`. */
export async function startChaosWorker(
  storage: Storage,
  prefix: string,
  config: ChaosWorkerConfig,
  sink: ChaosSink,
): Promise<ChaosWorker> {
  const storageErrors: Record<string, number> = {};
  const counted = countRequests(countErrors(storage, storageErrors));
  const faulty = new FaultyStorage(counted, config.faults ?? {});
  // A layer that injects nothing and sees every call of the worker (not of its scheduler),
  // to keep each key's recent reads: a worker spinning on an object shows as its hottest key.
  const reads = new Map<string, number[]>();
  const tracked = new FaultyStorage(faulty, {
    filter: (call) => {
      if (call.op === "get" && call.key !== undefined) {
        const times = reads.get(call.key) ?? [];
        times.push(Date.now());
        if (times.length > 8) times.shift();
        reads.set(call.key, times);
      }
      return false;
    },
  });
  const hottestKey = () => {
    const since = Date.now() - 2000;
    let best = { key: "", reads: 0 };
    for (const [key, times] of reads) {
      const n = times.filter((t) => t >= since).length;
      if (n > best.reads) best = { key, reads: n };
      if (times.at(-1)! < since - 60_000) reads.delete(key);
    }
    return best;
  };
  let warnings = 0;
  let passErrors = 0;
  const warn = (message: string, fields?: LogFields) => {
    // A task's failure is its handler's outcome (counted from events), not the worker's trouble.
    if (isTaskOutcome(fields)) return;
    warnings++;
    if (isPassError(message)) passErrors++;
    sink.warn(message);
  };
  const logger: Logger = { info() {}, warn, error: warn };
  const queue = new Queue({ storage: tracked, prefix, now: faulty.localNow, logger });
  const worker = new Worker(queue, {
    id: config.id,
    concurrency: config.concurrency,
    leaseSeconds: config.leaseSeconds,
    minPollMs: config.minPollMs,
    maxPollMs: config.maxPollMs,
    heartbeatSeconds: config.heartbeatSeconds,
    // Stopping hands running tasks back at once: runs end by signal, kill or completion.
    shutdownGraceMs: 2000,
    // The chaos runs measure claims under faults; the backend-safety probe is tested on its own
    // (test/doctor.test.ts). Probing through the fault injector would only fail the start.
    skipDoctor: true,
    onEvent: (e) => sink.event(e),
  }).task(CHAOS_TYPE, async (input: ChaosInput, ctx) => {
    sink.run(ctx.task.id, ctx.attempt, Date.now());
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, input?.ms ?? 0)));
    return { by: config.id, attempt: ctx.attempt };
  });
  await worker.start();
  let scheduler: SchedulerHandle | undefined;
  // The scheduler gets its own queue over the same storage, so its requests can be told apart.
  const schedulerStorage = countRequests(faulty);
  if (config.schedulerIntervalMs !== undefined) {
    const own = new Queue({ storage: schedulerStorage, prefix, now: faulty.localNow, logger });
    scheduler = startScheduler(own, { intervalMs: config.schedulerIntervalMs, logger });
  }
  return {
    worker,
    faulty,
    status: () => ({
      calls: faulty.calls,
      faults: { ...faulty.faults },
      requests: { ...counted.counts },
      schedulerRequests: { ...schedulerStorage.counts },
      hottestKey: hottestKey(),
      stats: { ...worker.stats },
      storageErrors: { ...storageErrors },
      warnings,
      passErrors,
    }),
    async stop(graceMs) {
      await scheduler?.stop();
      await worker.stop(graceMs === undefined ? {} : { graceMs });
    },
  };
}

/** The kind of a storage error, for counting: its code, HTTP status and S3 code when known. */
export function errorKind(error: unknown): string {
  if (!(error instanceof OqError)) return error instanceof Error ? error.name : "unknown";
  return [error.code, error.status, error.s3Code].filter((p) => p !== undefined).join(" ");
}

/** `storage`, counting every error its calls throw into `counts` by {@link errorKind}. */
function countErrors(storage: Storage, counts: Record<string, number>): Storage {
  return new Proxy(storage, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop === "serverTime") return value.bind(target);
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.catch((error: unknown) => {
          const kind = errorKind(error);
          counts[kind] = (counts[kind] ?? 0) + 1;
          throw error;
        });
      };
    },
  });
}
