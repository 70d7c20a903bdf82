/**
 * Running a queue's tasks to their end in a test, with one in-process worker: shared by the
 * suites that need finished tasks (listing, pruning, replaying).
 */
import { internals } from "../../src/queue/internals.ts";
import type { Queue } from "../../src/queue/queue.ts";
import { PermanentError, type TaskContext, Worker } from "../../src/worker/worker.ts";
import { fast, until } from "./wait.ts";

/**
 * Run every task of `types` to its end (until their partitions of the ready index are empty),
 * then stop the worker. A task for which `fails` holds fails permanently; the others complete
 * with their input as output. Default: tasks whose input is `"fail"` fail.
 */
export async function runAll(
  queue: Queue,
  types: readonly string[],
  fails: (input: unknown, ctx: TaskContext) => boolean = (input) => input === "fail",
): Promise<void> {
  const worker = new Worker(queue, { ...fast, skipDoctor: true, monitor: false });
  for (const type of types)
    worker.task(type, (input: unknown, ctx) => {
      if (fails(input, ctx)) throw new PermanentError("bad input");
      return input;
    });
  worker.start();
  try {
    await until("every task finished", async () => {
      for (const type of types)
        for await (const _ of internals(queue).markers({ prefix: queue.keys.readyType(type) }))
          return false;
      return true;
    });
  } finally {
    await worker.stop();
  }
}
