/** The peers part: heartbeats, the live-worker list, and the share of the id space it gives. */

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FinishedCounter } from "../../src/queue/finished-counts.ts";
import { internals } from "../../src/queue/internals.ts";
import { Queue } from "../../src/queue/queue.ts";
import { countRequests } from "../../src/storage/count.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { newStats } from "../../src/worker/events.ts";
import { Peers } from "../../src/worker/peers.ts";
import { Worker } from "../../src/worker/worker.ts";
import { sharedTargets, type TargetInstance } from "../helpers/targets.ts";
import { memoryQueue } from "./helpers.ts";

const state = () => ({ types: ["t"], concurrency: 1, active: [], startedAt: 0, stats: newStats() });
const ids = Array.from({ length: 64 }, (_, i) => (i * 0x3f1d7).toString(16).padStart(8, "0"));

describe("Peers", () => {
  it("alone, every task id is in its share", () => {
    const { queue } = memoryQueue();
    const peers = new Peers(internals(queue), "a", 60, state);
    expect(ids.every((id) => peers.mine(id))).toBe(true);
  });

  it("computes shares from heartbeats: each id falls in exactly one live worker's share", async () => {
    const { queue } = memoryQueue();
    const a = new Peers(internals(queue), "a", 60, state);
    const b = new Peers(internals(queue), "b", 60, state);
    await a.heartbeat();
    await b.heartbeat();
    await a.refresh();
    expect(a.live).toEqual(["a", "b"]);
    expect(b.live).toEqual(["a", "b"]);
    const inA = ids.filter((id) => a.mine(id));
    const inB = ids.filter((id) => b.mine(id));
    expect(inA.length + inB.length).toBe(ids.length);
    expect(inA.filter((id) => inB.includes(id))).toEqual([]);
    expect(inA.length).toBeGreaterThan(0);
    expect(inB.length).toBeGreaterThan(0);
  });

  it("ends its early looks for peers once a look finds no worker the one before did not (8-worker workers/ LISTs)", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const { queue, storage } = memoryQueue();
      let lists = 0;
      const list = storage.list.bind(storage);
      storage.list = (options) => {
        if (options?.prefix === queue.keys.workers) lists++;
        return list(options);
      };
      await new Peers(internals(queue), "b", 60, state).heartbeat();
      const a = new Peers(internals(queue), "a", 60, state);
      await a.start(() => true);
      expect(a.live).toEqual(["a", "b"]);
      // A worker started just after: the first look finds it, the next finds no one new.
      await new Peers(internals(queue), "c", 60, state).heartbeat();
      lists = 0;
      await vi.advanceTimersByTimeAsync(300);
      expect(a.live).toEqual(["a", "b", "c"]);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(lists).toBe(2);
      await a.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it("drops a peer whose heartbeat is older than three intervals", async () => {
    const { queue, advance } = memoryQueue();
    const a = new Peers(internals(queue), "a", 1, state);
    const b = new Peers(internals(queue), "b", 1, state);
    await b.heartbeat();
    advance(2500);
    await a.heartbeat();
    expect(a.live).toEqual(["a", "b"]);
    advance(1000);
    await a.heartbeat();
    expect(a.live).toEqual(["a"]);
    expect(ids.every((id) => a.mine(id))).toBe(true);
  });

  it("skips a heartbeat while the last one is still in flight (in a 503 storm they piled up: 2 PUTs/s per worker)", async () => {
    vi.useFakeTimers();
    try {
      const memory = new MemoryStorage();
      const held: (() => void)[] = [];
      let hold = false;
      let puts = 0;
      const storage = new Proxy(memory, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (typeof value !== "function") return value;
          if (prop !== "put") return value.bind(target);
          return async (...args: Parameters<MemoryStorage["put"]>) => {
            puts++;
            if (hold) await new Promise<void>((resolve) => held.push(resolve));
            return memory.put(...args);
          };
        },
      });
      const peers = new Peers(internals(new Queue({ storage, prefix: "" })), "a", 1, state);
      await peers.start(() => true);
      const before = puts;
      hold = true;
      await vi.advanceTimersByTimeAsync(10_000);
      expect(puts - before).toBe(1);
      hold = false;
      for (const release of held) release();
      await vi.advanceTimersByTimeAsync(1000);
      expect(puts - before).toBe(2);
      await peers.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it("writes what its worker reports, and deletes its heartbeat on stop", async () => {
    const { queue, storage } = memoryQueue();
    const stats = { ...newStats(), completed: 7 };
    const peers = new Peers(internals(queue), "a", 60, () => ({
      types: ["x", "y"],
      concurrency: 3,
      active: ["t1"],
      startedAt: 0,
      stats,
    }));
    await peers.start(() => true);
    const body = JSON.parse(
      new TextDecoder().decode((await storage.get(queue.keys.worker("a"))).body),
    );
    expect(body).toMatchObject({ id: "a", types: ["x", "y"], concurrency: 3, active: ["t1"] });
    expect(body.stats.completed).toBe(7);
    expect(body.heartbeatSeconds).toBe(60);
    await peers.stop();
    const left = await storage.list({ prefix: queue.keys.workers });
    expect(left.objects).toEqual([]);
  });

  it("on stop keeps its finished counts in workers/stopped/, then deletes its heartbeat", async () => {
    const { queue, storage } = memoryQueue();
    const finished = new FinishedCounter(() => queue.now());
    const peers = new Peers(internals(queue), "a", 60, () => ({ ...state(), finished }));
    await peers.start(() => true);
    const at = new Date(queue.now()).toISOString();
    finished.record({ type: "t", status: "completed", finishedAt: at });
    const before = queue.now();
    await peers.stop();
    const after = queue.now();
    expect((await storage.list({ prefix: queue.keys.workers, delimiter: "/" })).objects).toEqual(
      [],
    );
    const kept = await storage.list({ prefix: queue.keys.stoppedWorkers });
    // The key carries the second of the stop, which may tick over while it runs.
    expect(kept.objects).toHaveLength(1);
    expect([before, after].map((t) => queue.keys.stoppedWorker("a", t))).toContain(
      kept.objects[0]!.key,
    );
    const body = JSON.parse(
      new TextDecoder().decode((await storage.get(kept.objects[0]!.key)).body),
    );
    expect(body.finished.hours).toEqual({
      [new Date(Math.floor(queue.now() / 3_600_000) * 3_600_000).toISOString()]: {
        t: { completed: 1 },
      },
    });
    expect(body.stoppedAt).toBeTypeOf("string");
  });

  it("writes no stopped file when it finished nothing", async () => {
    const { queue, storage } = memoryQueue();
    const finished = new FinishedCounter(() => queue.now());
    const peers = new Peers(internals(queue), "a", 60, () => ({ ...state(), finished }));
    await peers.start(() => true);
    await peers.stop();
    expect((await storage.list({ prefix: queue.keys.workers })).objects).toEqual([]);
  });

  it("a worker id that runs twice keeps both runs' counts", async () => {
    const { queue, storage, advance } = memoryQueue();
    for (const run of [1, 2]) {
      const finished = new FinishedCounter(() => queue.now());
      const peers = new Peers(internals(queue), "a", 60, () => ({ ...state(), finished }));
      await peers.start(() => true);
      finished.record({
        type: "t",
        status: "completed",
        finishedAt: new Date(queue.now()).toISOString(),
      });
      await peers.stop();
      advance(5000 * run);
    }
    expect((await storage.list({ prefix: queue.keys.stoppedWorkers })).objects).toHaveLength(2);
    const email = (await queue.stats()).types.find((t) => t.type === "t")!;
    expect(email.finished.lastHour.completed).toBe(2);
  });

  it("lists live workers in one request however many stopped workers' files there are", async () => {
    const counted = countRequests(new MemoryStorage());
    const queue = new Queue({ storage: counted });
    await Promise.all(
      Array.from({ length: 1500 }, (_, i) =>
        counted.put(queue.keys.stoppedWorker(`old-${i}`, queue.now()), "{}"),
      ),
    );
    const peers = new Peers(internals(queue), "a", 60, state);
    counted.reset();
    await peers.refresh();
    expect(counted.counts.LIST).toBe(1);
  });

  it("a worker id that runs again after being killed keeps the killed run's counts", async () => {
    const { queue, storage, advance } = memoryQueue();
    const killed = new FinishedCounter(() => queue.now());
    const first = new Peers(internals(queue), "a", 60, () => ({ ...state(), finished: killed }));
    killed.record({ type: "t", status: "failed", finishedAt: new Date(queue.now()).toISOString() });
    await first.heartbeat(); // ...and the process dies: no stop().
    advance(5000);
    const again = new Peers(internals(queue), "a", 60, () => ({
      ...state(),
      finished: new FinishedCounter(() => queue.now()),
    }));
    await again.start(() => true);
    try {
      const t = (await queue.stats()).types.find((x) => x.type === "t")!;
      expect(t.finished.lastHour.failed).toBe(1);
      expect((await storage.list({ prefix: queue.keys.stoppedWorkers })).objects).toHaveLength(1);
    } finally {
      await again.stop();
    }
  });
});

for (const target of sharedTargets) {
  describe(`a starting worker's look for an earlier run's heartbeat, on ${target.name}`, () => {
    let env: TargetInstance;
    beforeEach(async () => {
      env = await target.create();
    });
    afterEach(() => env.cleanup());

    it("is skipped with a generated id and made (one GET) with a given id", async () => {
      const heartbeatReads = async (id: string | undefined) => {
        const gets: string[] = [];
        // Delegates to the target's storage, recording the keys it reads.
        const storage = new Proxy(env.storage, {
          get(inner, name) {
            const value = Reflect.get(inner, name, inner);
            if (typeof value !== "function") return value;
            return (...args: unknown[]) => {
              if (name === "get") gets.push(args[0] as string);
              return value.apply(inner, args);
            };
          },
        });
        const queue = new Queue({ storage, prefix: env.prefix });
        const worker = new Worker(queue, id === undefined ? {} : { id }).task("t", () => null);
        await worker.start();
        await worker.stop();
        return gets.filter((key) => key === queue.keys.worker(worker.id)).length;
      };
      expect(await heartbeatReads(undefined)).toBe(0);
      expect(await heartbeatReads("fixed")).toBe(1);
    });
  });
}
