/**
 * `oq history`: a task's event log, kept in its record (one GET, any backend); with `--versions`,
 * every stored version of it, oldest first, read from bucket versioning.
 *
 * @module
 */
import type { TaskVersion } from "../queue/types.ts";
import type { TaskRecord } from "../task/record.ts";
import { oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { out, outJson, paintStatus, styles, table } from "./output.ts";

/** One version of a task, as `oq history --versions --json` prints it. */
export interface HistoryLine {
  /** Storage version id. */
  versionId: string;
  /** When the transition happened (the record's `updatedAt`; storage time for a delete). */
  at: string;
  /** The transition (`submitted`, `claimed`, ...), or `deleted` for a delete marker. */
  event: string;
  /** Status after it, or null for a delete marker. */
  status: string | null;
  /** Attempt after it. */
  attempt: number | null;
  /** The worker that held the task: the lease holder, or for the end of an attempt its runner. */
  worker: string | null;
  /** The error this transition recorded, if it recorded a new one. */
  error: string | null;
  /** The full record of this version, or null for a delete marker. */
  task: TaskRecord | null;
}

/**
 * Flatten versions into lines. An outcome clears the lease, so its worker is taken from the
 * version before; an error is shown only on the version that recorded it, not on every later one.
 */
export function historyLines(entries: readonly TaskVersion[]): HistoryLine[] {
  let previous: TaskRecord | null = null;
  return entries.map((entry) => {
    const task = entry.task;
    if (task === null) {
      previous = null;
      return {
        versionId: entry.versionId,
        at: entry.lastModified.toISOString(),
        event: "deleted",
        status: null,
        attempt: null,
        worker: null,
        error: null,
        task: null,
      };
    }
    const before: TaskRecord | null = previous;
    const worker = task.lease?.workerId ?? before?.lease?.workerId ?? null;
    const newError =
      task.lastError !== null &&
      (before === null || JSON.stringify(before.lastError) !== JSON.stringify(task.lastError));
    previous = task;
    return {
      versionId: entry.versionId,
      at: task.updatedAt,
      event: task.event,
      status: task.status,
      attempt: task.attempt,
      worker,
      error: newError ? `${task.lastError!.name}: ${task.lastError!.message}` : null,
      task,
    };
  });
}

export default oqCommand({
  name: "history",
  description:
    "Show a task's recent transitions (time, event, attempt, worker, error), or with --versions every stored version of it.",
  examples: [
    "oq history 3f2a9c0d4e5b6a7c8d9e0f1a2b3c4d5e",
    "oq history $ID --versions",
    "oq history $ID --json",
  ],
  args: {
    id: { type: "positional", description: "Task id", required: true },
    versions: {
      type: "boolean",
      description:
        "Read every stored version from bucket versioning (with status) instead of the log kept in the task",
    },
    json: { type: "boolean", description: "Print the entries (or versions) as a JSON array" },
  },
  async run(args) {
    const queue = await openQueue(args);
    const s = styles();
    if (!args.versions) {
      const entries = await queue.getHistory(args.id);
      if (args.json) return outJson(entries);
      const rows = entries.map((e) => [
        e.at,
        e.event,
        String(e.attempt),
        e.worker ?? s.dim("-"),
        e.error === null ? "" : s.red(e.error),
      ]);
      for (const line of table([
        ["TIME", "EVENT", "ATTEMPT", "WORKER", "ERROR"].map((h) => s.bold(h)),
        ...rows,
      ]))
        out(line);
      return;
    }
    const lines = historyLines(await queue.getVersions(args.id));
    if (args.json) return outJson(lines);
    const rows = lines.map((l) => [
      l.at,
      l.event,
      l.status === null ? s.dim("-") : paintStatus(l.status as TaskRecord["status"], s),
      l.attempt === null ? "" : String(l.attempt),
      l.worker ?? s.dim("-"),
      l.error === null ? "" : s.red(l.error),
    ]);
    for (const line of table([
      ["TIME", "EVENT", "STATUS", "ATTEMPT", "WORKER", "ERROR"].map((h) => s.bold(h)),
      ...rows,
    ]))
      out(line);
  },
});
