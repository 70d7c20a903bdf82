/**
 * `oq monitor`: a worker with no handlers. It claims nothing; it recovers tasks whose worker
 * died (expired leases), expires tasks past their TTL and sweeps stale markers. Every worker does
 * this too unless started with `--no-monitor`; run one of these when none does.
 *
 * @module
 */

import type { Queue } from "../queue/queue.ts";
import { Worker } from "../worker/worker.ts";
import { durationArg, oqCommand } from "./args.ts";
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

export default oqCommand({
  name: "monitor",
  description: "Recover expired leases, expire TTLs and sweep markers, running no handlers.",
  examples: [
    "oq monitor",
    "oq monitor --summary-interval 5m --id monitor-1",
    "oq monitor --scheduler   # also submit the tasks of cron schedules",
    "oq monitor --log-scan    # the index was deleted: rebuild it in the background",
    "oq monitor --metrics-port 9464   # recoveries and expiries at http://127.0.0.1:9464/metrics",
  ],
  args: { ...runArgs },
  async run(args) {
    useLogFormat(args["log-format"]);
    const graceMs = durationArg(args.grace, "grace")!;
    const summaryMs = summaryIntervalArg(args["summary-interval"]);
    const { queue, server } = await openForRun(args);
    try {
      await runMonitor(queue, args, { graceMs, summaryMs, server });
    } finally {
      await server?.close();
    }
  },
});

/** Prepare and run the monitor until a signal (the body of `oq monitor`, once the queue is open). */
async function runMonitor(
  queue: Queue,
  args: Parameters<typeof schedulerIfAsked>[1] & {
    "log-scan"?: boolean | undefined;
    id?: string | undefined;
  },
  o: { graceMs: number; summaryMs: number; server: MetricsServer | undefined },
): Promise<void> {
  const { graceMs, summaryMs } = o;
  const scheduler = await schedulerIfAsked(queue, args);
  const worker = new Worker(queue, {
    monitor: true,
    shutdownGraceMs: graceMs,
    // openForRun() required doctor's verdict already (or --skip-doctor skipped it).
    skipDoctor: true,
    logScan: args["log-scan"] === true,
    ...(args.id === undefined ? {} : { id: args.id }),
  });
  log().info(
    `Monitor ${worker.id} on ${queue.storage.name}${queue.keys.prefix === "" ? "" : ` (prefix ${queue.keys.prefix})`}${args["log-scan"] ? "; log scan on" : ""}.`,
  );
  if (o.server !== undefined) log().info(`Metrics at ${o.server.url}`);
  await runUntilSignal(worker, { graceMs, summaryMs, concurrency: 1, scheduler });
}
