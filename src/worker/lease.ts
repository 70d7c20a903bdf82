/**
 * The lease of one running attempt: the version we last wrote, the deadline after which we
 * write nothing more (the lease guard), renewals, and outcome writes retried while the lease is
 * ours. Writes to the task are serialized, so a renewal and the outcome never race each other.
 * See "Leases and time" and "Outcomes survive outages" in docs/protocol.md.
 *
 * @module
 */
import { OqError } from "../errors.ts";
import type { QueueInternals } from "../queue/internals.ts";
import type { Versioned } from "../queue/types.ts";
import { isTransient } from "../retry.ts";
import type { TaskRecord } from "../task/record.ts";
import { leaseStopAt, ms, renewLease } from "../task/transitions.ts";
import { sleep } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import { leaseToWrite } from "./options.ts";

/** What the lease tells its attempt. */
export interface LeaseHooks {
  /** Whether the attempt let its lease lapse (no more renewals). */
  lapsing(): boolean;
  /** The lease was lost (once): the task may run elsewhere; nothing more is written. */
  lost(why: string): void;
  /** A renewal found a cancel request on the task. */
  cancelled(task: TaskRecord): void;
  /** The outcome could not be written before the lease ran out (`message`: the last error). */
  dropped(message: string): void;
  /**
   * A type with a fleet-wide concurrency limit: extend the attempt's slot before a renewal of
   * `leaseMs`, resolving the server time the lease may run to, or `false` when the slot is lost
   * (then the lease is not renewed). See `./limits.ts`.
   */
  extendSlot?(leaseMs: number): Promise<number | false>;
}

/**
 * The change that renews the lease held with `token`: to `length()` from now, or under a fleet
 * concurrency limit to the slot's `until` exactly (same `now` for both), so the lease never
 * outlasts the slot.
 */
function renewal(
  queue: QueueInternals,
  token: string,
  length: () => number,
  until: number | undefined,
): (t: TaskRecord) => TaskRecord {
  return (t) => {
    const now = queue.now();
    return renewLease(t, token, until === undefined ? length() : until - now, now);
  };
}

/** True for the errors that say the lease is not ours any more (the task moved on or is gone). */
function lostLease(error: unknown): boolean {
  return error instanceof OqError && (error.code === "INVALID_STATE" || error.code === "NOT_FOUND");
}

/** The lease an attempt holds on its task. */
export class Lease {
  /** This attempt's lease token. */
  readonly token: string;
  /** The lease length renewals extend to, ms. */
  readonly leaseMs: number;
  readonly #queue: QueueInternals;
  readonly #hooks: LeaseHooks;
  #current: Versioned;
  /** Serializes writes of this worker to this task (renewal vs. outcome). */
  #chain: Promise<unknown> = Promise.resolve();
  /** Set once the task must not be written by us any more. */
  #done = false;
  #lost = false;
  /** Fires when the lease must be given up unless renewed first (see {@link Lease.guard}). */
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The handler's latest progress not yet written; every write of the task carries it. */
  #progress: { value: unknown } | undefined;
  /** Local time of our last write of the task (the claim, then each renewal or outcome). */
  #writtenLocal: number;

  constructor(
    queue: QueueInternals,
    claimed: Versioned,
    token: string,
    leaseMs: number,
    hooks: LeaseHooks,
  ) {
    this.#queue = queue;
    this.#current = claimed;
    this.token = token;
    this.leaseMs = leaseMs;
    this.#hooks = hooks;
    this.#writtenLocal = queue.clock.localNow();
  }

  /** Local time of our last write of the task, ms (see `src/worker/progress.ts`). */
  get writtenLocal(): number {
    return this.#writtenLocal;
  }

  /** True while a progress value waits for a write. */
  get progressPending(): boolean {
    return this.#progress !== undefined;
  }

  /** Keep `value` (checked) as the progress the next write of the task carries. */
  setProgress(value: unknown): void {
    this.#progress = { value };
  }

  /**
   * `change` followed by the pending progress, and what to do once it was written: forget the
   * pending value unless a newer one came meanwhile.
   */
  #carryProgress(change: (t: TaskRecord) => TaskRecord) {
    const pending = this.#progress;
    return {
      change:
        pending === undefined
          ? change
          : (t: TaskRecord): TaskRecord => ({ ...change(t), progress: pending.value }),
      written: () => {
        this.#writtenLocal = this.#queue.clock.localNow();
        if (this.#progress === pending) this.#progress = undefined;
      },
    };
  }

  /** The task as we last wrote it. */
  get current(): Versioned {
    return this.#current;
  }

  /** True once the task must not be written by us any more (outcome written, or lease lost). */
  get done(): boolean {
    return this.#done;
  }

