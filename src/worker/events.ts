/**
 * What a worker reports: its events ({@link WorkerEvent}) and counters ({@link WorkerStats}).
 *
 * @module
 */

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

/** Reports one event; never throws (a listener's bug must not break task processing). */
export type Emit = (event: WorkerEvent) => void;

/** Counters all at zero. */
export function newStats(): WorkerStats {
  return {
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
}

/** An {@link Emit} that calls `listener` and swallows what it throws. */
export function emitter(listener: ((event: WorkerEvent) => void) | undefined): Emit {
  return (event) => {
    try {
      listener?.(event);
    } catch {
      // A listener's bug must not break task processing.
    }
  };
}
