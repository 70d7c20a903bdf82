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
