/**
 * Running a worker in the foreground until SIGTERM or SIGINT, shared by `oq worker` and
 * `oq monitor`: their shared flags, a periodic summary, and a graceful stop. (The worker logs
 * each task's start and outcome itself, through the queue's logger.)
 *
 * @module
 */
import process from "node:process";
import { knownVerdict, requireSafeBackend } from "../doctor/require.ts";
import { formatDuration } from "../duration.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { internals } from "../queue/internals.ts";
import type { Queue } from "../queue/queue.ts";
import type { SchedulerHandle } from "../schedule/runner.ts";
import type { Worker } from "../worker/worker.ts";
import { durationArg, intArg, skipDoctorArg } from "./args.ts";
import { openQueueInSteps } from "./config.ts";
import type { ConnectionArgs } from "./connection.ts";
import { CliError, EXIT_FAILURE, usageError } from "./errors.ts";
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
    description: "How often to log a summary line: at least 1s, or 0 for never",
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
    description: "Address the metrics server binds to, with --metrics-port (default 127.0.0.1)",
    valueHint: "host",
  },
  ...skipDoctorArg,
  ...logFormatArg,
} as const;

/** The shortest `--summary-interval` other than 0: a summary more often is noise, not news. */
export const MIN_SUMMARY_INTERVAL_MS = 1000;

/**
 * `--summary-interval` in ms: 0 (never), or at least {@link MIN_SUMMARY_INTERVAL_MS}. Why a
 * floor: `1ms` printed thousands of lines a second; and `0.0001` rounded to 0, which silently
 * meant never.
 */
export function summaryIntervalArg(value: string): number {
  const ms = durationArg(value, "summary-interval")!;
  const zero = !/[1-9]/.test(value);
  if (zero) return 0;
  if (ms < MIN_SUMMARY_INTERVAL_MS)
    throw usageError(
      `Invalid --summary-interval "${value}": use at least 1s, or 0 for no summary.`,
    );
  return ms;
}

/**
 * Open the queue for `oq worker` or `oq monitor` and read what the process needs before its first
 * claim, all while the bucket's versioning is checked (one round trip, not three): doctor's
 * verdict, proven or recalled from the cache, since claims rely on conditional writes (not with
 * `--skip-doctor`), and the manifest, which the worker's start then finds cached (created once
 * the check passed, for a new queue). Metrics are recorded and served at
 * `--metrics-host`:`--metrics-port` when a port is given; the caller closes the server when the
 * worker has stopped.
 */
export async function openForRun(
  args: ConnectionArgs & {
    "metrics-port"?: string | undefined;
    "metrics-host"?: string | undefined;
    "skip-doctor"?: boolean | undefined;
  },
): Promise<{ queue: Queue; server: MetricsServer | undefined }> {
  const port = intArg(args["metrics-port"], "metrics-port", 0, 65_535);
  // A host alone served nothing, silently: no port, no server.
  if (port === undefined && args["metrics-host"] !== undefined)
    throw usageError(
      "--metrics-host needs --metrics-port: give the port to serve metrics on (0: any free port), or drop --metrics-host.",
    );
  const served =
    port === undefined ? undefined : await metricsAt(args["metrics-host"] ?? "127.0.0.1", port);
  const { queue, checked } = openQueueInSteps(args, served?.options ?? {});
  // Reads only: nothing is written to a bucket before the check accepts it.
  const manifest = internals(queue).manifest;
  const reads = Promise.all([
    args["skip-doctor"] === true ? true : knownVerdict(queue),
    manifest.peek(),
  ]);
  // A refused bucket is reported at once, whatever the reads still do.
  reads.catch(() => {});
  await checked;
  const [known, found] = await reads;
  // No fresh verdict: probe now that the bucket is accepted. A new queue: create its manifest.
  if (known === undefined) await requireSafeBackend(queue);
  if (found === undefined) await manifest.load();
  return { queue, server: await served?.serve() };
}

/** A queue's metrics (its `metrics` option) and how to serve them at `host`:`port`. */
async function metricsAt(
  host: string,
  port: number,
): Promise<{ options: { metrics: Metrics }; serve: () => Promise<MetricsServer> }> {
  // Loaded only when asked for: a worker starts sooner without OpenTelemetry and node:http.
  const [{ Metrics }, { serveMetrics }] = await Promise.all([
    import("../metrics/metrics.ts"),
    import("./metrics-server.ts"),
  ]);
  const metrics = new Metrics();
  return { options: { metrics }, serve: () => serveMetrics(metrics, { host, port }) };
}

/**
 * Start the scheduler when `--scheduler` asks for it (after {@link openForRun}, so never before
 * doctor's verdict). Returns its handle, to stop with the worker.
 */
export async function schedulerIfAsked(
  queue: Queue,
  args: { scheduler?: boolean | undefined },
): Promise<SchedulerHandle | undefined> {
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
