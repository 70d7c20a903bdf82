/**
 * Running a scheduler in the background of a process (a worker with `--scheduler`).
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import { errorMessage } from "../util/errors.ts";
import { Scheduler, type SchedulerOptions } from "./scheduler.ts";

/** The handle {@link startScheduler} returns. */
export interface SchedulerHandle {
  /** The scheduler running in the background. */
  readonly scheduler: Scheduler;
  /** Stop the loop and wait for the tick in progress. */
  stop(): Promise<void>;
}

/**
 * Run a scheduler in the background of this process (e.g. inside a worker: `oq worker
 * --scheduler`). Returns a handle whose `stop()` ends the loop after the tick in progress.
 */
export function startScheduler(
  queue: Queue,
  options: SchedulerOptions & { intervalMs?: number } = {},
): SchedulerHandle {
  const intervalMs = options.intervalMs ?? 60_000;
  // Checked here, not only in run(): a rejected background loop would go unnoticed until stop().
  if (!(intervalMs > 0)) {
    throw new ValidationError(`Invalid intervalMs ${intervalMs}: use a number of ms > 0.`);
  }
  const { intervalMs: _interval, ...schedulerOptions } = options;
  const scheduler = new Scheduler(queue, schedulerOptions);
  const controller = new AbortController();
  const logger = options.logger ?? queue.logger;
  const done = scheduler.run({ signal: controller.signal, intervalMs }).catch((error: unknown) => {
    logger.error(`scheduler stopped: ${errorMessage(error)}`);
  });
  return {
    scheduler,
    async stop() {
      controller.abort();
      await done;
    },
  };
}
