/**
 * Replaying finished tasks in bulk: every failed (cancelled, expired) task, optionally of one
 * type, found through the finished journal (`queue.listAll()`), oldest first. Behind
 * `oq replay --all-failed` and the dashboard's "replay all failed".
 *
 * @module
 */
import { InvalidStateError, NotFoundError } from "../errors.ts";
import type { TaskRecord, TaskStatus } from "../task/record.ts";
import { mapLimit } from "../util/async.ts";
import { internals } from "./internals.ts";
import type { Queue } from "./queue.ts";

/** Replays in flight at once. */
const CONCURRENCY = 8;

/** What became of one task. */
export type ReplayResult = "replayed" | "would-replay" | "skipped" | "refused";

/** One task of a bulk replay. */
export interface ReplayOutcome {
  id: string;
  type: string;
  result: ReplayResult;
  /** Why it was refused (the error's message), or what it is now when skipped. */
  message?: string;
  task?: TaskRecord;
}

/** What a bulk replay did so far. */
export interface ReplayTally {
  /** Replayed (or, in a dry run, would be). */
  replayed: number;
  /** No longer in the state listed (replayed or deleted meanwhile). */
  skipped: number;
  /** Refused by the queue (their retention ends soon), with the reason. */
  refused: ReplayOutcome[];
}

/** Options of {@link replayAll}. */
export interface ReplayAllOptions {
  /** The finished states to replay. */
  statuses: readonly ("failed" | "cancelled" | "expired")[];
  /** Only tasks of this type. Default: every type. */
  type?: string;
  /** Count what would be replayed; change nothing. Default false. */
  dryRun?: boolean;
  /** Called after every batch (of 16) with the tally so far. */
  onProgress?: (tally: ReplayTally) => void;
}

/**
 * Replay `id`, listed as `status`. A task no longer in that state (replayed or deleted meanwhile)
 * is skipped; one still in it that the queue refuses (its retention ends soon) is refused, with
 * the queue's reason. Errors of the storage stop the run.
 */
async function replayOne(
  queue: Queue,
  id: string,
  type: string,
  status: TaskStatus | undefined,
): Promise<ReplayOutcome> {
  try {
    return { id, type, result: "replayed", task: await queue.replay(id) };
  } catch (error) {
    if (error instanceof NotFoundError) return { id, type, result: "skipped", message: "gone" };
    if (!(error instanceof InvalidStateError)) throw error;
    const now = (await queue.read(id))?.task;
    if (now === undefined) return { id, type, result: "skipped", message: "gone" };
    if (status !== undefined && now.status !== status)
      return { id, type, result: "skipped", message: `now ${now.status}` };
    return { id, type, result: "refused", message: error.message };
  }
}

/**
 * True when `task` was replayed at or after `sinceMs` (by this run, or by another at the same
 * time): its current end came after the run began.
 */
function replayedSince(task: TaskRecord, sinceMs: number): boolean {
  return task.history.some((h) => h.event === "replayed" && Date.parse(h.at) >= sinceMs);
}

/**
 * Replay every task in `statuses` (of `type`, when given) that finished before the run began,
 * oldest first: a task that fails again while the run goes on is not replayed twice. Costs what
 * the listing costs (docs/protocol.md, "Listing tasks") plus a replay (1 GET of the manifest,
 * 1 GET and 2 PUTs) per task.
 *
 * "Before the run began" is by the upper bound of the server's time then: a task stamped by a
 * worker whose clock knew the time more closely than this process does (a second, with one
 * `Date` header) was left out when the lower bound was used, so a replay right after a failure
 * found nothing. A task listed is skipped when it was replayed since the lower one (by this run,
 * or by another at the same time): its current end came after the run began.
 */
export async function replayAll(queue: Queue, options: ReplayAllOptions): Promise<ReplayTally> {
  const tally: ReplayTally = { replayed: 0, skipped: 0, refused: [] };
  const began = internals(queue).clock.bounds();
  const listed = queue.listAll({
    status: [...options.statuses],
    until: began.upper,
    ...(options.type === undefined ? {} : { type: options.type }),
  });
  const apply = async (batch: TaskRecord[]) => {
    const outcomes = options.dryRun
      ? batch.map((t): ReplayOutcome => ({ id: t.id, type: t.type, result: "would-replay" }))
      : await mapLimit(batch, CONCURRENCY, (t) => replayOne(queue, t.id, t.type, t.status));
    for (const o of outcomes) {
      if (o.result === "refused") tally.refused.push(o);
      else if (o.result === "skipped") tally.skipped++;
      else tally.replayed++;
    }
    options.onProgress?.(tally);
  };
  let batch: TaskRecord[] = [];
  for await (const task of listed) {
    // Whatever its finish time says: a worker whose clock lags may stamp a task that this run
    // replayed, and that ended again, as finished before the run began.
    if (replayedSince(task, began.lower)) {
      tally.skipped++;
      continue;
    }
    batch.push(task);
    if (batch.length === CONCURRENCY * 2) {
      await apply(batch);
      batch = [];
    }
  }
  await apply(batch);
  return tally;
}
