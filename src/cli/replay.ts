/**
 * `oq replay`: run failed, expired or cancelled tasks again with a fresh retry budget: by id, or
 * every dead letter (`--all-failed`, `--all-cancelled`, `--all-expired`, optionally of one
 * `--type`), oldest first, found through the finished journal (`queue.listAll()`), with progress
 * on stderr and a summary. Exits 1 when a task could not be replayed.
 *
 * @module
 */
import process from "node:process";
import { InvalidStateError, NotFoundError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import { type ReplayTally, replayAll } from "../queue/replay-all.ts";
import { oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { CliError, EXIT_FAILURE, usageError } from "./errors.ts";
import { log, out, outJson, table } from "./output.ts";

/** Progress on stderr: one updating line on a terminal, a line per 100 tasks otherwise. */
function progress(dryRun: boolean): (t: ReplayTally, final: boolean) => void {
  const tty = process.stderr.isTTY === true;
  let logged = 0;
  return (t, final) => {
    const done = t.replayed + t.skipped + t.refused.length;
    const line = `${dryRun ? "would replay" : "replayed"} ${t.replayed}, skipped ${t.skipped} (no longer in that state), refused ${t.refused.length}`;
    if (tty) {
      process.stderr.write(`\r\x1b[2K${line}${final ? "\n" : ""}`);
    } else if (final ? done !== logged : done - logged >= 100) {
      logged = done;
      log().info(line);
    }
  };
}

/** `--all-*`: replay every task in `statuses`, print the summary, exit 1 when some were refused. */
async function replayAllAndReport(
  queue: Queue,
  statuses: readonly ("failed" | "cancelled" | "expired")[],
  type: string | undefined,
  dryRun: boolean,
  json: boolean | undefined,
): Promise<void> {
  const report = progress(dryRun);
  const tally = await replayAll(queue, {
    statuses,
    dryRun,
    ...(type === undefined ? {} : { type }),
    onProgress: (t) => report(t, false),
  });
  report(tally, true);
  const refused = tally.refused.map((o) => ({ id: o.id, type: o.type, message: o.message }));
  if (json) outJson({ dryRun, replayed: tally.replayed, skipped: tally.skipped, refused });
  else {
    const would = dryRun ? " (dry run: would be)" : "";
    for (const line of table([
      [String(tally.replayed), `replayed${would}`],
      [String(tally.skipped), "skipped: no longer in that state"],
      [String(refused.length), "refused: retention ends soon (raise it with oq retention)"],
    ]))
      out(line);
    for (const r of refused) out(`refused ${r.id}: ${r.message}`);
  }
  if (refused.length > 0)
    throw new CliError(
      `${refused.length} task${refused.length === 1 ? " was" : "s were"} not replayed.`,
      EXIT_FAILURE,
    );
}

export default oqCommand({
  name: "replay",
  description:
    "Put failed, expired or cancelled tasks back to pending with fresh retries: by id, or all of them (--all-failed).",
  examples: [
    "oq replay 3f2a9c0d4e5b6a7c8d9e0f1a2b3c4d5e",
    "oq replay --all-failed --type email --dry-run",
    "oq replay --all-failed --type email",
    "oq replay --all-cancelled --all-expired",
  ],
  variadic: true,
  args: {
    ids: { type: "positional", description: "Task ids", required: false },
    "all-failed": {
      type: "boolean",
      description: "Replay every failed task (the dead letters), oldest first",
    },
    "all-cancelled": { type: "boolean", description: "Replay every cancelled task" },
    "all-expired": { type: "boolean", description: "Replay every expired task" },
    ...taskTypeArg("With --all-*: only tasks of this type"),
    "dry-run": { type: "boolean", description: "With --all-*: count what would be replayed" },
    json: {
      type: "boolean",
      description:
        "Print the task record (one id), [{ id, ok, result, ... }] (several), or { replayed, skipped, refused } (--all-*) as JSON",
    },
  },
  async run(args) {
    const ids = args._;
    const statuses = (["failed", "cancelled", "expired"] as const).filter(
      (s) => args[`all-${s}`] === true,
    );
    if (statuses.length > 0 && ids.length > 0)
      throw usageError("Give task ids or --all-failed (--all-cancelled, --all-expired), not both.");
    if (statuses.length === 0 && ids.length === 0)
      throw usageError("Give the ids of the tasks to replay, or --all-failed.");
    if (statuses.length === 0 && (args.type !== undefined || args["dry-run"] === true))
      throw usageError(
        "--type and --dry-run go with --all-failed, --all-cancelled or --all-expired.",
      );
    const queue = await openQueue(args);
    if (statuses.length > 0)
      return replayAllAndReport(queue, statuses, args.type, args["dry-run"] === true, args.json);
    if (ids.length === 1) {
      const task = await queue.replay(ids[0]!);
      if (args.json) outJson(task);
      else out(task.id);
      log().success(
        `Replayed ${task.type} task ${task.id}: pending again, ${task.maxRetries + 1} attempts left.`,
      );
      return;
    }
    const outcomes: { id: string; ok: boolean; result: string; message?: string }[] = [];
    for (const id of ids) {
      try {
        await queue.replay(id);
        outcomes.push({ id, ok: true, result: "replayed" });
      } catch (error) {
        if (!(error instanceof InvalidStateError || error instanceof NotFoundError)) throw error;
        outcomes.push({ id, ok: false, result: error.code.toLowerCase(), message: error.message });
      }
    }
    if (args.json) outJson(outcomes);
    else
      for (const line of table(outcomes.map((o) => [o.id, o.ok ? o.result : (o.message ?? "")])))
        out(line);
    const failed = outcomes.filter((o) => !o.ok).length;
    if (failed > 0)
      throw new CliError(
        `${failed} of ${outcomes.length} tasks could not be replayed.`,
        EXIT_FAILURE,
      );
  },
});
