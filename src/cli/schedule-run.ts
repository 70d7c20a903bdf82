/**
 * `oq schedule run`: the scheduler daemon. It submits each due slot of every enabled schedule
 * once; any number may run at once, since each slot's task has a fixed idempotency key.
 *
 * @module
 */
import process from "node:process";
import { requireSafeBackend } from "../doctor/mod.ts";
import { Scheduler } from "../schedule/scheduler.ts";
import { durationArg, oqCommand, skipDoctorArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { CliError, EXIT_FAILURE, usageError } from "./errors.ts";
import { logFormatArg, useLogFormat } from "./logs.ts";
import { log } from "./output.ts";

export default oqCommand({
  name: "run",
  description:
    "Run the scheduler until SIGTERM/SIGINT: submit each due slot once (safe to run several).",
  examples: [
    "oq schedule run",
    "oq schedule run --interval 10s",
    "oq worker ./tasks.ts --scheduler",
  ],
  args: {
    interval: {
      type: "string",
      description:
        "Longest pause between looks at the schedules, in seconds or with a unit (it also wakes at each next slot)",
      default: "60",
      valueHint: "duration",
    },
    ...skipDoctorArg,
    ...logFormatArg,
  },
  async run(args) {
    useLogFormat(args["log-format"]);
    const intervalMs = durationArg(args.interval, "interval")!;
    if (intervalMs < 100)
      throw usageError(`Invalid --interval "${args.interval}": use at least 100ms.`);
    const queue = await openQueue(args);
    if (!args["skip-doctor"]) await requireSafeBackend(queue);
    const scheduler = new Scheduler(queue);
    const controller = new AbortController();
    let signals = 0;
    let forced: ((error: Error) => void) | undefined;
    const gaveUp = new Promise<never>((_, reject) => {
      forced = reject;
    });
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        log().info(
          `${signal}: stopping after the current tick (send ${signal} again to exit at once)`,
        );
        controller.abort();
      } else {
        // Safe: a slot submitted but not yet recorded is submitted again (same key) next time.
        forced?.(new CliError(`${signal} again: exiting at once.`, EXIT_FAILURE));
      }
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      const count = (await scheduler.list()).length;
      log().info(
        `Scheduler on ${queue.storage.name}${queue.keys.prefix === "" ? "" : ` (prefix ${queue.keys.prefix})`}: ${count} schedule${count === 1 ? "" : "s"}; looking at least every ${intervalMs / 1000}s.`,
      );
      await Promise.race([scheduler.run({ intervalMs, signal: controller.signal }), gaveUp]);
      log().info("Scheduler stopped.");
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
});
