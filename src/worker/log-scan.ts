/**
 * The log-scan fallback (`WorkerOptions.logScan`, `oq worker --log-scan`): for a bucket whose
 * index was deleted by hand or by a lifecycle rule, the worker runs the index repair in the
 * background, one page of `tasks/` per step, resuming where the last step stopped and wrapping
 * around at the end. It only puts markers back (and gives a marker to a task that names none);
 * the poller then finds and claims those tasks as usual. See "Repairing the index" in
 * docs/protocol.md.
 *
 * @module
 */
import type { QueueInternals } from "../queue/internals.ts";
import { repairIndex } from "../queue/repair.ts";
import { sleep } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";

/** Settings of the log-scan fallback ({@link WorkerOptions.logScan}). */
export interface LogScanOptions {
  /** Task objects read per step, 1 to 1000. Default 100. */
  pageSize?: number;
  /** Pause between steps, in ms. Default: the worker's `maxPollMs` (6000, so 10 steps a minute). */
  intervalMs?: number;
}

/** What a {@link LogScan} has done since its worker started. */
export interface LogScanCounts {
  /** Steps taken (one page of `tasks/` each). */
  steps: number;
  /** Full passes over `tasks/` finished. */
  passes: number;
  /** Missing markers put back. */
  markersRestored: number;
  /** Tasks that named no marker and were given one. */
  tasksReindexed: number;
}

/** The background scan of `tasks/` of one worker. */
export class LogScan {
  /** Counters since start (for tests and the worker's log). */
  readonly counts: LogScanCounts = { steps: 0, passes: 0, markersRestored: 0, tasksReindexed: 0 };
  readonly #q: QueueInternals;
  readonly #pageSize: number;
  readonly #intervalMs: number;
  readonly #stopped = new AbortController();
  #cursor: string | undefined;
  #loop: Promise<void> | undefined;

  constructor(q: QueueInternals, options: { pageSize: number; intervalMs: number }) {
    this.#q = q;
    this.#pageSize = options.pageSize;
    this.#intervalMs = options.intervalMs;
  }

  /** Start stepping: one page now, then one per interval. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stop after the step in progress, if any. */
  async stop(): Promise<void> {
    this.#stopped.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped.signal.aborted) {
      await this.step();
      await sleep(this.#intervalMs, this.#stopped.signal);
    }
  }

  /**
   * One page of `tasks/` after the cursor: put back what is missing. A failure is logged and
   * the same page is tried again at the next step.
   */
  async step(): Promise<void> {
    const q = this.#q;
    try {
      const result = await repairIndex(q, {
        limit: this.#pageSize,
        pageSize: this.#pageSize,
        concurrency: 8,
        checkMarkers: false,
        ...(this.#cursor === undefined ? {} : { startAfter: this.#cursor }),
      });
      this.counts.steps++;
      this.#cursor = result.cursor;
      if (result.cursor === undefined) this.counts.passes++;
      this.counts.markersRestored += result.markersRestored;
      this.counts.tasksReindexed += result.tasksReindexed;
      if (result.markersRestored + result.tasksReindexed > 0) {
        q.logger.warn(
          `log scan: put back ${result.markersRestored} missing marker(s) and gave ${result.tasksReindexed} task(s) a new one`,
        );
      }
    } catch (error) {
      q.logger.warn(`log scan: step failed, trying again: ${errorMessage(error)}`);
    }
  }
}
