/**
 * Client-wide slowing down after the server said `503 SlowDown` or `429`.
 *
 * The retry rule alone backs off one request at a time: every new request starts at full speed
 * and spends its own few tries within a second, so a worker kept up the same request rate for
 * as long as a 503 storm lasted (about 15 requests a second each, measured through a fault
 * proxy). Like the AWS SDKs' adaptive retry mode, the driver therefore slows down as a whole:
 * each throttled answer doubles a pause shared by every request of this client (from the retry
 * policy's `baseDelayMs` up to its `maxDelayMs`), no request starts and no retry is sent before
 * that pause has passed, and the first successful answer ends it.
 *
 * @module
 */
import type { RetryPolicy } from "../../retry.ts";
import type { Failure } from "./errors.ts";
import type { Ok } from "./request.ts";

/** The pause shared by every request of one S3 client while the server throttles it. */
export class SlowDown {
  readonly #policy: Required<RetryPolicy>;
  readonly #now: () => number;
  #pauseMs = 0;
  #untilMs = 0;

  /** `now` is the driver's clock (epoch ms); the policy's `sleep` and `random` are used. */
  constructor(policy: Required<RetryPolicy>, now: () => number) {
    this.#policy = policy;
    this.#now = now;
  }

  /** How long a request starting now must still wait, ms. */
  remainingMs(): number {
    return Math.max(0, this.#untilMs - this.#now());
  }

  /** Wait out the pause, if any, before a request's first try. */
  async wait(): Promise<void> {
    const left = this.remainingMs();
    if (left > 0) await this.#policy.sleep(left);
  }

  /** Note a try's outcome: a throttled answer doubles the pause, a success ends it. */
  observe<T extends Ok | Failure>(outcome: T): T {
    if (!("error" in outcome)) {
      this.#pauseMs = 0;
      this.#untilMs = 0;
    } else if (outcome.error.code === "THROTTLED") {
      const { baseDelayMs, maxDelayMs, random } = this.#policy;
      this.#pauseMs = Math.min(maxDelayMs, Math.max(baseDelayMs, this.#pauseMs * 2));
      // Half fixed, half random, so that clients throttled together do not return together.
      const pause = this.#pauseMs * (0.5 + random() / 2);
      this.#untilMs = Math.max(this.#untilMs, this.#now() + pause);
    }
    return outcome;
  }

  /** The wait before retrying after `failure`: the server's `Retry-After`, or the pause left. */
  retryAfterMs(failure: Failure | undefined): number | undefined {
    const left = this.remainingMs();
    if (left === 0) return failure?.retryAfterMs;
    return Math.max(left, failure?.retryAfterMs ?? 0);
  }
}
