/**
 * The soak run's witness: a storage wrapper that every queue and worker of the run writes
 * through, noting for each task object under the prefix the status of every write that landed
 * (and `finishedAt` when it ended the task) and the moment oq first sent a delete of it. What it
 * notes feeds `checkFates` (scripts/soak-checks.ts). A worker process of the process soak
 * (scripts/soak-worker.ts) prints the same notes on its stdout; the parent applies them to its
 * ledger with {@link ledgerNotes}.
 *
 * @module
 */
import type { FinishedStatus } from "../src/keys.ts";
import type { Storage } from "../src/storage/storage.ts";
import { TERMINAL_STATUSES } from "../src/task/transitions.ts";
import type { StoredAtEnd, TaskFate } from "./soak-checks.ts";

/** The fates of the run's tasks, by id, filled in by {@link ledgerNotes}. */
export type Ledger = Map<string, TaskFate>;

/** A new, empty fate for a task the run submits. */
export function newFate(id: string): TaskFate {
  return { id, lastStatus: "unknown", executions: {}, presentAtEnd: false };
}

const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATUSES);

/**
 * Where {@link observeTasks} reports what it sees: a task write that landed (its status and
 * `finishedAt`), and a delete of a task object that oq is about to send.
 */
export interface TaskNotes {
  write(id: string, status: string, finishedAt: string | null): void;
  delete(id: string): void;
}

/** Notes that fill in `ledger`; `now` is the local clock deletes are stamped with. */
export function ledgerNotes(ledger: Ledger, now: () => number = Date.now): TaskNotes {
  const fateOf = (id: string) => {
    let fate = ledger.get(id);
    if (fate === undefined) {
      fate = newFate(id);
      ledger.set(id, fate);
    }
    return fate;
  };
  return {
    write(id, status, finishedAt) {
      const fate = fateOf(id);
      fate.lastStatus = status;
      if (TERMINAL.has(status) && finishedAt !== null)
        fate.finished = { status: status as FinishedStatus, atMs: Date.parse(finishedAt) };
    },
    delete(id) {
      const fate = fateOf(id);
      if (fate.deletedMs !== undefined) return;
      fate.deletedMs = now();
      fate.statusAtDelete = fate.lastStatus;
    },
  };
}

/**
 * Notes that print one line each through `say`, for a worker process to hand its witness's
 * notes to the parent: `w <id> <status> <finishedAt or ->` and `d <id>`. The parent applies
 * them with {@link applyNoteLine}.
 */
export function printedNotes(say: (line: string) => void): TaskNotes {
  return {
    write: (id, status, finishedAt) => say(`w ${id} ${status} ${finishedAt ?? "-"}`),
    delete: (id) => say(`d ${id}`),
  };
}

/**
 * Apply one line a worker process printed, split at its first space into `tag` and `rest`: a
 * note of {@link printedNotes} goes to `notes`, `run <id> <attempt>` counts a handler run in
 * `ledger`. False when the line is neither.
 */
export function applyNoteLine(
  tag: string,
  rest: string,
  notes: TaskNotes,
  ledger: Ledger,
): boolean {
  const [id = "", a = "", b = ""] = rest.split(" ");
  if (tag === "w") notes.write(id, a, b === "-" ? null : b);
  else if (tag === "d") notes.delete(id);
  else if (tag === "run") {
    const fate = ledger.get(id);
    if (fate !== undefined) fate.executions[Number(a)] = (fate.executions[Number(a)] ?? 0) + 1;
  } else return false;
  return true;
}

/** Wrap `inner` so writes and deletes of task objects under `tasksPrefix` go to `notes`. */
export function observeTasks(inner: Storage, tasksPrefix: string, notes: TaskNotes): Storage {
  const idOf = (key: string) =>
    key.startsWith(tasksPrefix) && key.endsWith(".json")
      ? key.slice(key.lastIndexOf("/") + 1, -".json".length)
      : undefined;
  const noteDelete = (key: string) => {
    const id = idOf(key);
    if (id !== undefined) notes.delete(id);
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
        notes.write(id, record.status, record.finishedAt);
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

/** The families of objects counted under the prefix (anything else counts as `other`). */
export const FAMILIES = ["tasks", "ready", "done", "workers", "other"] as const;

/** Every current object under `prefix`, counted by family, and `total`. */
export async function countObjects(s: Storage, prefix: string): Promise<Record<string, number>> {
  const objects: Record<string, number> = Object.fromEntries(FAMILIES.map((f) => [f, 0]));
  let token: string | undefined;
  do {
    const page = await s.list({ prefix, ...(token ? { continuationToken: token } : {}) });
    for (const o of page.objects) {
      const family = o.key.slice(prefix.length).split("/")[0] ?? "";
      const name = (FAMILIES as readonly string[]).includes(family) ? family : "other";
      objects[name] = (objects[name] ?? 0) + 1;
    }
    token = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (token !== undefined);
  const total = Object.values(objects).reduce((a, b) => a + b, 0);
  return { ...objects, total };
}

/** The ids of the task objects stored under `prefix` now. */
export async function storedTaskIds(s: Storage, prefix: string): Promise<Set<string>> {
  const ids = new Set<string>();
  let token: string | undefined;
  do {
    const page = await s.list({
      prefix: `${prefix}tasks/`,
      ...(token ? { continuationToken: token } : {}),
    });
    for (const o of page.objects) ids.add(o.key.slice(o.key.lastIndexOf("/") + 1, -".json".length));
    token = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (token !== undefined);
  return ids;
}

/**
 * Read the object of every task in `fates` that is still stored but that the witness did not see
 * finish, and note it as the fate's `stored` (a few GETs and HEADs: one per such task). `prefix`
 * is the queue's; `taskKey` gives a task's full key.
 */
export async function readUnfinished(
  s: Storage,
  prefix: string,
  fates: Iterable<TaskFate>,
  taskKey: (id: string) => string,
): Promise<void> {
  for (const fate of fates) {
    if (fate.finished !== undefined) continue;
    // A task pruned since: its last version before the delete (the soak's bucket is versioned).
    const versionId = fate.presentAtEnd ? undefined : await lastVersion(s, taskKey(fate.id));
    if (!fate.presentAtEnd && versionId === undefined) continue;
    const record = await s.get(taskKey(fate.id), versionId === undefined ? {} : { versionId }).then(
      (o) =>
        JSON.parse(new TextDecoder().decode(o.body)) as {
          status: string;
          finishedAt: string | null;
          attempt: number;
          lease: { expiresAt: string } | null;
          marker: string | null;
        },
      () => undefined,
    );
    if (record === undefined) continue;
    const markerExists =
      record.marker !== null &&
      (await s.head(`${prefix}${record.marker}`).then(
        () => true,
        () => false,
      ));
    const stored: StoredAtEnd = {
      status: record.status,
      finishedAt: record.finishedAt,
      attempt: record.attempt,
      leaseExpiresAt: record.lease?.expiresAt ?? null,
      marker: record.marker,
      markerExists,
      ...(versionId === undefined ? {} : { beforeDelete: true }),
    };
    fate.stored = stored;
  }
}

/** The newest version of `key` that is not a delete marker, if any. */
async function lastVersion(s: Storage, key: string): Promise<string | undefined> {
  const page = await s.listVersions({ prefix: key });
  return page.versions.find((v) => v.key === key && !v.isDeleteMarker)?.versionId;
}
