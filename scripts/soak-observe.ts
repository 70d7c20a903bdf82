/**
 * The soak run's witness: a storage wrapper that every queue and worker of the run writes
 * through, noting for each task object under the prefix the status of every write that landed
 * (and `finishedAt` when it ended the task) and the moment oq first sent a delete of it. What it
 * notes feeds `checkFates` (scripts/soak-checks.ts).
 *
 * @module
 */
import type { FinishedStatus } from "../src/keys.ts";
import type { Storage } from "../src/storage/storage.ts";
import { TERMINAL_STATUSES } from "../src/task/transitions.ts";
import type { TaskFate } from "./soak-checks.ts";

/** The fates of the run's tasks, by id, filled in by {@link observeTasks}. */
export type Ledger = Map<string, TaskFate>;

/** A new, empty fate for a task the run submits. */
export function newFate(id: string): TaskFate {
  return { id, lastStatus: "unknown", executions: {}, presentAtEnd: false };
}

const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATUSES);

/**
 * Wrap `inner` so writes and deletes of task objects under `tasksPrefix` are noted in `ledger`.
 * `now` is the local clock deletes are stamped with.
 */
export function observeTasks(
  inner: Storage,
  tasksPrefix: string,
  ledger: Ledger,
  now: () => number = Date.now,
): Storage {
  const idOf = (key: string) =>
    key.startsWith(tasksPrefix) && key.endsWith(".json")
      ? key.slice(key.lastIndexOf("/") + 1, -".json".length)
      : undefined;
  const fateOf = (id: string) => {
    let fate = ledger.get(id);
    if (fate === undefined) {
      fate = newFate(id);
      ledger.set(id, fate);
    }
    return fate;
  };
  const noteDelete = (key: string) => {
    const id = idOf(key);
    if (id === undefined) return;
    const fate = fateOf(id);
    if (fate.deletedMs !== undefined) return;
    fate.deletedMs = now();
    fate.statusAtDelete = fate.lastStatus;
  };
  const decoder = new TextDecoder();
  return {
    get name() {
      return inner.name;
    },
    get location() {
      return inner.location;
    },
    get: (key, options) => inner.get(key, options),
    head: (key) => inner.head(key),
    async put(key, body, options) {
      const result = await inner.put(key, body, options);
      const id = idOf(key);
      if (id !== undefined) {
        const record = JSON.parse(typeof body === "string" ? body : decoder.decode(body)) as {
          status: string;
          finishedAt: string | null;
        };
        const fate = fateOf(id);
        fate.lastStatus = record.status;
        if (TERMINAL.has(record.status) && record.finishedAt !== null)
          fate.finished = {
            status: record.status as FinishedStatus,
            atMs: Date.parse(record.finishedAt),
          };
      }
      return result;
    },
    delete(key) {
      noteDelete(key);
      return inner.delete(key);
    },
    ...(inner.deleteMany === undefined
      ? {}
      : {
          deleteMany(keys: readonly string[]) {
            for (const key of keys) noteDelete(key);
            return inner.deleteMany!(keys);
          },
        }),
    list: (options) => inner.list(options),
    listVersions: (options) => inner.listVersions(options),
    versioning: () => inner.versioning(),
    serverTime: () => inner.serverTime(),
  };
}
