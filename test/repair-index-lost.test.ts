/**
 * Issue 10, item 4: the whole ready index of a queue with pending and running tasks is deleted
 * (by hand, or by a lifecycle rule); after `queue.repair()`, or with workers started with the
 * log-scan fallback instead, every task completes, and each exactly once: every id's handler
 * runs once, at attempt 1. The running tasks are genuinely running when the index goes: their
 * handlers are held open by a gate until the index is gone (and, for repair, rebuilt).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Queue } from "../src/queue/queue.ts";
import { type TaskContext, Worker, type WorkerOptions } from "../src/worker/worker.ts";
import { keysUnder, type Target, type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";

/** Delete every key under `ready/`: the whole index. */
async function deleteIndex(queue: Queue): Promise<void> {
  const keys = await keysUnder(queue.storage, queue.keys.ready);
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    if (queue.storage.deleteMany !== undefined) await queue.storage.deleteMany(batch);
    else await Promise.all(batch.map((k) => queue.storage.delete(k)));
  }
}

/** The full 1,000 pending and 100 running on memory; a tenth of that on file and MinIO. */
function sizeFor(target: Target) {
  return target.name === "memory" ? { pending: 1000, running: 100 } : { pending: 100, running: 10 };
}

for (const target of targets) {
  const { pending, running } = sizeFor(target);
  const size = `${pending} pending and ${running} running`;
  describe(`the whole index deleted on ${target.name} (${size})`, () => {
    let env: TargetInstance;
    const workers: Worker[] = [];
    beforeEach(async () => {
      env = await target.create();
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    /**
     * Hold `running` tasks in a worker's handlers, submit `pending` more, delete the whole
     * index, call `recover`, then open the gate and let more workers (one per `helpers` entry,
     * with those options) run the rest.
     * Returns the attempts each id's handler ran, and the tasks as stored at the end.
     */
    async function indexLost(recover: (queue: Queue) => Promise<void>, helpers: WorkerOptions[]) {
      const queue = new Queue({ storage: env.storage, prefix: env.prefix });
      const runs = new Map<string, number[]>();
      let open!: () => void;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const handler = async (input: { hold: boolean }, ctx: TaskContext) => {
        runs.set(ctx.task.id, [...(runs.get(ctx.task.id) ?? []), ctx.attempt]);
        if (input.hold) await gate;
        return null;
      };
      const job = (hold: boolean) => ({ type: "job", input: { hold } });
      // A long lease: the holder's renewals move a running task's marker, once about a second
      // into the run and then every half lease, which must not fall inside the test.
      const holder = new Worker(queue, {
        ...fast,
        leaseSeconds: 300,
        concurrency: running,
        monitor: false,
        skipDoctor: true,
      }).task("job", handler);
      workers.push(holder);
      const held = await queue.submitMany(Array.from({ length: running }, () => job(true)));
      await holder.start();
      await until(`${running} tasks running`, () => holder.active.length === running, 30_000);
      const renewed = async () =>
        (await Promise.all(held.map((t) => queue.get(t.id)))).every(
          (t) => t.event === "lease-renewed",
        );
      await until("their first renewals, which move their markers", renewed, 30_000);
      const waiting = await queue.submitMany(
        Array.from({ length: pending }, () => job(false)),
        { concurrency: 32 },
      );
      await deleteIndex(queue);
      expect(await keysUnder(queue.storage, queue.keys.ready)).toEqual([]);

      await recover(queue);
      const others = helpers.map((options) =>
        new Worker(queue, { ...fast, concurrency: 16, skipDoctor: true, ...options }).task(
          "job",
          handler,
        ),
      );
      workers.push(...others);
      await Promise.all(others.map((w) => w.start()));
      open();
      const all = [...held, ...waiting].map((t) => t.id);
      const completed = () => [holder, ...others].reduce((n, w) => n + w.stats.completed, 0);
      await until(`${all.length} tasks completed`, () => completed() >= all.length, 50_000);
      const stored = await queue.list({ limit: 10_000 });
      return { all, runs, stored: stored.tasks };
    }

    /** Each id ran exactly once, at attempt 1, and every task ended completed. */
    function exactlyOnce(result: Awaited<ReturnType<typeof indexLost>>) {
      const { all, runs, stored } = result;
      const wrong = all.filter((id) => JSON.stringify(runs.get(id)) !== "[1]");
      expect(wrong.map((id) => [id, runs.get(id)])).toEqual([]);
      expect(stored).toHaveLength(all.length);
      expect(stored.filter((t) => t.status !== "completed" || t.attempt !== 1)).toEqual([]);
    }

    it(`after queue.repair() every task completes exactly once (${size}, issue 10)`, async () => {
      const result = await indexLost(
        async (queue) => {
          const repaired = await queue.repair();
          expect(repaired).toMatchObject({
            tasksScanned: pending + running,
            markersRestored: pending + running,
            tasksReindexed: 0,
            unreadable: 0,
          });
          expect(await keysUnder(queue.storage, queue.keys.ready)).toHaveLength(pending + running);
        },
        [{}, {}],
      );
      exactlyOnce(result);
    });

    it(`with the log-scan fallback (no repair) every task completes exactly once (${size}, issue 10)`, async () => {
      // One worker scans (a full pass every 2 s here), the other only claims.
      const scan = { logScan: { pageSize: 500, intervalMs: 2000 } };
      const result = await indexLost(async () => {}, [scan, {}]);
      exactlyOnce(result);
    });
  });
}