  /** True once the lease was lost. */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Whether the task's marker sits at or after its lease's expiry, so nobody lists the task
   * before the lease can have run out. A claim leaves the marker where it was (due); the first
   * renewal moves it.
   */
  get indexedAtExpiry(): boolean {
    const { task } = this.#current;
    const keys = this.#queue.keys;
    if (task.marker === null || task.lease === null) return true;
    const marker = keys.parseReadyMarker(keys.full(task.marker));
    return marker !== undefined && marker.dueMs >= ms(task.lease.expiresAt);
  }

  /** The outcome was written: nothing more is. */
  markDone(): void {
    this.#done = true;
  }

  /**
   * Arm the lease deadline: once the upper bound of server time reaches {@link leaseStopAt}
   * without a renewal, the lease counts as lost (the handler's signal fires, `LeaseLost`) and
   * nothing more is written for this attempt — before the earliest moment another worker may
   * take the task over. A timer, not a later clock reading, measures the wait, so a step of the
   * local clock after arming cannot postpone it; it is armed from the response that granted the
   * lease (claim or renewal). Writes already in flight stay guarded by their `If-Match`.
   */
  guard(): void {
    clearTimeout(this.#timer);
    const expiresAt = this.#current.task.lease?.expiresAt;
    if (this.#done || expiresAt === undefined) return;
    const wait = leaseStopAt(this.#current.task, this.leaseMs) - this.#queue.clock.bounds().upper;
    this.#timer = setTimeout(
      () => {
        if (this.#done) return;
        // Renewed meanwhile (by a path that did not re-arm): watch the new expiry instead.
        if (this.#current.task.lease?.expiresAt !== expiresAt) return this.guard();
        this.lose("the lease is about to run out and was not renewed; the task may run elsewhere");
      },
      Math.max(0, wait),
    );
  }

  /** Disarm the lease deadline (the handler settled). */
  unguard(): void {
    clearTimeout(this.#timer);
  }

  /** The lease is lost (once): nothing more is written. */
  lose(why = "the lease was lost; the task may run elsewhere"): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#hooks.lost(why);
  }

  /** Serialize a write to this task after any write already in flight. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn);
    this.#chain = next.catch(() => {});
    return next;
  }

  /** Extend the lease to `leaseMs` from now. False when it was lost or is left to lapse. */
  async renew(leaseMs: number): Promise<boolean> {
    const q = this.#queue;
    return this.serial(async () => {
      if (this.#done || this.#hooks.lapsing()) return false;
      const until = await this.#hooks.extendSlot?.(leaseMs);
      if (until === false) {
        this.lose("its slot under the type's fleet concurrency limit was taken; the lease lapses");
        return false;
      }
      const renewed = this.#carryProgress(
        renewal(q, this.token, () => leaseToWrite(q, leaseMs), until),
      );
      try {
        this.#current = await q.update(
          this.#current.task.id,
          renewed.change,
          this.#current,
          // The marker a claim left is due, so every worker listing the partition would read
          // the task until it is gone: delete it now. Later ones lie in the future: batch them.
          { batchMarkerDelete: this.indexedAtExpiry },
        );
        renewed.written();
      } catch (error) {
        if (lostLease(error)) {
          this.lose();
          return false;
        }
        throw error;
      }
      if (this.#current.task.cancel !== null) this.#hooks.cancelled(this.#current.task);
      return true;
    });
  }

  /**
   * Write `change` (the attempt's outcome) with the lease token. Storage trouble must not throw
   * a finished result away: the task would stay running until its lease ran out and then run
   * again (an 8 s storage restart did that). So the write is retried for as long as the lease
   * is ours, renewing it whenever storage takes writes again; `update()` re-reads after a failed
   * CAS, so only the current lease holder can still write. Returns false when the lease was lost
   * or ran out first (then `dropped` is told).
   */
  async write(change: (t: TaskRecord) => TaskRecord): Promise<boolean> {
    const q = this.#queue;
    const id = this.#current.task.id;
    for (let round = 0; ; round++) {
      // The outcome carries the final progress, so it lands with the completion.
      const outcome = this.#carryProgress(change);
      try {
        this.#current = await q.update(id, outcome.change, this.#current, {
          batchMarkerDelete: true,
        });
        outcome.written();
        return true;
      } catch (error) {
        if (lostLease(error)) {
          this.lose();
          return false;
        }
        if (!isTransient(error)) throw error;
        const lease = this.#current.task.lease;
        const left = lease === null ? 0 : ms(lease.expiresAt) - q.now();
        if (left <= 0) {
          this.#hooks.dropped(errorMessage(error));
          return false;
        }
        await sleep(Math.min(100 * 2 ** round, 2000, left));
        if (left < this.leaseMs / 2 && !this.#hooks.lapsing()) {
          try {
            const until = await this.#hooks.extendSlot?.(this.leaseMs);
            if (until === false) continue;
            this.#current = await q.update(
              id,
              renewal(q, this.token, () => this.leaseMs, until),
              this.#current,
              { batchMarkerDelete: true },
            );
          } catch {
            // Still unreachable: the outcome write above tries again.
          }
        }
      }
    }
  }
}
