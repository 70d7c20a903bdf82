/**
 * `oq list`: tasks as an aligned table, filtered by status and type, read through the indexes
 * (`queue.list()`). A listing that includes completed tasks is bounded to those finished in the
 * last 24 hours unless `--since` says otherwise, so it pages through recent finished tasks only.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { listingSince } from "../queue/since.ts";
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

/**
 * The `since` of a listing, as a function of the server time (`listingSince`): checked before
 * connecting, so a bad value is a usage error (exit 2).
 */
function sinceOf(
  value: string | undefined,
  statuses: readonly TaskStatus[] | undefined,
): (now: number) => number | undefined {
  const at = (now: number) => listingSince(value, statuses, "--since", now);
  try {
    at(Date.now());
  } catch (error) {
    if (error instanceof ValidationError) throw usageError(error.message);
    throw error;
  }
  return at;
}

export default oqCommand({
  name: "list",
  description:
    "List tasks (id, type, status, attempt, age), oldest first, through the indexes; completed ones of the last 24 h unless --since says otherwise.",
  examples: [
    "oq list",
    "oq list --status failed --type email",
    "oq list --status pending,running --limit 20 --json",
    "oq list --status completed --since 7d",
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
    since: {
      type: "string",
      description:
        'Only finished tasks finished since: a duration ago (7d) or a date; "all" for every one (default 24h when completed tasks are listed)',
      valueHint: "when",
    },
    json: {
      type: "boolean",
      description: "Print { tasks: [...records], cursor } as JSON",
    },
  },
  async run(args) {
    const status = parseStatuses(args.status);
    const limit = intArg(args.limit, "limit", 1, 10_000) ?? 100;
    const sinceAt = sinceOf(args.since, status);
    const queue = await openQueue(args);
    const since = sinceAt(queue.now());
    const page = await queue.list({
      limit,
      ...(since === undefined ? {} : { since }),
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
