/**
 * `oq prune`: delete finished tasks past their retention now (`queue.prune()`), with progress
 * on stderr and a report of what it deleted. Workers do this on their own; this is for
 * operators, queues without a monitor, and the `--scan` backstop.
 *
 * @module
 */
import process from "node:process";
import type { FinishedStatus } from "../keys.ts";
import type { PruneProgress } from "../queue/prune.ts";
import { intArg, oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { log, out, outJson, table } from "./output.ts";
import { retentionFlags, retentionFromFlags } from "./retention-flags.ts";

function progress(): (p: PruneProgress) => void {
  const tty = process.stderr.isTTY === true;
  return (p) => {
    const line = `deleted ${p.deleted} tasks, ${p.journals} journals; left ${p.skipped} changed${p.scanned > 0 ? `; scanned ${p.scanned}` : ""}`;
    if (tty) process.stderr.write(`\r\x1b[2K${line}`);
    else log().info(line);
  };
}

export default oqCommand({
  name: "prune",
  description: "Delete finished tasks whose retention has passed (see oq retention).",
  examples: [
    "oq prune --dry-run",
    "oq prune",
    "oq prune --type email --completed 1h   # this run only: completed email tasks older than 1h",
    "oq prune --scan   # also find finished tasks the journal does not name",
  ],
  args: {
    ...taskTypeArg("Only tasks of this type"),
    status: {
      type: "string",
      description: "Only these terminal statuses (comma-separated)",
      valueHint: "status[,status]",
    },
    ...retentionFlags,
    "dry-run": { type: "boolean", description: "Count what would be deleted; delete nothing" },
    limit: { type: "string", description: "Stop after deleting this many tasks", valueHint: "n" },
    scan: {
      type: "boolean",
      description:
        "Also walk tasks/ for finished tasks missing from the journal (reads old tasks) and, without --type, payloads/ for large inputs and outputs no task names",
    },
    json: { type: "boolean", description: "Print { deleted, journals, skipped, scanned, more }" },
  },
  async run(args) {
    const limit = intArg(args.limit, "limit", 1);
    const queue = await openQueue(args);
    const retention = retentionFromFlags(args);
    const onProgress = progress();
    let shown = false;
    const result = await queue
      .prune({
        ...(args.type === undefined ? {} : { type: args.type }),
        ...(args.status === undefined
          ? {}
          : { status: args.status.split(",").map((s) => s.trim()) as FinishedStatus[] }),
        ...(retention === undefined ? {} : { retention }),
        ...(limit === undefined ? {} : { limit }),
        dryRun: args["dry-run"] === true,
        scan: args.scan === true,
        onProgress: (p) => {
          shown = true;
          onProgress(p);
        },
      })
      .finally(() => {
        if (shown && process.stderr.isTTY === true) process.stderr.write("\n");
      });
    if (args.json) return outJson(result);
    const would = args["dry-run"] === true ? " (dry run: would be)" : "";
    const rows: [number, string][] = [
      [result.deleted, `finished tasks deleted${would}`],
      [result.journals, `journals done with${would}`],
      [
        result.skipped,
        "journal entries left: their task is not as the journal says (replayed, gone, live)",
      ],
    ];
    if (args.scan === true) rows.push([result.scanned, "task objects scanned"]);
    if (result.orphanedPayloads !== undefined)
      rows.push([result.orphanedPayloads, `payloads no task names deleted${would}`]);
    for (const line of table(rows.map(([n, what]) => [String(n), what]))) out(line);
    if (result.more) out("Stopped early (limit or throttling): run it again to continue.");
  },
});
