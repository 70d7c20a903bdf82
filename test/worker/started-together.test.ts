/**
 * Workers started together over a backlog find each other before their shares matter: each task
 * is read about once. A worker that knows no peers takes from the whole index, oldest first, as
 * every other one does, and reads tasks the others are claiming. (A first heartbeat held back
 * until the first poll's claims made four workers of 8 slots read 2.7-5 tasks per task on the
 * memory, file and MinIO storages, where 1.03-1.05 is the rule.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { countRequests } from "../../src/storage/count.ts";
import { Worker } from "../../src/worker/worker.ts";
import { type TargetInstance, targets } from "../helpers/targets.ts";
import { pause, until } from "../helpers/wait.ts";

const TASKS = 400;
let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.map((c) => c()));
  cleanups = [];
});

describe.each(targets)("four workers started together, on $name", (target) => {
  it("read each task of a backlog about once", { timeout: 90_000 }, async () => {
    const instance: TargetInstance = await target.create();
    const storage = countRequests(instance.storage);
    const queue = new Queue({ storage, prefix: instance.prefix });
    await queue.submitMany(Array.from({ length: TASKS }, (_, i) => ({ type: "t", input: i })));
    // Surely due by the workers' lower bound of the server's clock (whole seconds).
    await pause(1200);
    storage.reset();
    let done = 0;
    const workers = Array.from({ length: 4 }, () =>
      new Worker(queue, { skipDoctor: true, concurrency: 8 }).task("t", () => {
        done++;
        return null;
      }),
    );
    cleanups.push(async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await instance.cleanup();
    });
    await Promise.all(workers.map((w) => w.start()));
    await until("the backlog to drain", () => done >= TASKS, 60_000);
    expect(done).toBe(TASKS);
    expect(storage.counts.GET / TASKS).toBeLessThanOrEqual(1.5);
  });
});
