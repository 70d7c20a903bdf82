/**
 * Task priorities: the range, and the aging that bounds how long a task waits behind newer work
 * of higher priority (docs/protocol.md, "Priorities").
 *
 * @module
 */

/** The lowest priority a task may have. */
export const PRIORITY_MIN = -10;

/** The highest priority a task may have. */
export const PRIORITY_MAX = 10;

/**
 * Seconds of waiting that count as one level of priority: a worker orders the due tasks it has
 * listed by `priority + seconds overdue / PRIORITY_AGING_SECONDS`, so a task that has been due
 * this much longer than another outranks it at one level less. A task therefore never waits
 * behind work that became due more than `(its priority gap) × PRIORITY_AGING_SECONDS` after it:
 * at most 20 levels, 20 minutes.
 */
export const PRIORITY_AGING_SECONDS = 60;

/** A task's priority: its `priority` field, 0 when absent (records written before priorities). */
export function priorityOf(task: { priority?: number }): number {
  return task.priority ?? 0;
}
