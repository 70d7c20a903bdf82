/**
 * `oq status`: one task, as a readable summary or the raw record.
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import type { PayloadRef, TaskRecord } from "../task/record.ts";
import { oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { out, outJson, paintStatus, relative, type Styles, styles, table } from "./output.ts";

/** The lines of the human view of a task (label, value), for `oq status`. */
export function describeTask(task: TaskRecord, now: number, s: Styles): string[] {
  const when = (iso: string | null) =>
    iso === null ? s.dim("-") : `${iso} ${s.dim(`(${relative(Date.parse(iso), now)})`)}`;
  const rows: [string, string][] = [
    ["id", task.id],
    ["type", task.type],
    [
      "status",
      `${paintStatus(task.status, s)} ${s.dim(`(attempt ${task.attempt} of ${task.maxRetries + 1}, last event ${task.event})`)}`,
    ],
    ["created", when(task.createdAt)],
    ["available", when(task.availableAt)],
  ];
  if (task.expiresAt !== null) rows.push(["expires", when(task.expiresAt)]);
  rows.push(["started", when(task.startedAt)], ["finished", when(task.finishedAt)]);
  if (task.timeoutSeconds !== null) rows.push(["timeout", `${task.timeoutSeconds}s per attempt`]);
  if (task.lease !== null) {
    rows.push(["lease", `${task.lease.workerId}, expires ${when(task.lease.expiresAt)}`]);
  }
  if (task.cancel !== null) {
    rows.push([
      "cancel",
      `requested ${when(task.cancel.requestedAt)}${task.cancel.reason === null ? "" : `: ${task.cancel.reason}`}`,
    ]);
  }
  if (task.lastError !== null) {
    const e = task.lastError;
    rows.push([
      "last error",
      `${s.red(`${e.name}: ${e.message}`)} ${s.dim(`(attempt ${e.attempt}${e.permanent ? ", permanent" : ""}, ${relative(Date.parse(e.at), now)})`)}`,
    ]);
  }
  if (task.progress !== null) rows.push(["progress", JSON.stringify(task.progress)]);
  if (task.idempotencyKey !== null) rows.push(["idempotency", task.idempotencyKey]);
  rows.push(["input", task.inputRef ? storedApart(task.inputRef, s) : JSON.stringify(task.input)]);
  if (task.outputRef) rows.push(["output", storedApart(task.outputRef, s)]);
  else if (task.status === "completed" || task.output !== null)
    rows.push(["output", JSON.stringify(task.output)]);
  return table(rows.map(([k, v]) => [s.bold(k), v]));
}

/** A large input or output stored as its own object: its size and where (not its content). */
function storedApart(ref: PayloadRef, s: Styles): string {
  return `${formatBytes(ref.bytes)} ${s.dim(`stored apart: ${ref.key}, sha256 ${ref.sha256.slice(0, 16)}… (oq status --json shows it)`)}`;
}

/** `bytes` as KiB or MiB. */
function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export default oqCommand({
  name: "status",
  description: "Show one task: state, attempts, lease, last error, input and output.",
  examples: ["oq status 3f2a9c0d4e5b6a7c8d9e0f1a2b3c4d5e", "oq status $ID --json | jq .output"],
  args: {
    id: { type: "positional", description: "Task id", required: true },
    json: {
      type: "boolean",
      description:
        "Print the task record as JSON, with a large input or output read from its object",
    },
  },
  async run(args) {
    const queue = await openQueue(args);
    if (args.json) return outJson(await queue.get(args.id));
    // The summary shows a large input or output by size and key: it does not download it.
    const task = (await queue.read(args.id))?.task;
    if (task === undefined) throw new NotFoundError(`Task ${args.id} not found.`, { key: args.id });
    for (const line of describeTask(task, queue.now(), styles())) out(line);
  },
});
