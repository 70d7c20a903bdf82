/**
 * Throttled progress writes of one attempt (`ctx.progress(value)`). The latest value is kept in
 * the attempt's {@link Lease}, and every write the lease makes carries it: the lease renewals
 * (the first a second into the run, then at half the lease) and the outcome. Only a value that
 * has waited `intervalMs` since the last write of the task gets a write of its own, which is a
 * lease renewal too (docs/protocol.md, "Progress"). So a handler may report as often as it
 * likes: the task is written at most once per interval for it, and a task shorter than the
 * interval pays nothing, its final value landing with its outcome.
 *
 * @module
 */
import type { ServerClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { checkProgress } from "../task/progress.ts";
import { errorMessage } from "../util/errors.ts";
import type { Lease } from "./lease.ts";

/** The progress reports of one running attempt. */
export class ProgressReporter {
  readonly #lease: Lease;
  readonly #intervalMs: number;
  readonly #clock: ServerClock;
  readonly #logger: Logger;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Set while our own write is in flight: reports meanwhile wait for it to re-arm the timer. */
  #writing = false;
  #stopped = false;

  constructor(lease: Lease, intervalMs: number, clock: ServerClock, logger: Logger) {
    this.#lease = lease;
    this.#intervalMs = intervalMs;
    this.#clock = clock;
    this.#logger = logger;
  }

  /**
   * Keep `value` as the attempt's progress, written within the interval. Throws
   * `ValidationError` for a value that is not JSON or exceeds 4 KiB; does nothing once the
   * lease is lost or the outcome written (the handler's signal says so).
   */
  report(value: unknown): void {
    const checked = checkProgress(value);
    if (this.#stopped || this.#lease.done) return;
    this.#lease.setProgress(checked);
    this.#arm();
  }

  /** Write nothing more of our own (the handler settled: the outcome carries the last value). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#writing || this.#stopped) return;
    const due = this.#lease.writtenLocal + this.#intervalMs - this.#clock.localNow();
    this.#timer = setTimeout(() => void this.#write(), Math.max(0, due));
  }

  async #write(): Promise<void> {
    this.#timer = undefined;
    const lease = this.#lease;
    if (this.#stopped || lease.done || !lease.progressPending) return;
    // Written meanwhile (a renewal carried it, or the interval restarted): wait for the rest.
    if (this.#clock.localNow() - lease.writtenLocal < this.#intervalMs - 1) return this.#arm();
    let wrote = false;
    this.#writing = true;
    try {
      // Through the renewal path: serialized with the lease's other writes, re-read and
      // retried on a lost race (a cancel request), and a no-op once the lease is lost.
      wrote = await lease.renew(lease.leaseMs);
      if (wrote) lease.guard();
    } catch (error) {
      this.#logger.warn(`could not write the progress of a task: ${errorMessage(error)}`, {
        taskId: lease.current.task.id,
        type: lease.current.task.type,
        error,
      });
    } finally {
      this.#writing = false;
    }
    if (lease.done || this.#stopped) return;
    // Not written (storage trouble, or a signalled attempt no longer renewing): try again an
    // interval later, never sooner, so a failing store is not asked in a loop.
    if (!wrote) this.#timer = setTimeout(() => void this.#write(), this.#intervalMs);
    else if (lease.progressPending) this.#arm();
  }
}
