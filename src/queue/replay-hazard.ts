/**
 * When a replay (or a submit replacing a finished keyed task) must not go ahead: a prune may be
 * deleting the task by the time its write lands (docs/protocol.md, "Retention"). One rule for
 * `replay`, `replayAll` and idempotent submits.
 *
 * @module
 */
import type { ServerClock } from "../clock.ts";
import type { FinishedStatus } from "../keys.ts";
import type { TaskRecord } from "../task/record.ts";
import type { Manifest } from "./manifest.ts";
import {
  REPLAY_MARGIN_MS,
  RETENTION_RAISE_HOLD_MS,
  retentionEndsAt,
  retentionHoldEnds,
  retentionMs,
} from "./retention.ts";

/** Why a prune may be deleting a finished task now (see {@link replayHazard}). */
export type ReplayHazard =
  /** Its retention (`keep` ms) ends at `endsAt`, within the replay margin. */
  | { kind: "retention-ends"; endsAt: number; keep: number }
  /** Its retention setting was raised lately: held back until server time `until`. */
  | { kind: "retention-raised"; until: number };

/**
 * Why a prune may be deleting finished `task` by the time a write decided now lands (a replay,
 * or a submit replacing a keyed task, is refused then), judged by the `manifest` just read;
 * undefined when none may. Either its retention ends within `min(1 hour, retention / 2)` (the
 * replay margin) of the latest the server's time may be: by the latest, not the earliest, as a
 * prune judges by the earliest its own clock allows, which may be nearer the truth than this
 * process's (a second wide after one `Date` header). Or the setting that governs it was raised
 * within the last {@link RETENTION_RAISE_HOLD_MS}: a prune that checked the earlier setting
 * just before may still be deleting it.
 */
export function replayHazard(
  task: TaskRecord,
  manifest: Manifest,
  clock: ServerClock,
): ReplayHazard | undefined {
  const until = retentionHoldEnds(manifest.retentionRaisedAt, task.type, clock.now());
  if (until !== undefined) return { kind: "retention-raised", until };
  const keep = retentionMs(manifest.retention, task.type, task.status as FinishedStatus);
  const endsAt = retentionEndsAt(task, manifest.retention);
  if (endsAt - Math.min(REPLAY_MARGIN_MS, keep / 2) <= clock.bounds().upper)
    return { kind: "retention-ends", endsAt, keep };
  return undefined;
}

/** What a refused replay of `task` says: why, and what to do. */
export function replayRefusal(task: TaskRecord, hazard: ReplayHazard): string {
  if (hazard.kind === "retention-raised")
    return `Cannot replay task ${task.id} yet: the retention of ${task.type} tasks was raised less than ${RETENTION_RAISE_HOLD_MS / 60_000} minutes ago, and a prune that read the earlier setting may still be deleting it. Replay it again after ${new Date(hazard.until).toISOString()}.`;
  const ends = hazard.keep === 0 ? "at once" : `at ${new Date(hazard.endsAt).toISOString()}`;
  return `Cannot replay task ${task.id}: it is ${task.status} and its retention ends ${ends}, so a prune may be deleting it. Raise the ${task.status} retention of ${task.type} (oq retention) and replay it again after ${RETENTION_RAISE_HOLD_MS / 60_000} minutes.`;
}
