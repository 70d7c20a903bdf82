/**
 * `oq list`: tasks as an aligned table, filtered by status and type.
 *
 * @module
 */
import type { TaskStatus } from "../task/record.ts";
import { TERMINAL_STATUSES } from "../task/transitions.ts";
import { intArg, oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { usageError } from "./errors.ts";
import { log, out, outJson, paintStatus, relative, styles, table } from "./output.ts";

const STATUSES: readonly TaskStatus[] = ["pending", "running", ...TERMINAL_STATUSES];

function parseStatuses(value: string | undefined): TaskStatus[] | undefined {
  if (value === undefined) return undefined;
  const wanted = value.split(",").map((s) => s.trim());
  for (const s of wanted) {
    if (!STATUSES.includes(s as TaskStatus)) {
      throw usageError(`Invalid --status "${s}": expected one of ${STATUSES.join(", ")}.`);
    }
  }
  return wanted as TaskStatus[];
}

export default oqCommand({
  name: "list",
  description: "List tasks (id, type, status, attempt, age); reads every task it scans.",
  examples: [
    "oq list",
    "oq list --status failed --type email",
    "oq list --status pending,running --limit 20 --json",
  ],
  args: {
    status: {
      type: "string",
      alias: ["s"],
      description: `Only tasks in these states, comma-separated (${STATUSES.join(", ")})`,
      valueHint: "status",
    },
    ...taskTypeArg("Only tasks of this type"),
    limit: {
      type: "string",
      alias: ["n"],
      description: "Show at most this many tasks (default 100)",
      valueHint: "n",
    },
    cursor: {
      type: "string",
      description: "Continue after the previous page (printed when there are more)",
      valueHint: "cursor",
    },
    json: {
      type: "boolean",
      description: "Print { tasks: [...records], cursor } as JSON",
    },
  },
  async run(args) {
    const status = parseStatuses(args.status);
    const limit = intArg(args.limit, "limit", 1, 10_000) ?? 100;
    const queue = await openQueue(args);
    const page = await queue.list({
      limit,
      ...(status === undefined ? {} : { status }),
      ...(args.type === undefined ? {} : { type: args.type }),
      ...(args.cursor === undefined ? {} : { cursor: args.cursor }),
    });
    if (args.json) return outJson({ tasks: page.tasks, cursor: page.cursor ?? null });
    if (page.tasks.length === 0) {
      log().info("No tasks match.");
      return;
    }
    const s = styles();
    const now = queue.now();
    const rows = page.tasks.map((t) => [
      t.id,
      t.type,
      paintStatus(t.status, s),
      String(t.attempt),
      relative(Date.parse(t.createdAt), now),
    ]);
    for (const line of table([
      ["ID", "TYPE", "STATUS", "ATTEMPT", "AGE"].map((h) => s.bold(h)),
      ...rows,
    ]))
      out(line);
    if (page.cursor !== undefined) {
      log().info(`More tasks follow: add --cursor ${page.cursor}`);
    }
  },
});
