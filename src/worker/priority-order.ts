/**
 * The order in which a worker tries the due markers it listed: by effective priority, read from
 * the keys, so priorities cost no request (docs/protocol.md, "Priorities").
 *
 * @module
 */
import { PRIORITY_AGING_SECONDS } from "../task/priority.ts";

/** What ordering needs of a listed marker. */
export interface Ranked {
  /** From when the task is to be looked at (epoch ms). */
  dueMs: number;
  /** The task's priority from its key. */
  priority: number;
}

/**
 * The moment from which a marker counts as due at priority 0: its due time less
 * {@link PRIORITY_AGING_SECONDS} per level. Sorting by it ascending is sorting by effective
 * priority (`priority + seconds overdue / aging`) descending, then by due time.
 */
export function rankMs(marker: Ranked): number {
  return marker.dueMs - marker.priority * PRIORITY_AGING_SECONDS * 1000;
}

/**
 * `markers` by effective priority, highest first; markers of equal rank keep their order (the
 * listing's key order). Unchanged when every marker has the same priority.
 */
export function byEffectivePriority<T extends Ranked>(markers: T[]): T[] {
  if (!mixedPriorities(markers)) return markers;
  return [...markers].sort((a, b) => rankMs(a) - rankMs(b));
}

/**
 * `markers` by priority, highest first, their order within a priority kept: how a worker steals
 * (newest first within a level, away from where the owner works). `mixed` as in {@link stealOrder}.
 */
export function byPriorityFirst<T extends Ranked>(
  markers: T[],
  mixed = mixedPriorities(markers),
): T[] {
  if (!mixed) return markers;
  return [...markers].sort((a, b) => b.priority - a.priority);
}

/** Whether the markers differ in priority (only then does ordering change anything). */
export function mixedPriorities(markers: readonly Ranked[]): boolean {
  return markers.some((m) => m.priority !== markers[0]!.priority);
}

/** `list` rotated to start at a random element (`random()` in [0, 1)), its order otherwise kept. */
export function fromRandomPoint<T>(list: readonly T[], random: () => number): T[] {
  const from = Math.floor(random() * list.length);
  return [...list.slice(from), ...list.slice(0, from)];
}

/**
 * Markers in the order a worker steals them: newest first, away from where their owners work,
 * from a random point on, so that workers whose own shares ran dry together do not all read the
 * same newest task; higher priorities first. `mixed`: whether the markers differ in priority,
 * when the caller knows (else they are scanned).
 */
export function stealOrder<T extends Ranked>(
  markers: readonly T[],
  random: () => number,
  mixed = mixedPriorities(markers),
): T[] {
  return byPriorityFirst(fromRandomPoint([...markers].reverse(), random), mixed);
}
