/**
 * A task's own event log (`TaskRecord.history`): the last transitions, kept in the record so
 * that history costs one GET on every backend and survives the expiry of old versions. The state
 * machine (`./transitions.ts`) appends to it through {@link logged} on every transition.
 *
 * @module
 */
import type { TaskHistoryEntry, TaskRecord } from "./record.ts";

/**
 * How many transitions a task's own event log (`TaskRecord.history`) keeps: the last 20. Enough
 * for a task's story through several retries (claim, renewal, outcome per attempt) while the
 * record stays small; older entries remain in the bucket's versions where it keeps them.
 */
export const TASK_HISTORY_LIMIT = 20;

/**
 * The longest error text an event log entry keeps, in characters; a longer one is cut and ends
 * in "…". With {@link TASK_HISTORY_LIMIT} this bounds what the log adds to a record (about 7 KB
 * at most), whatever handlers throw.
 */
export const TASK_HISTORY_ERROR_CHARS = 200;

/**
 * The longest error message a task's `lastError` keeps, in characters (a name, at most
 * {@link TASK_HISTORY_ERROR_CHARS}); longer ones are cut and end in "…". A handler may throw a
 * message of any size, and the record must stay under the bound every reader holds it to
 * (`MAX_DOCUMENT_BYTES`): 16,384 characters are at most 96 KiB of JSON.
 */
export const MAX_TASK_ERROR_CHARS = 16_384;

/**
 * A task's event log, oldest first. A record written before the log existed has none; its own
 * last transition (its `event`, at its `updatedAt`) stands in for it, so such a task's history
 * starts with what it last did rather than empty.
 */
export function eventLog(task: TaskRecord): TaskHistoryEntry[] {
  if (task.history.length > 0) return task.history;
  return [historyEntry(task, task)];
}

/**
 * `next` (the result of a transition from `prev`) with that transition appended to its event log,
 * trimmed to the last {@link TASK_HISTORY_LIMIT}. Every transition returns through it. A renewal
 * right after a renewal replaces that entry instead of adding one: a task renews each time half
 * its lease has gone, and twenty renewals of a long run would push its claim and every earlier
 * attempt out of the log; the claim before them says when the run started, the kept renewal
 * when its worker was last heard from.
 */
export function logged(prev: TaskRecord, next: TaskRecord): TaskRecord {
  const entry = historyEntry(prev, next);
  const before = eventLog(prev);
  const kept =
    entry.event === "lease-renewed" && before.at(-1)?.event === "lease-renewed"
      ? before.slice(0, -1)
      : before;
  return { ...next, history: [...kept, entry].slice(-TASK_HISTORY_LIMIT) };
}

/**
 * The log entry of the transition from `prev` to `next`. The end of an attempt clears the lease,
 * so its worker is the one that held `prev`'s; an error is logged by the transition that
 * recorded it (a new `lastError`), not by every later one.
 */
function historyEntry(prev: TaskRecord, next: TaskRecord): TaskHistoryEntry {
  const error = next.lastError !== prev.lastError ? next.lastError : null;
  return {
    event: next.event,
    at: next.updatedAt,
    worker: next.lease?.workerId ?? prev.lease?.workerId ?? null,
    attempt: next.attempt,
    error:
      error === null ? null : clip(`${error.name}: ${error.message}`, TASK_HISTORY_ERROR_CHARS),
  };
}

/** `text`, or its first `chars - 1` characters and "…" when it is longer than `chars`. */
export function clip(text: string, chars: number): string {
  return text.length <= chars ? text : `${text.slice(0, chars - 1)}…`;
}
