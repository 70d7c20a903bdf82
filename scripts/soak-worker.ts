/**
 * One worker process of the process soak (scripts/soak-processes.ts): 4 slots on the soak's
 * queue, reached through OQ_TEST_S3_* and `SOAK_WORKER` (JSON: prefix, bucket, monitor round,
 * max poll). It writes through the soak's witness (scripts/soak-observe.ts) and reports what the
 * witness sees on stdout, one line at a time (stdout to a pipe is synchronous on Linux, so a
 * SIGKILL loses at most the line being written):
 *
 * ```
 * ready <pid>
 * w <task id> <status> <finishedAt or ->   a write of the task's object landed
 * d <task id>                              oq is about to delete the task's object
 * run <task id> <attempt>                  a handler started
 * event <kind> <task id> [error]           an unusual worker event (lease lost, ...)
 * warn <message>                           the first warnings and errors logged
 * ```
 *
 * SIGTERM stops the worker gracefully and exits 0.
 */
import type { LogFields } from "../src/logger.ts";
import { Queue } from "../src/queue/queue.ts";
import { runtimeFetch } from "../src/runtime/node-fetch.ts";
import { isTaskOutcome } from "../src/worker/task-log.ts";
import { Worker } from "../src/worker/worker.ts";
import { testS3Storage } from "../test/helpers/targets.ts";
import { observeTasks, printedNotes } from "./soak-observe.ts";
import { soakHandler } from "./soak-stream.ts";

const config = JSON.parse(process.env.SOAK_WORKER ?? "{}") as {
  prefix: string;
  bucket: string;
  monitorRoundSeconds: number;
  maxPollMs: number;
};
const say = (line: string) => process.stdout.write(`${line}\n`);
const storage = observeTasks(
  // The HTTP client `oq worker` uses on this runtime (node:http on Node).
  testS3Storage(config.bucket, runtimeFetch()),
  `${config.prefix}tasks/`,
  printedNotes(say),
);
let logged = 0;
const log = (message: string, fields?: LogFields) => {
  if (!isTaskOutcome(fields) && ++logged <= 10) say(`warn ${message.replace(/\s+/g, " ")}`);
};
const logger = { info: () => {}, warn: log, error: log };
const USUAL = new Set(["started", "completed", "failed", "cancelled", "expired"]);
const worker = new Worker(new Queue({ storage, prefix: config.prefix, logger }), {
  concurrency: 4,
  monitorRoundSeconds: config.monitorRoundSeconds,
  maxPollMs: config.maxPollMs,
  onEvent: (e) => {
    if (!USUAL.has(e.kind))
      say(`event ${e.kind} ${e.id}${e.error ? ` ${e.error.replace(/\s+/g, " ")}` : ""}`);
  },
}).task(
  "soak",
  soakHandler((id, attempt) => say(`run ${id} ${attempt}`)),
);
await worker.start();
say(`ready ${process.pid}`);
process.on("SIGTERM", () => void worker.stop().finally(() => process.exit(0)));
