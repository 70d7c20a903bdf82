/**
 * The limits a worker applies before it claims a task: the per-worker concurrency of a type
 * (`worker.task(type, handler, { concurrency })`) and the fleet-wide limits of a type (its
 * limit object, `../queue/limits.ts`), read only for the types the manifest lists as limited, so
 * a type without limits costs no request. A refused type is skipped (neither listed nor read)
 * until a slot or a start may free, and so is a type whose limit object cannot be read as one.
 * See "Concurrency and rate limits" in docs/protocol.md.
 *
 * @module
 */
import { OqError } from "../errors.ts";
import type { QueueInternals } from "../queue/internals.ts";
import type { LimitGrant } from "../queue/limits.ts";
import type { TaskRecord } from "../task/record.ts";
import { claimTask } from "../task/transitions.ts";
import { errorMessage } from "../util/errors.ts";
import { type HandlerEntry, leaseToWrite } from "./options.ts";

/** A claim won, as the worker starts it: lease token and length, handler, and fleet grant. */
export interface StartedClaim {
  token: string;
  leaseMs: number;
  entry: HandlerEntry;
  /** What a fleet limit of the type granted the claim (none for a type without limits). */
  grant?: LimitGrant | undefined;
}

/** What {@link ClaimLimits} needs from its worker. */
export interface ClaimLimitsOptions {
  workerId: string;
  handlers: ReadonlyMap<string, HandlerEntry>;
  /** How many tasks of `type` this worker runs now. */
  runningOf: (type: string) => number;
  /** The first pause before asking a full limit again, ms (doubles up to `maxPollMs`). */
  minPollMs: number;
  maxPollMs: number;
}

/** A fleet limit that refused this worker: not asked again before local time `until`. */
interface Block {
  until: number;
  /** The next pause after a refusal while a slot is full, ms. */
  backoffMs: number;
}

/** The per-type limits of one worker's claims. */
export class ClaimLimits {
  readonly #queue: QueueInternals;
  readonly #o: ClaimLimitsOptions;
  readonly #blocked = new Map<string, Block>();
  /** Releases still in flight (a stopping worker waits for them). */
  readonly #releasing = new Set<Promise<void>>();

  constructor(queue: QueueInternals, options: ClaimLimitsOptions) {
    this.#queue = queue;
    this.#o = options;
  }

