import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "../src/connect.ts";
import type { Queue } from "../src/queue/queue.ts";
import type { Storage } from "../src/storage/storage.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";

/**
 * `storage` with every PUT held 20 ms before it is sent, noting how many are in flight at once
 * and, per key, when its PUT started and ended (to check the marker-before-task order).
 */
function watchPuts(storage: Storage) {
  const seen = { inFlight: 0, maxInFlight: 0, started: new Map<string, number>() };
  const ended = new Map<string, number>();
  let clock = 0;
  const watched = new Proxy(storage, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (name !== "put") return typeof value === "function" ? value.bind(target) : value;
      return async (...args: Parameters<Storage["put"]>) => {
        seen.inFlight++;
        seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
        seen.started.set(args[0], clock++);
        try {
          await new Promise((r) => setTimeout(r, 20));
          return await target.put(...args);
        } finally {
          seen.inFlight--;
          ended.set(args[0], clock++);
        }
      };
    },
  });
  return { storage: watched, seen, ended };
}

for (const target of targets) {
  describe(`submitMany on ${target.name}`, () => {
    let env: TargetInstance;
    let watch: ReturnType<typeof watchPuts>;
    let queue: Queue;

    beforeEach(async () => {
      env = await target.create();
      watch = watchPuts(env.storage);
      queue = await connect({ storage: watch.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await env.cleanup();
    });

    it("keeps 32 tasks in flight by default, as the storage's rate needs (issue 15)", async () => {
      const tasks = await queue.submitMany(
        Array.from({ length: 96 }, (_, i) => ({ type: "bulk", input: i })),
      );
      expect(watch.seen.maxInFlight).toBe(32);
      // Every task is stored and pending, its marker written (and answered) before the task.
      for (const [i, submitted] of tasks.entries()) {
        const stored = await queue.get(submitted.id);
        expect(stored.status).toBe("pending");
        expect(stored.input).toBe(i);
        const marker = queue.keys.full(stored.marker!);
        const task = queue.keys.task(stored.id);
        expect(watch.ended.get(marker)).toBeLessThan(watch.seen.started.get(task)!);
      }
    });

    it("keeps at most the concurrency given", async () => {
      await queue.submitMany(
        Array.from({ length: 20 }, (_, i) => ({ type: "bulk", input: i })),
        { concurrency: 4 },
      );
      expect(watch.seen.maxInFlight).toBe(4);
    });
  });
}
