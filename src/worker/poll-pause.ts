/**
 * How long an idle worker pauses between polls.
 *
 * @module
 */

/**
 * The pause after an idle poll that paused `idle` ms: doubled up to `maxPollMs`, unless the poll
 * was spent on a step of the monitor's round. Such a poll looked at none of the worker's
 * partitions, so it is no sign that there is no work: doubling then let a round's steps, falling
 * on the polls of a worker that had just gone quiet, leave new work waiting up to `maxPollMs`
 * (the latency benchmark's p99 went from 1.9 s to 5.8 s when quiet workers began to alternate
 * steps and listings; with this rule it is 0.6 s).
 */
export function nextIdlePause(idle: number, steppedOnly: boolean, maxPollMs: number): number {
  return steppedOnly ? idle : Math.min(maxPollMs, idle * 2);
}
