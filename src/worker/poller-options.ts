/**
 * What the poller needs from its worker ({@link Poller}): its handlers, its share of the index,
 * its monitor and limits, and where a claimed task goes.
 *
 * @module
 */
import type { UnsafeBackendError } from "../errors.ts";
import type { Versioned } from "../queue/types.ts";
import type { ClaimProbes } from "./claim-probes.ts";
import type { Emit, WorkerStats } from "./events.ts";
import type { ClaimLimits, StartedClaim } from "./limits.ts";
import type { Monitor } from "./monitor.ts";
import type { HandlerEntry } from "./options.ts";
import type { SkipList } from "./skip.ts";

/** What the poller needs from its worker. */
export interface PollerOptions {
  workerId: string;
  concurrency: number;
  /** Default lease length, seconds (a type's own wins). */
  leaseSeconds: number;
  minPollMs: number;
  maxPollMs: number;
  listReuseMs: number;
  handlers: ReadonlyMap<string, HandlerEntry>;
  /** The tasks running now, by id. */
  running: { readonly size: number; has(id: string): boolean };
  skip: SkipList;
  monitor: Monitor;
  /** Whether a task id falls in this worker's share (see `Peers.mine`). */
  mine: (id: string) => boolean;
  /**
   * A value that changes whenever `mine` may answer differently (the live peers). Default: `mine`
   * itself, for a share that never changes.
   */
  shareVersion?: () => unknown;
  /** Whether this worker sees no live peers (so every task is in its share). */
  alone: () => boolean;
  /** A read of a task in its share won nothing: another worker got there (look for peers). */
  onContended?: () => void;
  probes: ClaimProbes;
  limits: ClaimLimits;
  stats: WorkerStats;
  emit: Emit;
  /** Whether its last handler returned quickly enough to read the next task ahead (`./read-ahead.ts`). */
  quickHandlers: () => boolean;
  /** Whether the worker still runs (claims stop once it does not). */
  isRunning: () => boolean;
  /** Run a task just claimed with lease `token`. */
  start: (claimed: Versioned, claim: StartedClaim) => void;
  /** The backend refused valid conditional writes: stop the worker. */
  onUnsafe: (id: string, error: UnsafeBackendError) => void;
}
