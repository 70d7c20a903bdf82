/**
 * Reading many tasks: the filtered listing and a task's version history, which read every object
 * they return and so are meant for operators, not hot paths; and a task's own event log, which
 * costs one GET.
 *
 * @module
 */
import { MalformedObjectError, NotFoundError } from "../errors.ts";
import { checkTaskId, checkTaskType } from "../keys.ts";
import { checkOptions, listOptionsSchema } from "../options.ts";
import { parseTask, type TaskHistoryEntry, type TaskRecord } from "../task/record.ts";
import { eventLog } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import type { QueueInternals } from "./internals.ts";
import type { ListTasksOptions, TaskPage, TaskVersion } from "./types.ts";

/** One page of tasks, oldest key first, filtered by status and type. */
export async function listTasks(q: QueueInternals, given: ListTasksOptions): Promise<TaskPage> {
  const options = checkOptions(listOptionsSchema, given, "list options");
  if (options.type !== undefined) checkTaskType(options.type);
  const statuses = options.status === undefined ? undefined : [options.status].flat();
  const limit = options.limit ?? 100;
  let token = options.cursor;
  const tasks: TaskRecord[] = [];
  for (;;) {
    const page = await q.storage.list({
      prefix: q.keys.tasks,
      ...(token === undefined ? {} : { startAfter: token }),
      maxKeys: Math.min(1000, Math.max(limit, 100)),
    });
    const read = await mapLimit(page.objects, 16, (o) => readListed(q, o.key));
    for (const [i, task] of read.entries()) {
      token = page.objects[i]!.key;
      if (task === undefined) continue;
      if (statuses !== undefined && !statuses.includes(task.status)) continue;
      if (options.type !== undefined && task.type !== options.type) continue;
      tasks.push(task);
      if (tasks.length === limit) {
        const more = i < read.length - 1 || page.isTruncated;
        return more ? { tasks, cursor: token } : { tasks };
      }
    }
    if (!page.isTruncated) return { tasks };
  }
}

/** The task stored at a listed `key`; `undefined` for other keys and malformed objects (logged). */
async function readListed(q: QueueInternals, key: string): Promise<TaskRecord | undefined> {
  const id = q.keys.parseTaskKey(key);
  if (id === undefined) return undefined;
  try {
    return (await q.read(id))?.task;
  } catch (error) {
    if (error instanceof MalformedObjectError) {
      q.logger.warn(`skipping ${key}: ${error.message}`);
      return undefined;
    }
    throw error;
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
    const got = await q.storage.get(key, v.versionId === "null" ? {} : { versionId: v.versionId });
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
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await q.storage.listVersions({
      prefix: key,
      ...(keyMarker === undefined ? {} : { keyMarker }),
      ...(versionIdMarker === undefined ? {} : { versionIdMarker }),
    });
    for (const v of page.versions) {
      if (v.key === key)
        versions.push({
          versionId: v.versionId,
          lastModified: v.lastModified,
          deleteMarker: v.isDeleteMarker,
        });
    }
    if (!page.isTruncated) return versions;
    keyMarker = page.nextKeyMarker;
    versionIdMarker = page.nextVersionIdMarker;
  }
}
