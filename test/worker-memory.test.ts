/**
 * Defect 13: a long-running worker's memory must not grow with the number of loop turns. Each
 * turn with full slots used to race every running task's promise, and the reactions stayed
 * attached until that task ended: a 24 h task on a busy worker held gigabytes of them.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { expect, it } from "vitest";
import { Queue } from "../src/queue/queue.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { Worker } from "../src/worker/worker.ts";

/**
 * Short tasks run beside the long one, as many as the issue names: each is one loop turn with
 * full slots. At 5,000 the heap check could not tell a per-task leak bounded by a time window
 * from none (a 60 s skip entry per finished task grew the heap by 6 MB over 60,000 tasks).
 */
const SHORT_TASKS = 60_000;
const BATCH = 5000;

/** A forced full GC, so heap samples compare live objects only. */
function collectGarbage(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

it("keeps memory flat while a long task runs beside many short ones (defect 13)", async () => {
  const gc = collectGarbage();
  // No history: a finished task is deleted below, so the heap holds only what the worker keeps.
  const storage = new MemoryStorage({ versioning: "Disabled" });
  const queue = new Queue({ storage, prefix: "mem/" });
  // Count reactions attached with then() per promise: Promise.race attaches its reactions that
  // way, and a pending promise keeps every reaction until it settles.
  const reactions = new WeakMap<object, number>();
  let most = 0;
  const then = Promise.prototype.then;
  // biome-ignore lint/suspicious/noThenProperty: counting reactions is the point of this test
  Promise.prototype.then = function (this: Promise<unknown>, ...args: [never, never]) {
    const n = (reactions.get(this) ?? 0) + 1;
    reactions.set(this, n);
    if (n > most) most = n;
    return then.apply(this, args);
  } as typeof then;
  let endLong = () => {};
  let done = 0;
  const heap: number[] = [];
  const worker = new Worker(queue, {
    concurrency: 16,
    minPollMs: 10,
    maxPollMs: 20,
    heartbeatSeconds: 0,
    monitor: false,
    onEvent: (e) => {
      if (e.kind !== "completed" || e.type !== "short") return;
      done++;
      void storage.delete(queue.keys.task(e.id));
    },
  });
  try {
    const long = await queue.submit("long", null);
    worker.task("long", () => new Promise<void>((resolve) => (endLong = resolve)));
    // Short, but long enough that the slots are full at every turn, as on a busy worker.
    worker.task("short", () => new Promise((resolve) => setTimeout(resolve, 2)));
    await worker.start();
    while (worker.active.length === 0) await new Promise((r) => setTimeout(r, 5));
    for (let batch = 0; batch < SHORT_TASKS / BATCH; batch++) {
      await queue.submitMany(Array.from({ length: BATCH }, () => ({ type: "short", input: null })));
      while (done < (batch + 1) * BATCH) await new Promise((r) => setTimeout(r, 20));
      gc();
      heap.push(process.memoryUsage().heapUsed);
    }
    expect(worker.active).toEqual([long.id]);
  } finally {
    // biome-ignore lint/suspicious/noThenProperty: restores the original
    Promise.prototype.then = then;
    endLong();
    await worker.stop({ graceMs: 5000 });
  }
  // Structural: no promise collected a reaction per loop turn (today: one per short task).
  expect(most).toBeLessThan(1000);
  // And the heap, once the first batch warmed everything up, stays within a bound: no per-task
  // state outlives its task.
  const growth = heap[heap.length - 1]! - heap[0]!;
  expect(growth).toBeLessThan(3 * 1024 * 1024);
}, 600_000);
