/**
 * Claims that may have landed unseen: a claim whose write had an unknown outcome, and whose
 * read-back failed too or still found the version it was written over (the PUT may reach
 * storage after that read). Nobody would run that attempt, yet it would count once its lease
 * expired; so the task is read until that lease would expire, and handed back if the claim
 * did land (see "Claims that land unseen" in docs/protocol.md).
 *
 * @module
 */
import { OqError } from "../errors.ts";
import type { FinishedCounter } from "../queue/finished-counts.ts";
import type { QueueInternals } from "../queue/internals.ts";
import { sameEtag } from "../storage/storage.ts";
import type { TaskRecord } from "../task/record.ts";
import { holdsLease, ms, releaseTask } from "../task/transitions.ts";
import { sleep } from "../util/async.ts";
import type { Emit } from "./events.ts";
import { taskFields } from "./task-log.ts";

/** The background checks of one worker's claims whose write had an unknown outcome. */
export class ClaimProbes {
  readonly #queue: QueueInternals;
  readonly #emit: Emit;
  readonly #finished: FinishedCounter | undefined;
  readonly #probes = new Set<Promise<void>>();
  /** Aborted when the worker has stopped: ends the probes. */
  readonly #ending = new AbortController();

  /** `finished`: the worker's finished counts (a release of a cancel-requested task ends it). */
  constructor(queue: QueueInternals, emit: Emit, finished?: FinishedCounter) {
    this.#queue = queue;
    this.#emit = emit;
    this.#finished = finished;
  }

  /** Probes still running. */
  get size(): number {
    return this.#probes.size;
  }

  /** Resolves when every probe running now has ended. */
  all(): Promise<unknown> {
    return Promise.all(this.#probes);
  }

  /** End the probes (the worker has stopped). */
  end(): void {
    this.#ending.abort();
  }

  /**
   * Keep reading `claimed`'s task (backoff up to 2 s) until its lease would expire, while it
   * still shows `base`, the version the claim was written over (the claim may land yet): if the
   * claim with `token` did land, hand the task back (released, attempt not counted) — its
   * handler never ran. Any other version means the claim never can.
   */
  confirm(claimed: TaskRecord, token: string, base: string): void {
    const q = this.#queue;
    const until = ms(claimed.lease!.expiresAt);
    const probe = (async () => {
      for (let round = 0; q.now() < until && !this.#ending.signal.aborted; round++) {
        await sleep(Math.min(250 * 2 ** round, 2000), this.#ending.signal);
        try {
          const seen = await q.read(claimed.id);
          if (seen === undefined) return;
          if (!holdsLease(seen.task, token)) {
            if (sameEtag(seen.etag, base)) continue;
            return;
          }
          const back = await q.update(claimed.id, (t) => releaseTask(t, token, q.now()), seen);
          q.logger.warn(
            `task ${claimed.id}: its claim landed unseen; handed it back`,
            taskFields(back.task, claimed.lease!.workerId, { event: "released" }),
          );
          this.#finished?.record(back.task);
          this.#emit({
            kind: "released",
            id: claimed.id,
            type: claimed.type,
            attempt: back.task.attempt,
          });
          return;
        } catch (error) {
          if (
            error instanceof OqError &&
            (error.code === "INVALID_STATE" || error.code === "NOT_FOUND")
          )
            return;
        }
      }
    })();
    this.#probes.add(probe);
    void probe.finally(() => this.#probes.delete(probe));
  }
}
