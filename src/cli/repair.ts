/**
 * `oq repair`: rebuild missing or stale ready markers from the task objects (`queue.repair()`),
 * with progress on stderr, a report of what it fixed, and a cursor to continue from when it
 * stopped at `--limit` (or on an error). Exits 1 when it found something only an operator can
 * fix (an unreadable object, a task written under the wrong shard).
 *
 * @module
 */
import process from "node:process";
import type { RepairProgress, RepairResult } from "../queue/repair.ts";
import { intArg, oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { CliError, EXIT_FAILURE } from "./errors.ts";
import { log, out, outJson, table } from "./output.ts";

/** Progress on stderr: one updating line on a terminal, a line per page otherwise. */
function progress(): (p: RepairProgress) => void {
  const tty = process.stderr.isTTY === true;
  return (p) => {
    const line =
      p.phase === "tasks"
        ? `tasks scanned ${p.tasksScanned}: markers put back ${p.markersRestored}, tasks re-indexed ${p.tasksReindexed}, unreadable ${p.unreadable}`
        : `markers checked ${p.markersChecked}: stale deleted ${p.staleMarkersDeleted}, young left ${p.youngMarkersLeft}`;
    if (tty) process.stderr.write(`\r\x1b[2K${line}`);
    else log().info(line);
  };
}

/** The human report: the counts, what needs an operator, and how to continue. */
function report(r: RepairResult, startAfter: string | undefined): void {
  const would = r.dryRun ? " (dry run: would be)" : "";
  const rows: [string, number][] = [
    ["task objects scanned", r.tasksScanned],
    [`markers put back${would}`, r.markersRestored],
    [`tasks given a new marker${would}`, r.tasksReindexed],
    ["markers checked", r.markersChecked],
    [`stale markers (and junk keys) deleted${would}`, r.staleMarkersDeleted],
    ["stale markers (and junk keys) younger than the grace, left", r.youngMarkersLeft],
    ["markers kept for a task written by hand with a mistake", r.strandedMarkersKept],
    ["unreadable objects (left untouched)", r.unreadable],
  ];
  for (const line of table(rows.map(([what, n]) => [String(n), what]))) out(line);
  for (const a of r.actions) {
    if (a.action === "unreadable" || a.action === "stranded-marker-kept")
      out(`${a.action} ${a.key}: ${a.message ?? ""}`);
  }
  if (r.cursor !== undefined) {
    out(`Stopped at the limit. Continue with: oq repair --start-after '${r.cursor}'`);
  } else if (startAfter !== undefined) {
    out("Done: the rest of the index is repaired.");
  }
}

export default oqCommand({
  name: "repair",
  description: "Rebuild missing or stale ready markers from the task objects.",
  examples: [
    "oq repair --dry-run",
    "oq repair",
    "oq repair --limit 10000   # then: oq repair --start-after <the printed cursor>",
    "oq repair --json",
  ],
  args: {
    "dry-run": { type: "boolean", description: "Report what would be done; write nothing" },
    "start-after": {
      type: "string",
      description: "Continue after this cursor, printed by an earlier run",
      valueHint: "key",
    },
    limit: {
      type: "string",
      description: "Stop after this many objects and print a cursor to continue from",
      valueHint: "n",
    },
    concurrency: {
      type: "string",
      description: "Requests in flight at once",
      default: "16",
      valueHint: "n",
    },
    json: {
      type: "boolean",
      description:
        "Print { tasksScanned, markersRestored, tasksReindexed, ..., cursor, actions } as JSON",
    },
  },
  async run(args) {
    const limit = intArg(args.limit, "limit", 1);
    const concurrency = intArg(args.concurrency, "concurrency", 1, 100)!;
    const startAfter = args["start-after"];
    const queue = await openQueue(args);
    const onProgress = progress();
    let last: RepairProgress | undefined;
    let result: RepairResult;
    try {
      result = await queue.repair({
        dryRun: args["dry-run"] === true,
        concurrency,
        onProgress: (p) => {
          last = p;
          onProgress(p);
        },
        ...(limit === undefined ? {} : { limit }),
        ...(startAfter === undefined ? {} : { startAfter }),
      });
    } catch (error) {
      if (last !== undefined)
        log().error(`Stopped by an error; continue with: oq repair --start-after '${last.cursor}'`);
      throw error;
    } finally {
      if (last !== undefined && process.stderr.isTTY === true) process.stderr.write("\n");
    }
    if (args.json) outJson({ ...result, cursor: result.cursor ?? null });
    else report(result, startAfter);
    if (result.unreadable + result.strandedMarkersKept > 0) {
      throw new CliError(
        'Some objects need an operator (see above and docs/protocol.md, "Writing a task by hand").',
        EXIT_FAILURE,
      );
    }
  },
});
