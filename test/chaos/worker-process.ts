/**
 * A chaos worker in its own process (see `chaos-worker.ts`). Reaches the queue through the OQ_*
 * variables (OQ_URL=file:... or the S3 ones) and reads its settings, faults included, from
 * `CHAOS_WORKER` (JSON). Speaks one line at a time on stdout, so that a SIGKILL loses at most
 * the line being written:
 *
 * ```
 * ready <worker id>
 * run <task id> <attempt> <epoch ms>        a handler started
 * event <json WorkerEvent>                  a task outcome (completed, lease-lost, ...)
 * warn <message>                            the first warnings logged (then only counted)
 * status <json ChaosStatus>                 every 250 ms and on exit: faults, stats, warnings
 * ```
 *
 * SIGTERM stops the worker gracefully, prints a last status and exits 0.
 */
import { resolveStorage } from "../../src/connect.ts";
import { FileStorage } from "../../src/runtime/file/storage.ts";
import { runtimeFetch } from "../../src/runtime/node-fetch.ts";
import { startChaosWorker } from "./chaos-worker.ts";

const config = JSON.parse(process.env.CHAOS_WORKER ?? "{}");
// The HTTP client `oq worker` uses on this runtime (node:http on Node), so the network and
// drive scenarios put the client users run through resets, stalls and 503 storms.
const fetch = runtimeFetch();
const { storage, prefix } = resolveStorage({
  env: process.env,
  openFile: (root) => new FileStorage({ root }),
  ...(fetch === undefined ? {} : { fetch }),
});
const say = (line: string) => process.stdout.write(`${line}\n`);
let warned = 0;
const chaos = await startChaosWorker(storage, prefix ?? "", config, {
  run: (id, attempt, at) => say(`run ${id} ${attempt} ${at}`),
  event: (e) => {
    if (e.kind !== "started") say(`event ${JSON.stringify(e)}`);
  },
  warn: (message) => {
    if (warned++ < 20) say(`warn ${message.replace(/\s+/g, " ")}`);
  },
});
const status = () => say(`status ${JSON.stringify(chaos.status())}`);
const timer = setInterval(status, 250);
say(`ready ${config.id}`);
process.on("SIGTERM", () => {
  clearInterval(timer);
  void chaos
    .stop()
    .catch((error: unknown) => say(`warn stop failed: ${String(error)}`))
    .finally(() => {
      status();
      process.exit(0);
    });
});
// A crash must be visible to the parent, not a silent exit.
process.on("uncaughtException", (error) => {
  say(`crash ${String(error?.stack ?? error).replace(/\s+/g, " ")}`);
  process.exit(70);
});
process.on("unhandledRejection", (error) => {
  say(
    `crash unhandled rejection: ${String((error as Error)?.stack ?? error).replace(/\s+/g, " ")}`,
  );
  process.exit(70);
});
