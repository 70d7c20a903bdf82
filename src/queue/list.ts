/**
 * Reading many tasks: the filtered listing (through the indexes, `./listing.ts`) and a task's
 * version history, which read every object they return and so are meant for operators, not hot
 * paths; and a task's own event log, which costs one GET.
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import { checkTaskId } from "../keys.ts";
import { versionsUnder } from "../storage/versions.ts";
import { getBounded, MAX_DOCUMENT_BYTES } from "../store/bounds.ts";
import { eventLog } from "../task/event-log.ts";
import { parseTask, type TaskHistoryEntry, type TaskRecord } from "../task/record.ts";
import { mapLimit } from "../util/async.ts";
import type { QueueInternals } from "./internals.ts";
import { TaskListing } from "./listing.ts";
import type { ListTasksOptions, TaskPage, TaskVersion } from "./types.ts";

/**
 * One page of tasks through the indexes, oldest first, filtered by status and type (see
 * `./listing.ts`): never a LIST of `tasks/`, one GET per task read.
 */
export async function listTasks(q: QueueInternals, given: ListTasksOptions): Promise<TaskPage> {
  const listing = await TaskListing.open(q, given);
  const tasks = await listing.next(given.limit ?? 100);
  const cursor = listing.cursor();
  return cursor === undefined ? { tasks } : { tasks, cursor };
}

/** Every task the filters match, oldest first, read a page (of 100) at a time. */
export async function* iterateTasks(
  q: QueueInternals,
  given: Omit<ListTasksOptions, "limit">,
): AsyncGenerator<TaskRecord> {
  const listing = await TaskListing.open(q, given);
  for (;;) {
    yield* await listing.next(100);
    if (listing.exhausted) return;
  }
}

/** A task's event log, oldest first, from one GET of its record (see {@link eventLog}). */
export async function taskHistory(q: QueueInternals, id: string): Promise<TaskHistoryEntry[]> {
  const found = await q.read(id);
  if (found === undefined) throw new NotFoundError(`Task ${id} not found.`, { key: id });
  return eventLog(found.task);
}

/** Every stored version of a task, oldest first, across all pages of the version listing. */
export async function taskVersions(q: QueueInternals, id: string): Promise<TaskVersion[]> {
  const key = q.keys.task(checkTaskId(id));
  const versions = await listVersionsOf(q, key);
  if (versions.length === 0) throw new NotFoundError(`Task ${id} not found.`, { key: id });
  // Listings are newest first; history reads oldest first.
  versions.reverse();
  return mapLimit(versions, 8, async (v) => {
    if (v.deleteMarker) return { versionId: v.versionId, lastModified: v.lastModified, task: null };
    const version = v.versionId === "null" ? {} : { versionId: v.versionId };
    const got = await getBounded(q.storage, key, MAX_DOCUMENT_BYTES, version);
    return {
      versionId: v.versionId,
      lastModified: v.lastModified,
      task: parseTask(got.body, key),
    };
  });
}

/** The versions of exactly `key`, newest first. */
async function listVersionsOf(
  q: QueueInternals,
  key: string,
): Promise<{ versionId: string; lastModified: Date; deleteMarker: boolean }[]> {
  const versions: { versionId: string; lastModified: Date; deleteMarker: boolean }[] = [];
  for await (const v of versionsUnder(q.storage, key)) {
    if (v.key === key)
      versions.push({
        versionId: v.versionId,
        lastModified: v.lastModified,
        deleteMarker: v.isDeleteMarker,
      });
  }
  return versions;
}
