/**
 * Writes that reach storage after their read-back settled them as lost (a PUT whose connection
 * failed on its way, `late-commit`): a claim is watched for and handed back, an outcome or a
 * renewal found stored later counts as ours. On every target, MinIO included.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Queue } from "../src/queue/queue.ts";
import type { Storage } from "../src/storage/storage.ts";
import { PermanentError } from "../src/worker/options.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";
import { ERROR_FAULT_KINDS, FaultyStorage } from "./support/faulty.ts";

/**
 * `inner`, but the `n`th conditional PUT of `key` (from 1) fails on its way and lands right after
 * the next call on that key has been answered: the read-back meant to settle it.
 */
function lateCommitOf(inner: Storage, key: string, n: number): FaultyStorage {
  let seen = 0;
  return new FaultyStorage(inner, {
    faultRate: 1,
    mix: Object.fromEntries(ERROR_FAULT_KINDS.map((k) => [k, k === "late-commit" ? 1 : 0])),
    filter: (call) => call.op === "put" && call.key === key && call.conditional && ++seen === n,
  });
}

for (const target of targets) {
  describe(`writes that land after their read-back, on ${target.name}`, () => {
    let env: TargetInstance;
    const workers: Worker[] = [];

    beforeEach(async () => {
      env = await target.create();
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
      await env.cleanup();
    });

    it("a claim is handed back when it lands: its handler never ran, so its attempt does not count", async () => {
      const plain = new Queue({ storage: env.storage, prefix: env.prefix });
      const task = await plain.submit("t", null, { maxRetries: 0 });
      // Put 1 on the task key after the submit is the claim.
      const storage = lateCommitOf(env.storage, plain.keys.task(task.id), 1);
      const queue = new Queue({ storage, prefix: env.prefix });
      const runs: number[] = [];
      const worker = new Worker(queue, { ...fast, leaseSeconds: 3 }).task("t", async (_, ctx) => {
        runs.push(ctx.attempt);
        return "ok";
      });
      workers.push(worker);
      await worker.start();
      await until(
        "finished",
        async () => (await plain.get(task.id)).status === "completed",
        30_000,
      );
      expect(storage.faults["late-commit"]).toBe(1);
      const done = await plain.get(task.id);
      // Before: the landed claim's lease ran out unheld, the attempt counted, and with no
      // retries left the task failed without ever running.
      expect(done.attempt).toBe(1);
      expect(runs).toEqual([1]);
      expect(done.history.map((h) => h.event)).toEqual([
        "submitted",
        "claimed",
        "released",
        "claimed",
        "completed",
      ]);
    });

    it("an outcome that lands late is the attempt's outcome: reported, counted and listed as a dead letter", async () => {
      const plain = new Queue({ storage: env.storage, prefix: env.prefix });
      const task = await plain.submit("t", null, { maxRetries: 0 });
      // Put 1 is the claim, put 2 the failure (the handler returns before any renewal).
      const storage = lateCommitOf(env.storage, plain.keys.task(task.id), 2);
      const queue = new Queue({ storage, prefix: env.prefix });
      const events: string[] = [];
      const worker = new Worker(queue, {
        ...fast,
        onEvent: (e) => void events.push(e.kind),
      }).task("t", async () => {
        throw new PermanentError("no");
      });
      workers.push(worker);
      await worker.start();
      await until("failed", async () => (await plain.get(task.id)).status === "failed");
      await until("reported", () => events.includes("failed") || events.includes("lease-lost"));
      expect(storage.faults["late-commit"]).toBe(1);
      await worker.stop();
      // Before: the retry round found the landed failure, took it for another writer's, and
      // reported a lost lease; the failure never reached the finished journal.
      expect(events).toContain("failed");
      expect(events).not.toContain("lease-lost");
      expect(worker.stats.failed).toBe(1);
      const listed: string[] = [];
      for await (const t of plain.listAll({ status: "failed" })) listed.push(t.id);
      expect(listed).toEqual([task.id]);
    });
  });
}
