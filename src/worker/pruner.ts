/**
 * The monitor's pruning: in each monitor round, the finished-journal partitions
 * (`done/{type}/{status}/`) in this worker's share whose retention may have passed get a step
 * each, a few journals per step (docs/protocol.md, "Retention"). A partition is listed again
 * only once something in it can be past retention: after a look that found its oldest journal
 * at time T, not before T + retention (as set when the round starts); so a queue with a week's retention lists each partition
 * about once a week, and an idle queue with no journals costs one LIST per round.
 *
 * @module
 */
import type { FinishedStatus } from "../keys.ts";
import type { QueueInternals } from "../queue/internals.ts";
import { PruneRun } from "../queue/prune.ts";
import { FINISHED_STATUSES, retentionMs } from "../queue/retention.ts";

/** Journals one monitor step prunes at most (each up to 1,000 tasks). */
export const PRUNE_JOURNALS_PER_STEP = 16;

/** A step of the monitor's round: one request or a small bounded batch. */
export type Step = () => Promise<void>;

/** The pruning part of one worker's monitor. */
export class Pruner {
  readonly #queue: QueueInternals;
  readonly #owns: (partition: string) => boolean;
  /** Per partition prefix: the time of its oldest journal at the last look (or of that look). */
  readonly #oldest = new Map<string, number>();

  constructor(queue: QueueInternals, owns: (partition: string) => boolean) {
    this.#queue = queue;
    this.#owns = owns;
  }

  /**
   * The first step of a round's pruning: list the types with journals (one delimiter LIST per
   * 1,000 types) and queue, through `push`, a step for each partition in this worker's share
   * that may hold journals past retention.
   */
  start(push: (step: Step) => void): Step {
    return async () => {
      const q = this.#queue;
      const now = q.now();
      const { retention } = await q.manifest.load();
      for (const type of await q.journal.types()) {
        for (const status of FINISHED_STATUSES) {
          const partition = q.keys.journals(type, status);
          if (!this.#owns(partition)) continue;
          const oldest = this.#oldest.get(partition) ?? Number.NEGATIVE_INFINITY;
          if (oldest + retentionMs(retention, type, status) > now) continue;
          push(this.#step(type, status, push));
        }
      }
    };
  }

  #step(type: string, status: FinishedStatus, push: (step: Step) => void): Step {
    return async () => {
      const q = this.#queue;
      const { retention } = await q.manifest.load();
      const run = new PruneRun(q, retention ?? {}, false, Number.POSITIVE_INFINITY);
      const done = await run.partition(type, status, PRUNE_JOURNALS_PER_STEP);
      this.#oldest.set(q.keys.journals(type, status), done.oldestMs);
      const { deleted, skipped } = run.result();
      if (deleted > 0 || skipped > 0)
        q.logger.info(
          `pruned ${deleted} ${status} ${type} tasks past retention${skipped > 0 ? ` (${skipped} replayed since, left)` : ""}`,
        );
      if (done.more) push(this.#step(type, status, push));
    };
  }
}
