/**
 * The example task handlers `oq demo` runs. This file is also a tasks module of the kind
 * `oq worker` loads (from a checkout: `oq worker examples/demo-tasks.ts`, which re-exports it):
 *
 * ```sh
 * oq worker examples/demo-tasks.ts --concurrency 4
 * oq submit -t send-email -i '{"to":"a@example.com"}'
 * ```
 *
 * A tasks module default-exports `{ [taskType]: handler }` (or exports one function per task
 * type). A handler gets the task's input and a context, and returns the task's output.
 *
 * It lives beside the CLI rather than in `examples/` so the compiled package ships it.
 *
 * @module
 */
import { PermanentError, type TaskContext } from "../worker/worker.ts";

/** Wait, but stop early when the worker says so (shutdown, cancellation, timeout). */
function work(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", abort);
      resolve();
    }, ms);
    function abort() {
      clearTimeout(timer);
      reject(signal.reason);
    }
    signal.addEventListener("abort", abort, { once: true });
  });
}

const between = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));

export default {
  /** A quick CPU-ish job. */
  "resize-image": async (input: { image: string; width: number }, ctx: TaskContext) => {
    await work(between(150, 500), ctx.signal);
    return { image: input.image.replace(/(\.\w+)$/, `-${input.width}w$1`), width: input.width };
  },

  /**
   * A call to a flaky service. `flaky` inputs fail on their first attempt, as a busy mail server
   * would; the queue retries them after a backoff. A malformed address can never succeed, so it
   * fails permanently at once (no retries) and the task ends `failed`.
   */
  "send-email": async (input: { to: string; flaky?: boolean }, ctx: TaskContext) => {
    await work(between(100, 300), ctx.signal);
    if (!input.to.includes("@")) throw new PermanentError(`invalid address "${input.to}"`);
    if (input.flaky === true && ctx.attempt === 1) {
      throw new Error("421 mail server busy, try again later");
    }
    return { to: input.to, messageId: `<${ctx.task.id}@demo.oq>` };
  },

  /** A slower job. */
  "generate-report": async (input: { month: string }, ctx: TaskContext) => {
    await work(between(600, 1200), ctx.signal);
    return { month: input.month, rows: between(100, 5000) };
  },
};
