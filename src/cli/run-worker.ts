/**
 * Running a worker in the foreground until SIGTERM or SIGINT, shared by `oq worker` and
 * `oq monitor`: their shared flags, a periodic summary, and a graceful stop. (The worker logs
 * each task's start and outcome itself, through the queue's logger.)
 *
 * @module
 */
import process from "node:process";
import { requireSafeBackend } from "../doctor/require.ts";
import { formatDuration } from "../duration.ts";
import type { Queue } from "../queue/queue.ts";
import type { SchedulerHandle } from "../schedule/runner.ts";
import type { Worker } from "../worker/worker.ts";
import { intArg, skipDoctorArg } from "./args.ts";
import { openQueue } from "./config.ts";
import type { ConnectionArgs } from "./connection.ts";
import { CliError, EXIT_FAILURE } from "./errors.ts";
import { logFormatArg } from "./logs.ts";
import type { MetricsServer } from "./metrics-server.ts";
import { log, span } from "./output.ts";

/** Flags `oq worker` and `oq monitor` share. */
export const runArgs = {
  id: { type: "string", description: "Worker id (default w-<random>)", valueHint: "id" },
  grace: {
    type: "string",
    description: "On SIGTERM/SIGINT, how long running tasks may finish before being handed back",
    default: "10s",
    valueHint: "duration",
  },
  "summary-interval": {
    type: "string",
    description: "How often to log a summary line (0: never)",
    default: "60s",
    valueHint: "duration",
  },
  scheduler: {
    type: "boolean",
    description: "Also run the scheduler: submit the due slots of cron schedules (oq schedule)",
  },
  "log-scan": {
    type: "boolean",
    description:
      "Also read tasks/ in the background and put back missing markers (for a bucket whose index was deleted)",
  },
  "metrics-port": {
    type: "string",
    description:
      "Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port; docs/metrics.md)",
    valueHint: "port",
  },
  "metrics-host": {
    type: "string",
    description: "Address the metrics server binds to",
    default: "127.0.0.1",
    valueHint: "host",
  },
  ...skipDoctorArg,
  ...logFormatArg,
} as const;

/**
 * Open the queue, with metrics recorded and served at `--metrics-host`:`--metrics-port` when a
 * port is given. The caller closes the server when the worker has stopped.
 */
export async function openWithMetrics(
  args: ConnectionArgs & { "metrics-port"?: string | undefined; "metrics-host": string },
): Promise<{ queue: Queue; server: MetricsServer | undefined }> {
  const port = intArg(args["metrics-port"], "metrics-port", 0, 65_535);
  if (port === undefined) return { queue: await openQueue(args), server: undefined };
  // Loaded only when asked for: a worker starts sooner without OpenTelemetry and node:http.
  const [{ Metrics }, { serveMetrics }] = await Promise.all([
    import("../metrics/metrics.ts"),
    import("./metrics-server.ts"),
  ]);
  const metrics = new Metrics();
  const queue = await openQueue(args, { metrics });
  return { queue, server: await serveMetrics(metrics, { host: args["metrics-host"], port }) };
}

/**
 * What a worker process does before it claims anything (its log lines were switched to
 * `--log-format` first thing, `useLogFormat`): prove (or recall the cached proof) that the
 * backend honours conditional writes, since claims rely on them, and start the scheduler when
 * asked. Returns the scheduler's handle, to stop with the worker.
 */
export async function prepare(
  queue: Queue,
  args: { scheduler?: boolean | undefined; "skip-doctor"?: boolean | undefined },
): Promise<SchedulerHandle | undefined> {
  if (args["skip-doctor"] !== true) await requireSafeBackend(queue);
  if (args.scheduler !== true) return undefined;
  log().info("Running the scheduler in this process too.");
  // Loaded only with --scheduler: cron parsing is not on a plain worker's way to its first task.
  const { startScheduler } = await import("../schedule/runner.ts");
  return startScheduler(queue);
}

