/**
 * The soak's stream of tasks and its handler, shared by the in-process soak (scripts/soak.ts)
 * and the process soak (scripts/soak-processes.ts, scripts/soak-worker.ts).
 *
 * Of every 20 tasks, 17 complete, 1 fails permanently (`PermanentError`), 1 is submitted with a
 * 30 s delay and cancelled by the submitter about 2 s later, and 1 is of a type no worker runs
 * (`soak-expiring`) with a 2 s TTL, so a monitor expires it.
 *
 * @module
 */
import type { FinishedStatus } from "../src/keys.ts";
import type { Queue } from "../src/queue/queue.ts";
import { mapLimit } from "../src/util/async.ts";
import type { TaskContext } from "../src/worker/options.ts";
import { PermanentError } from "../src/worker/options.ts";

/** What the stream means a task to end as. */
export type StreamKind = "complete" | "fail" | "cancel" | "expire";

/** The terminal status each kind of task must reach. */
export const EXPECTED_STATUS: Record<StreamKind, FinishedStatus> = {
  complete: "completed",
  fail: "failed",
  cancel: "cancelled",
  expire: "expired",
};

/** The kind of the `i`-th task of the stream (0-based). */
export function streamKind(i: number): StreamKind {
  const slot = i % 20;
  return slot === 1 ? "fail" : slot === 2 ? "cancel" : slot === 3 ? "expire" : "complete";
}

/** A task the stream submitted. */
export interface Submitted {
  id: string;
  kind: StreamKind;
  /** Local epoch ms of the submit. */
  atMs: number;
}

/** The submitting side of the stream: one call per second of it. */
export class SoakStream {
  /** Tasks the stream tried to submit so far. */
  submitted = 0;
  /** Submits that threw. */
  submitErrors = 0;
  readonly #queue: Queue;
  readonly #onSubmit: (task: Submitted) => void;
  readonly #toCancel: { id: string; atMs: number }[] = [];

  constructor(queue: Queue, onSubmit: (task: Submitted) => void = () => {}) {
    this.#queue = queue;
    this.#onSubmit = onSubmit;
  }

  /** Submit the `n` tasks of one second of the stream, then cancel those that are due. */
  async submitSecond(n: number): Promise<void> {
    const indexes = Array.from({ length: n }, () => this.submitted++);
    await mapLimit(indexes, 8, (i) => this.#submitOne(i));
    await this.cancelDue(Date.now());
  }

  /** Cancel the delayed tasks whose cancel is due at `nowMs` (all of them: `Infinity`). */
  async cancelDue(nowMs: number): Promise<void> {
    const due = this.#toCancel.filter((c) => c.atMs <= nowMs);
    if (due.length === 0) return;
    this.#toCancel.splice(0, due.length);
    await this.#queue.cancelMany(due.map((c) => c.id));
  }

  async #submitOne(i: number): Promise<void> {
    const kind = streamKind(i);
    try {
      const task =
        kind === "fail"
          ? await this.#queue.submit("soak", { fail: true })
          : kind === "cancel"
            ? await this.#queue.submit("soak", {}, { delay: 30 })
            : kind === "expire"
              ? await this.#queue.submit("soak-expiring", {}, { ttlSeconds: 2 })
              : await this.#queue.submit("soak", {});
      if (kind === "cancel") this.#toCancel.push({ id: task.id, atMs: Date.now() + 2000 });
      this.#onSubmit({ id: task.id, kind, atMs: Date.now() });
    } catch (error) {
      this.submitErrors++;
      console.error(`soak: submit failed: ${error instanceof Error ? error.message : error}`);
    }
  }
}

/**
 * The `soak` task's handler: notes the run (`onRun`), works 20-100 ms, and fails permanently
 * when the input says so.
 */
export function soakHandler(
  onRun: (id: string, attempt: number) => void,
): (input: { fail?: boolean }, ctx: TaskContext) => Promise<null> {
  return async (input, ctx) => {
    onRun(ctx.task.id, ctx.attempt);
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
    if (input.fail === true) throw new PermanentError("soak: failing on purpose");
    return null;
  };
}
