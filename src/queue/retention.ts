/**
 * How long finished tasks are kept: per terminal status, for the whole queue and per type. The
 * settings live in the manifest (`retention`), so every worker, `oq prune` and `replay` read the
 * same ones; unset values fall back to {@link DEFAULT_RETENTION}. See "Retention" in
 * docs/protocol.md.
 *
 * @module
 */
import { parseDuration } from "../duration.ts";
import { ValidationError } from "../errors.ts";
import type { FinishedStatus } from "../keys.ts";
import type { TaskRecord } from "../task/record.ts";

/** The terminal statuses, in the order reports list them. */
export const FINISHED_STATUSES: readonly FinishedStatus[] = [
  "completed",
  "failed",
  "cancelled",
  "expired",
];

/**
 * Stored retention: seconds per terminal status, `null` for "keep forever". A status left out
 * falls back to the queue's setting, then to {@link DEFAULT_RETENTION}.
 */
export type StoredRetention = Partial<Record<FinishedStatus, number | null>>;

/** The manifest's `retention` field. */
export interface RetentionSettings {
  /** For every type. */
  default?: StoredRetention;
  /** Per type, over `default`. */
  types?: Record<string, StoredRetention>;
}

/**
 * How long finished tasks are kept when nothing is set, in seconds: completed tasks 7 days;
 * failed (the dead letters), cancelled and expired tasks 30 days.
 */
export const DEFAULT_RETENTION: Readonly<Record<FinishedStatus, number>> = {
  completed: 7 * 86_400,
  failed: 30 * 86_400,
  cancelled: 30 * 86_400,
  expired: 30 * 86_400,
};

/**
 * A replay refuses a task that a prune may delete within this long (ms): the two never act on
 * the same task, so a replayed task is never deleted by a prune that read it as finished.
 */
export const REPLAY_MARGIN_MS = 60 * 60_000;

/**
 * After a retention setting is raised, replays (and submits replacing a keyed task) of the tasks
 * it governs are refused for this long, ms. A prune checks the stored settings just before each
 * delete; one that checked them just before the raise may still be deleting what the new ones
 * keep, and its delete must land within this of its check (a delete that takes longer, a process
 * frozen between the two, is the case this does not cover). A lowered setting holds nothing
 * back: a prune by the earlier one deletes less.
 */
export const RETENTION_RAISE_HOLD_MS = 2 * 60_000;

/** When retention settings were last raised (server time, ISO 8601): the queue's, per type. */
export interface RetentionRaises {
  /** The queue's own setting. */
  default?: string;
  /** Each type's own setting. */
  types?: Record<string, string>;
}

/**
 * Whether `next` keeps some status of the queue's setting (or of `forType`'s) longer than
 * `before` did.
 */
export function retentionRaised(
  before: RetentionSettings | undefined,
  next: RetentionSettings,
  forType: string | undefined,
): boolean {
  // No type is named "": its retention is the queue's own.
  const type = forType ?? "";
  return FINISHED_STATUSES.some(
    (status) => retentionMs(next, type, status) > retentionMs(before, type, status),
  );
}

/**
 * `raises` with a raise of the queue's setting (or of `forType`'s) at server time `atMs`
 * noted, and those older than {@link RETENTION_RAISE_HOLD_MS} dropped: they hold nothing
 * back any more, and the manifest stays small.
 */
export function noteRetentionRaise(
  raises: RetentionRaises | undefined,
  forType: string | undefined,
  atMs: number,
): RetentionRaises {
  const recent = (iso: string | undefined) =>
    iso !== undefined && Date.parse(iso) + RETENTION_RAISE_HOLD_MS > atMs;
  const at = new Date(atMs).toISOString();
  const types: Record<string, string> = {};
  for (const [name, iso] of Object.entries(raises?.types ?? {})) if (recent(iso)) types[name] = iso;
  if (forType !== undefined) types[forType] = at;
  const next: RetentionRaises = {};
  const queueWide = forType === undefined ? at : raises?.default;
  if (queueWide !== undefined && recent(queueWide)) next.default = queueWide;
  if (Object.keys(types).length > 0) next.types = types;
  return next;
}

/**
 * Server time (ms) until which replays of `taskType` tasks are held back by a recent raise of
 * the retention that governs them (the queue's or the type's own), or undefined when none is
 * recent enough to matter at `nowMs`.
 */
export function retentionHoldEnds(
  raises: RetentionRaises | undefined,
  taskType: string,
  nowMs: number,
): number | undefined {
  const latest = Math.max(
    Date.parse(raises?.default ?? "") || Number.NEGATIVE_INFINITY,
    Date.parse(raises?.types?.[taskType] ?? "") || Number.NEGATIVE_INFINITY,
  );
  const until = latest + RETENTION_RAISE_HOLD_MS;
  return until > nowMs ? until : undefined;
}