/** The summary line: counters since start and what runs now. */
export function summaryLine(worker: Worker, startedAt: number, concurrency: number): string {
  const s = worker.stats;
  const parts =
    worker.types.length === 0
      ? [`${s.recovered} recovered`, `${s.expired} expired`]
      : [
          `${s.completed} completed`,
          `${s.failed} failed`,
          `${s.retried} retried`,
          `${s.cancelled} cancelled`,
          `${worker.active.length}/${concurrency} running`,
        ];
  if (worker.types.length > 0 && (s.recovered > 0 || s.expired > 0))
    parts.push(`${s.recovered} recovered`, `${s.expired} expired`);
  return `summary: ${parts.join(", ")}; up ${span(Date.now() - startedAt)}`;
}

/**
 * Stop `worker` (and its scheduler) on SIGINT/SIGTERM, or when it finds the backend unsafe.
 * `stopped` settles when it has stopped (rejects on a second signal or an unsafe backend); the
 * caller clears `unsafeCheck` and removes `onSignal` when done.
 */
function listenForStop(
  worker: Worker,
  options: { graceMs: number; scheduler?: SchedulerHandle | undefined },
): {
  stopped: Promise<void>;
  unsafeCheck: ReturnType<typeof setInterval> | undefined;
  onSignal: ((signal: NodeJS.Signals) => void) | undefined;
} {
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  let unsafeCheck: ReturnType<typeof setInterval> | undefined;
  const stopped = new Promise<void>((resolve, reject) => {
    let signals = 0;
    onSignal = (signal) => {
      signals++;
      if (signals === 1) {
        const running = worker.active.length;
        log().info(
          `${signal}: stopping${running > 0 ? `; waiting up to ${formatDuration(options.graceMs)} for ${running} running task${running === 1 ? "" : "s"}` : ""} (send ${signal} again to exit at once)`,
        );
        Promise.all([worker.stop({ graceMs: options.graceMs }), options.scheduler?.stop()]).then(
          () => resolve(),
          reject,
        );
      } else {
        reject(
          new CliError(
            `${signal} again: exiting without waiting; unfinished tasks are recovered when their leases expire.`,
            EXIT_FAILURE,
          ),
        );
      }
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    // A worker stops itself when the backend refuses valid conditional writes: exit 1 then.
    unsafeCheck = setInterval(() => {
      const unsafe = worker.unsafeBackend;
      if (unsafe === undefined) return;
      clearInterval(unsafeCheck);
      void Promise.resolve(options.scheduler?.stop()).finally(() =>
        reject(new CliError(unsafe.message, EXIT_FAILURE)),
      );
    }, 1000);
  });
  return { stopped, unsafeCheck, onSignal };
}

/**
 * Start `worker` and run it until a signal. The first SIGTERM or SIGINT stops it: no new claims,
 * running tasks get `graceMs` to finish and are then handed back. A second signal gives up
 * waiting (exit 1); tasks still held are then recovered by a monitor once their leases expire.
 */
export async function runUntilSignal(
  worker: Worker,
  options: {
    graceMs: number;
    summaryMs: number;
    concurrency: number;
    /** A scheduler started with the worker, stopped with it. */
    scheduler?: SchedulerHandle | undefined;
  },
): Promise<void> {
  const startedAt = Date.now();
  const { stopped, unsafeCheck, onSignal } = listenForStop(worker, options);
  // Listen before starting, so a signal during start-up is not the default (immediate) exit.
  try {
    await worker.start();
  } catch (error) {
    clearInterval(unsafeCheck);
    await options.scheduler?.stop();
    throw error;
  }
  const timer =
    options.summaryMs > 0
      ? setInterval(
          () => log().info(summaryLine(worker, startedAt, options.concurrency)),
          options.summaryMs,
        )
      : undefined;
  try {
    await stopped;
  } finally {
    if (timer !== undefined) clearInterval(timer);
    clearInterval(unsafeCheck);
    if (onSignal !== undefined) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
  log().info(`Stopped. ${summaryLine(worker, startedAt, options.concurrency)}`);
}