  /**
   * Whether a task of `type` may be claimed now: this worker runs fewer than the type's own
   * `concurrency`, and no fleet limit of it refused a claim that may not have freed yet.
   */
  open(type: string): boolean {
    const own = this.#o.handlers.get(type)?.options.concurrency;
    if (own !== undefined && this.#o.runningOf(type) >= own) return false;
    const block = this.#blocked.get(type);
    return block === undefined || block.until <= this.#queue.clock.localNow();
  }

  /** An idle pause of `idleMs`, cut short when a type a fleet limit refused may be asked again. */
  pause(idleMs: number): number {
    const local = this.#queue.clock.localNow();
    let pause = idleMs;
    for (const block of this.#blocked.values())
      if (block.until > local) pause = Math.min(pause, block.until - local);
    return pause;
  }

  /**
   * Ask the fleet limits of `task`'s type for a start of it by the claim `next` (lease token
   * `token`, lease `leaseMs`). Resolves `{ next }` for a type without limits (no request), a
   * grant with the claim to write instead (its lease ends with the slot, `grant.until`, so a task
   * never runs on a slot that is free), or `undefined` when the limits refused (the type is then
   * skipped until a slot or start may free), the limit object is malformed (skipped likewise, see
   * below) or the claim can no longer be made.
   */
  async acquire(
    task: TaskRecord,
    claim: { token: string; leaseMs: number; next: TaskRecord },
  ): Promise<{ grant?: LimitGrant; next: TaskRecord } | undefined> {
    const q = this.#queue;
    const { type } = task;
    if (!q.manifest.isLimited(type)) return { next: claim.next };
    const who = { taskId: task.id, worker: this.#o.workerId, token: claim.token };
    let answer: Awaited<ReturnType<typeof q.limits.acquire>>;
    try {
      answer = await q.limits.acquire(type, who, () => {
        const { lower, upper } = q.clock.bounds();
        return { now: lower, until: lower + leaseToWrite(q, claim.leaseMs), startAt: upper };
      });
    } catch (error) {
      if (!(error instanceof OqError && error.code === "MALFORMED")) throw error;
      this.#malformed(type, error);
      return undefined;
    }
    if (!("grant" in answer)) {
      this.#refused(type, answer);
      return undefined;
    }
    this.#blocked.delete(type);
    const { grant } = answer;
    const at = q.now();
    try {
      if (grant.until - at < claim.leaseMs / 2)
        throw new Error("the slot was granted too long ago");
      const lease = { workerId: this.#o.workerId, token: claim.token, leaseMs: grant.until - at };
      return { grant, next: claimTask(task, { ...lease, now: at }) };
    } catch {
      this.release(grant);
      return undefined;
    }
  }

  /**
   * `type`'s limit object is not a limit object (not JSON, the wrong shape): nothing says what
   * its limits allow, so no task of the type runs (the safe side), and the type is skipped as
   * when a full limit refused it, asked again after a pause that doubles up to `maxPollMs`
   * while the object stays broken. Letting the error reach the poller cost a GET of the task
   * and one of the object per due task per listing, with a warning each (3,001 GETs in 20 s for
   * 300 due tasks); this warns once per object.
   */
  #malformed(type: string, error: OqError): void {
    const q = this.#queue;
    q.warnOnce(
      error.key ?? type,
      `tasks of type ${type} wait until their limit object is fixed: ${error.message}`,
    );
    this.#refused(type, { retryAt: Number.POSITIVE_INFINITY, reason: "concurrency" });
  }

  /** A fleet limit refused `type`: skip it until a slot or start may free. */
  #refused(type: string, answer: { retryAt: number; reason: "concurrency" | "rate" }): void {
    const q = this.#queue;
    const local = q.clock.localNow();
    const backoffMs = this.#blocked.get(type)?.backoffMs ?? this.#o.minPollMs;
    // A slot may free before its holder's lease runs out (the task finishes): ask again after a
    // pause that doubles while the limit stays full. The start of a rate window frees exactly.
    const freesAt = answer.retryAt - q.clock.offsetMs();
    const until = answer.reason === "rate" ? freesAt : Math.min(freesAt, local + backoffMs);
    this.#blocked.set(type, {
      until: Math.max(until, local + 10),
      backoffMs: Math.min(backoffMs * 2, this.#o.maxPollMs),
    });
  }

  /**
   * Extend `grant`'s slot for a lease renewal of `leaseMs`: the server time the lease may then
   * run to, or `false` when the slot is lost (the limit is full without it; do not renew).
   */
  async extend(grant: LimitGrant, leaseMs: number): Promise<number | false> {
    const q = this.#queue;
    const now = q.now();
    const until = now + leaseToWrite(q, leaseMs);
    if (!grant.holder) return until;
    if (!(await q.limits.extend(grant, until, now))) return false;
    grant.until = Math.max(grant.until, until);
    return until;
  }

  /**
   * Free `grant`'s slot once its handler settled (best effort: an entry left behind frees when
   * the lease it covered would have run out). This worker may then ask for the type again.
   */
  release(grant: LimitGrant | undefined): void {
    if (grant === undefined || !grant.holder) return;
    const q = this.#queue;
    this.#blocked.delete(grant.type);
    const done = q.limits.release(grant, q.now()).catch((error: unknown) => {
      q.logger.warn(
        `task ${grant.taskId}: could not free its ${grant.type} limit slot (${errorMessage(error)}); it frees when its lease would have run out`,
        { taskId: grant.taskId, type: grant.type, worker: this.#o.workerId, error },
      );
    });
    this.#releasing.add(done);
    void done.finally(() => this.#releasing.delete(done));
  }

  /** Resolves when the releases in flight now have ended. */
  released(): Promise<unknown> {
    return Promise.all(this.#releasing);
  }
}
