/**
 * `oq worker <tasks-module>`: run the handlers a module exports until SIGTERM/SIGINT.
 *
 * @module
 */
import type { Queue } from "../queue/queue.ts";
import { Worker, type WorkerOptions } from "../worker/worker.ts";
import { durationArg, intArg, oqCommand, secondsArg } from "./args.ts";
import { useLogFormat } from "./logs.ts";
import type { MetricsServer } from "./metrics-server.ts";
import { log } from "./output.ts";
import {
  openForRun,
  runArgs,
  runUntilSignal,
  schedulerIfAsked,
  summaryIntervalArg,
} from "./run-worker.ts";
import { loadTasksModule } from "./tasks-module.ts";

export default oqCommand({
  name: "worker",
  description: "Run the task handlers a module exports (stop with SIGTERM/SIGINT).",
  examples: [
    "oq worker ./tasks.ts",
    "oq worker ./tasks.ts --concurrency 8 --lease 2m --timeout 10m --grace 30s",
    "oq worker ./tasks.ts --no-monitor --id worker-1",
    "oq worker ./tasks.ts --scheduler   # also submit the tasks of cron schedules",
    "oq worker ./tasks.ts --log-scan    # the index was deleted: rebuild it in the background",
    "oq worker ./tasks.ts --metrics-port 9464   # Prometheus metrics at http://127.0.0.1:9464/metrics",
  ],
  args: {
    module: {
      type: "positional",
      description: "Module exporting { [taskType]: handler } (default or named exports)",
      required: true,
    },
    concurrency: {
      type: "string",
      alias: ["c"],
      description: "Tasks run at once",
      default: "1",
      valueHint: "n",
    },
    lease: {
      type: "string",
      description: "Lease length, renewed while a handler runs",
      default: "60s",
      valueHint: "duration",
    },
    timeout: {
      type: "string",
      description: "Time limit of an attempt when the task has none (default: none)",
      valueHint: "duration",
    },
    monitor: {
      type: "boolean",
      description: "Also recover expired leases, expire TTLs and sweep stale markers",
      negativeDescription: "Only run handlers; leave recovery to other workers or oq monitor",
      default: true,
    },
    ...runArgs,
  },
  async run(args) {
    useLogFormat(args["log-format"]);
    const concurrency = intArg(args.concurrency, "concurrency", 1, 1000)!;
    const leaseSeconds = secondsArg(args.lease, "lease")!;
    const timeoutSeconds = secondsArg(args.timeout, "timeout");
    const graceMs = durationArg(args.grace, "grace")!;
    const summaryMs = summaryIntervalArg(args["summary-interval"]);
    // The tasks module loads while the queue opens (the versioning check, the verdict, the
    // manifest). Loading blocks this thread, so the requests go first, and get a turn of the
    // event loop to reach the wire: the storage answers them while the module loads.
    const opening = openForRun(args);
    const loading = new Promise((resolve) => setTimeout(resolve, 0)).then(() =>
      loadTasksModule(args.module),
    );
    const [opened, loaded] = await Promise.allSettled([opening, loading]);
    if (loaded.status === "rejected") {
      if (opened.status === "fulfilled") await opened.value.server?.close();
      throw loaded.reason;
    }
    if (opened.status === "rejected") throw opened.reason;
    const handlers = loaded.value;
    const { queue, server } = opened.value;
    try {
      await runWorker(queue, handlers, args, {
        concurrency,
        leaseSeconds,
        timeoutSeconds,
        graceMs,
        summaryMs,
        server,
      });
    } finally {
      await server?.close();
    }
  },
});

/** Prepare and run the worker until a signal (the body of `oq worker`, once the queue is open). */
async function runWorker(
  queue: Queue,
  handlers: Awaited<ReturnType<typeof loadTasksModule>>,
  args: {
    monitor: boolean;
    "log-scan"?: boolean | undefined;
    id?: string | undefined;
    scheduler?: boolean | undefined;
  },
  o: {
    concurrency: number;
    leaseSeconds: number;
    timeoutSeconds: number | undefined;
    graceMs: number;
    summaryMs: number;
    server: MetricsServer | undefined;
  },
): Promise<void> {
  const { concurrency, leaseSeconds, timeoutSeconds, graceMs, summaryMs } = o;
  const scheduler = await schedulerIfAsked(queue, args);
  const options: WorkerOptions = {
    concurrency,
    leaseSeconds,
    monitor: args.monitor,
    shutdownGraceMs: graceMs,
    // openForRun() required doctor's verdict already (or --skip-doctor skipped it).
    skipDoctor: true,
    logScan: args["log-scan"] === true,
  };
  if (timeoutSeconds !== undefined) options.timeoutSeconds = timeoutSeconds;
  if (args.id !== undefined) options.id = args.id;
  const worker = new Worker(queue, options);
  for (const [type, entry] of handlers) worker.task(type, entry.handler, entry.options);
  log().info(
    `Worker ${worker.id} on ${queue.storage.name}${queue.keys.prefix === "" ? "" : ` (prefix ${queue.keys.prefix})`}: ${worker.types.join(", ")}; concurrency ${concurrency}${args.monitor ? "" : "; monitor off"}${args["log-scan"] ? "; log scan on" : ""}.`,
  );
  if (o.server !== undefined) log().info(`Metrics at ${o.server.url}`);
  await runUntilSignal(worker, { graceMs, summaryMs, concurrency, scheduler });
}
