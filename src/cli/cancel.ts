/**
 * `oq cancel`: cancel tasks by id, or every live task of a type, reporting per task what
 * happened. Exits 1 when any could not be cancelled, so scripts notice.
 *
 * @module
 */
import process from "node:process";
import { checkTaskId } from "../keys.ts";
import type { CancelOutcome } from "../queue/types.ts";
import { oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { CliError, EXIT_FAILURE, usageError } from "./errors.ts";
import { log, out, outJson, type Styles, styles, table } from "./output.ts";

function explain(o: CancelOutcome, s: Styles): string {
  switch (o.result) {
    case "cancelled":
      return s.green("cancelled");
    case "cancel-requested":
      return s.yellow("cancel requested: running; its handler is told to stop");
    case "not-found":
      return s.red("not found");
    case "invalid-id":
      return s.red("invalid id");
    case "malformed":
      return s.red(`skipped: ${o.message ?? "the stored object is not a valid task"}`);
    default:
      return o.result.startsWith("already-")
        ? s.dim(`not cancelled: already ${o.result.slice("already-".length)}`)
        : o.result;
  }
}

/** Progress of a bulk cancel on stderr: one updating line on a terminal, a few lines otherwise. */
function progress(): (done: number, total: number) => void {
  const tty = process.stderr.isTTY === true;
  let lastQuarter = 0;
  return (done, total) => {
    if (total < 10) return;
    if (tty) {
      process.stderr.write(`\rcancelling ${done}/${total}${done === total ? "\n" : ""}`);
      return;
    }
    const quarter = Math.floor((done / total) * 4);
    if (quarter > lastQuarter) {
      lastQuarter = quarter;
      log().info(`cancelled ${done}/${total}`);
    }
  };
}

export default oqCommand({
  name: "cancel",
  description: "Cancel tasks by id, or all pending and running tasks of a type.",
  examples: [
    "oq cancel 3f2a9c0d4e5b6a7c8d9e0f1a2b3c4d5e",
    "oq cancel $ID1 $ID2 --reason 'customer asked'",
    "oq cancel --type email --json",
  ],
  variadic: true,
  args: {
    ids: { type: "positional", description: "Task ids", required: false },
    ...taskTypeArg("Cancel every pending or running task of this type"),
    reason: {
      type: "string",
      description: "Why; kept on the task and seen by its handler",
      valueHint: "text",
    },
    json: {
      type: "boolean",
      description: "Print [{ id, ok, result, status, message? }] as JSON",
    },
  },
  async run(args) {
    const ids = args._;
    const type = args.type;
    if (ids.length > 0 && type !== undefined)
      throw usageError("Give task ids or --type, not both.");
    if (ids.length === 0 && type === undefined)
      throw usageError("Give the ids of the tasks to cancel, or --type TYPE.");
    // A malformed id is a wrong command line (exit 2, stating the id rule), as in status,
    // history and replay, not a per-task "invalid id" outcome; and nothing is cancelled.
    for (const id of ids) checkTaskId(id);
    const queue = await openQueue(args);
    const options = {
      onProgress: progress(),
      ...(args.reason === undefined ? {} : { reason: args.reason }),
    };
    const outcomes =
      type === undefined
        ? await queue.cancelMany(ids, options)
        : await queue.cancelByType(type, options);
    if (args.json) {
      outJson(
        outcomes.map((o) => ({
          id: o.id,
          ok: o.ok,
          result: o.result,
          status: o.task?.status ?? null,
          ...(o.message === undefined ? {} : { message: o.message }),
        })),
      );
    } else if (outcomes.length === 0) {
      log().info(`No pending or running ${type} tasks.`);
    } else {
      const s = styles();
      for (const line of table(outcomes.map((o) => [o.id, explain(o, s)]))) out(line);
    }
    const failed = outcomes.filter((o) => !o.ok).length;
    if (failed > 0) {
      throw new CliError(
        `${failed} of ${outcomes.length} task${outcomes.length === 1 ? "" : "s"} could not be cancelled.`,
        EXIT_FAILURE,
      );
    }
  },
});