/**
 * Retention as given by a caller: per status, a duration (seconds, or a string such as `"7d"`,
 * `"12h"`), `0` to keep nothing, `Infinity` (or `"forever"`) to keep everything, or `null` to
 * drop a setting and fall back to the queue's (or the default).
 */
export type RetentionInput = Partial<Record<FinishedStatus, number | string | null>>;

/** Check and convert retention given by a caller into the stored form (`undefined`: unset). */
export function checkRetention(
  given: RetentionInput,
): Record<FinishedStatus, number | null | undefined> {
  if (given === null || typeof given !== "object" || Array.isArray(given))
    throw new ValidationError(
      `Invalid retention ${JSON.stringify(given)}: give an object such as { completed: "7d", failed: "30d" }.`,
    );
  for (const key of Object.keys(given)) {
    if (!FINISHED_STATUSES.includes(key as FinishedStatus))
      throw new ValidationError(
        `Invalid retention status ${JSON.stringify(key)}: use ${FINISHED_STATUSES.join(", ")}.`,
      );
  }
  const out = {} as Record<FinishedStatus, number | null | undefined>;
  for (const status of FINISHED_STATUSES) {
    const value = given[status];
    if (value === undefined) continue;
    out[status] = value === null ? undefined : retentionSeconds(value, `${status} retention`);
  }
  return out;
}

/** Seconds of one retention value; `null` for forever. */
function retentionSeconds(value: number | string, what: string): number | null {
  if (value === Number.POSITIVE_INFINITY || value === "forever" || value === "Infinity")
    return null;
  if (typeof value === "number" && (!Number.isFinite(value) || value < 0))
    throw new ValidationError(
      `Invalid ${what} ${value}: use 0 or more seconds, a duration such as "7d", or Infinity to keep everything.`,
    );
  return parseDuration(value, what) / 1000;
}

/**
 * `settings` with `change` applied (for `type`, or the whole queue): set values replace, `null`
 * drops a setting. Returns `undefined` when nothing changes.
 */
export function applyRetention(
  settings: RetentionSettings | undefined,
  change: Record<FinishedStatus, number | null | undefined>,
  given: RetentionInput,
  forType?: string,
): RetentionSettings | undefined {
  const current = (forType === undefined ? settings?.default : settings?.types?.[forType]) ?? {};
  const next: StoredRetention = { ...current };
  for (const status of FINISHED_STATUSES) {
    if (!(status in given)) continue;
    const value = change[status];
    if (value === undefined) delete next[status];
    else next[status] = value;
  }
  if (JSON.stringify(next) === JSON.stringify(current)) return undefined;
  if (forType === undefined) return { ...settings, default: next };
  return { ...settings, types: { ...settings?.types, [forType]: next } };
}

/**
 * How long finished `status` tasks of `type` are kept, ms (`Infinity`: forever): the type's
 * setting, else the queue's, else {@link DEFAULT_RETENTION}.
 */
export function retentionMs(
  settings: RetentionSettings | undefined,
  taskType: string,
  status: FinishedStatus,
): number {
  const seconds =
    settings?.types?.[taskType]?.[status] !== undefined
      ? settings.types[taskType][status]
      : settings?.default?.[status] !== undefined
        ? settings.default[status]
        : DEFAULT_RETENTION[status];
  return seconds === null || seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1000;
}

/**
 * When finished `task`'s retention under `settings` ends (server ms; `Infinity`: kept for good),
 * counted from its finish (its last update, for a record written without one).
 */
export function retentionEndsAt(task: TaskRecord, settings: RetentionSettings | undefined): number {
  const keep = retentionMs(settings, task.type, task.status as FinishedStatus);
  return Date.parse(task.finishedAt ?? task.updatedAt) + keep;
}

/**
 * The shortest retention of any of `statuses` (default all) for `taskType`, or for any type when
 * none is given (the queue's setting and every type's own), ms; `Infinity` when all keep forever.
 */
export function shortestRetentionMs(
  settings: RetentionSettings | undefined,
  statuses: readonly FinishedStatus[] = FINISHED_STATUSES,
  taskType?: string,
): number {
  const types = taskType !== undefined ? [taskType] : ["", ...Object.keys(settings?.types ?? {})];
  return Math.min(
    Number.POSITIVE_INFINITY,
    ...statuses.flatMap((status) => types.map((t) => retentionMs(settings, t, status))),
  );
}
