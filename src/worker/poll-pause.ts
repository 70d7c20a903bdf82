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

/**
 * The idle pauses of one poller: `minPollMs` after work, doubling to `maxPollMs`
 * ({@link nextIdlePause}), and, when the worker has live peers, the first pause at `maxPollMs`
 * lengthened by a random part of it, which puts the worker's polls at a random phase of the
 * `maxPollMs` period.
 *
 * Why: workers that go idle together (a burst drained, a fleet deployed) double in step and would
 * poll at the same instants for as long as they stay idle, so a task submitted from another
 * process waited for the same poll on all of them: 3 s on average and up to `maxPollMs`, however
 * many workers there were. At random phases, `N` idle workers see it after `maxPollMs / (N + 1)`
 * on average.
 *
 * Why longer rather than shorter: a later poll never adds a request (a minute of idling holds
 * as many polls as before, or one fewer), where an earlier one could add a LIST to the minute it
 * fell in. Why only with peers: a worker alone has nobody to be out of step with, and the longer
 * pause would only delay its next task; its fleet covers a worker's one longer pause.
 * @internal
 */
export class IdlePauses {
  readonly #minPollMs: number;
  readonly #maxPollMs: number;
  readonly #random: () => number;
  readonly #alone: () => boolean;
  #idle: number;
  #lengthen = 0;

  /**
   * @param random A number in [0, 1), as `Math.random`.
   * @param alone Whether the worker knows of no live peer (then no pause is lengthened).
   */
  constructor(minPollMs: number, maxPollMs: number, random: () => number, alone: () => boolean) {
    this.#minPollMs = minPollMs;
    this.#maxPollMs = maxPollMs;
    this.#random = random;
    this.#alone = alone;
    this.#idle = minPollMs;
  }

  /** The pause to take after the idle poll that just ended. */
  get ms(): number {
    return this.#idle + this.#lengthen;
  }

  /** Work was found: the next idle pause is `minPollMs` again. */
  reset(): void {
    this.#idle = this.#minPollMs;
    this.#lengthen = 0;
  }

  /** A pause was taken; `steppedOnly`: the poll before it took only a monitor step. */
  advance(steppedOnly: boolean): void {
    const next = nextIdlePause(this.#idle, steppedOnly, this.#maxPollMs);
    const first = this.#idle < this.#maxPollMs && next >= this.#maxPollMs;
    this.#lengthen = first && !this.#alone() ? Math.floor(this.#random() * next) : 0;
    this.#idle = next;
  }
}
