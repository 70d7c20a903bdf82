/**
 * A finished task's marker outlives it until the task's journal entry is written, so that a
 * worker killed with journal entries still in memory loses none (issue 16: a 5-minute soak left
 * about 7 finished tasks per kill in no journal, never pruned): a monitor that finds such a
 * marker past the grace writes the task into its own journal, then deletes the marker.
 */
import { afterEach, describe, expect, it } from "vitest";
import { UnavailableError } from "../src/errors.ts";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import { MARKER_GRACE_MS } from "../src/queue/ready-index.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { Worker } from "../src/worker/worker.ts";
import { keysUnder, type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";
import { killSwitch } from "./support/kill-switch.ts";

/** Ids named by the journals under `prefix`. */
async function journaled(storage: Storage, queue: Queue, prefix = ""): Promise<string[]> {
  const ids: string[] = [];
  for (const key of await keysUnder(storage, `${prefix}done/`)) {
    const journal = await internals(queue).journal.read(key);
    ids.push(...journal.entries.map((e) => e.id));
  }
  return ids;
}

/** A view of `inner` whose PUTs under `done/` fail while `blocked.on`. */
function journalOutage(inner: Storage, blocked: { on: boolean }): Storage {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop !== "put") return value.bind(target);
      return (key: string, ...rest: unknown[]) => {
        if (blocked.on && key.includes("done/"))
          return Promise.reject(new UnavailableError("journal outage"));
        return value.call(target, key, ...rest);
      };
    },
  });
}

for (const target of targets) {
  describe(`a finished task's marker waits for its journal, on ${target.name} (issue 16)`, () => {
    let env: TargetInstance;
    afterEach(async () => {
      await env?.cleanup();
    });

    it("a cancelled task keeps its marker while its journal cannot be written, and loses it once it is", async () => {
      env = await target.create();
      const blocked = { on: true };
      const storage = journalOutage(env.storage, blocked);
      const queue = new Queue({ storage, prefix: env.prefix });
      const task = await queue.submit("t", { n: 1 });
      await queue.cancel(task.id);
      expect((await queue.get(task.id))?.status).toBe("cancelled");
      // The journal failed: the marker is what still leads to the task.
      expect(await keysUnder(env.storage, `${env.prefix}ready/`)).toEqual([
        queue.keys.full(task.marker!),
      ]);
      expect(await journaled(env.storage, queue, env.prefix)).toEqual([]);
      blocked.on = false;
      await internals(queue).flush();
      expect(await journaled(env.storage, queue, env.prefix)).toEqual([task.id]);
      expect(await keysUnder(env.storage, `${env.prefix}ready/`)).toEqual([]);
    });
  });
}

describe("a worker killed before writing its journal (issue 16)", () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
  });

  it("loses no journal entry: a monitor journals its finished task past the grace, then deletes the marker", async () => {
    const clock = { offset: 0, now: () => Date.now() + clock.offset };
    const inner = Object.assign(new MemoryStorage({ now: clock.now }), {
      async deleteMany(this: MemoryStorage, keys: readonly string[]) {
        for (const key of keys) await this.delete(key);
      },
    });
    const queue = new Queue({ storage: inner, now: clock.now });
    const task = await queue.submit("t", { n: 1 });
    // The victim dies the moment its outcome (the second task write: claim, then outcome) lands.
    let taskWrites = 0;
    const doomed = killSwitch(
      inner,
      (call) => call.op === "put" && call.key.startsWith("tasks/") && ++taskWrites === 2,
    );
    const victim = new Worker(new Queue({ storage: doomed.storage, now: clock.now }), {
      ...fast,
      skipDoctor: true,
      id: "victim",
    }).task("t", () => "done");
    workers.push(victim);
    victim.start();
    await until("the victim was killed", () => doomed.killed);
    expect((await queue.get(task.id))?.status).toBe("completed");
    expect(await journaled(inner, queue)).toEqual([]);
    expect(await keysUnder(inner, "ready/")).toHaveLength(1);

    // Past the grace (and the grace more a sweeper outside the id's share waits).
    clock.offset += 2 * MARKER_GRACE_MS + 1000;
    const rescuer = new Worker(queue, { ...fast, skipDoctor: true, id: "rescuer" }).task(
      "t",
      () => "again",
    );
    workers.push(rescuer);
    rescuer.start();
    await until("the rescuer deleted the marker", async () => {
      await internals(queue).flush();
      return (await keysUnder(inner, "ready/")).length === 0;
    });
    expect(await journaled(inner, queue)).toEqual([task.id]);
    const done = (await queue.get(task.id))!;
    expect(done.status).toBe("completed");
    expect(done.output).toBe("done");
  });
});
