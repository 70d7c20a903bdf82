/**
 * Listing ahead (issue 15): a busy worker starts its next listing before the one in use goes
 * stale, and keeps claiming meanwhile, where it used to stop claiming until the relist came in.
 * The listing made ahead is used only for its partition and while fresh, leaves out the tasks
 * claimed since it started, and no listing outlives `stop()`.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import type { Storage } from "../../src/storage/storage.ts";
import {
  LIST_AHEAD_MIN_MS,
  ListingAhead,
  listAheadLeadMs,
} from "../../src/worker/listing-ahead.ts";
import type { PartitionListing } from "../../src/worker/partition-lister.ts";
import { Worker } from "../../src/worker/worker.ts";
import { type TargetInstance, targets } from "../helpers/targets.ts";
import { fast, pause, until } from "../helpers/wait.ts";

const decoder = new TextDecoder();

type Marker = { id: string };
const listing = (ids: string[], endedAt = 0): PartitionListing<Marker> => ({
  found: ids.map((id) => ({ id })),
  capped: false,
  endedAt,
});

describe("ListingAhead", () => {
  it("gives its listing to a relist of the same partition, once", async () => {
    const ahead = new ListingAhead<Marker>();
    ahead.start("ready/t/0/", 1000, async () => listing(["a", "b"]));
    expect(ahead.held).toBe(true);
    expect(await ahead.take("ready/t/1/", 1100, 2000)).toBeUndefined();
    expect(ahead.held).toBe(true);
    expect((await ahead.take("ready/t/0/", 1100, 2000))?.found).toEqual([{ id: "a" }, { id: "b" }]);
    expect(ahead.held).toBe(false);
    expect(await ahead.take("ready/t/0/", 1100, 2000)).toBeUndefined();
  });

  it("leaves out the tasks claimed since the listing started", async () => {
    const ahead = new ListingAhead<Marker>();
    ahead.start("p", 0, async () => listing(["a", "b", "c"]));
    ahead.claimed("b");
    expect((await ahead.take("p", 10, 2000))?.found).toEqual([{ id: "a" }, { id: "c" }]);
  });

  it("is not used once older than the listing it replaces may be", async () => {
    const ahead = new ListingAhead<Marker>();
    ahead.start("p", 0, async () => listing(["a"]));
    expect(await ahead.take("p", 2001, 2000)).toBeUndefined();
    expect(ahead.held).toBe(false);
  });

  it("a failed listing ahead is no listing: the relist lists itself", async () => {
    const ahead = new ListingAhead<Marker>();
    ahead.start("p", 0, async () => {
      throw new Error("503 SlowDown");
    });
    expect(await ahead.take("p", 10, 2000)).toBeUndefined();
  });

  it("settled() waits for a listing dropped while in flight", async () => {
    const ahead = new ListingAhead<Marker>();
    let done = false;
    ahead.start("p", 0, async () => {
      await pause(50);
      done = true;
      return listing([]);
    });
    ahead.drop();
    expect(ahead.held).toBe(false);
    await ahead.settled();
    expect(done).toBe(true);
  });

  it("starts one and a half listings' time ahead, within its bounds", () => {
    expect(listAheadLeadMs(100, 2000)).toBe(150);
    expect(listAheadLeadMs(0, 2000)).toBe(LIST_AHEAD_MIN_MS);
    expect(listAheadLeadMs(5000, 2000)).toBe(1000);
  });
});

/**
 * `inner` with every LIST taking `listMs` more, counting claims (writes of a running task record)
 * made while a LIST was in flight, and requests in flight at any moment.
 */
function slowListings(inner: Storage, listMs: number) {
  const seen = { listsInFlight: 0, inFlight: 0, claimsBesideLists: 0, lists: 0 };
  const counted = async <T>(request: () => Promise<T>): Promise<T> => {
    seen.inFlight++;
    try {
      return await request();
    } finally {
      seen.inFlight--;
    }
  };
  const storage = new Proxy(inner, {
    get(target, property) {
      if (property === "list") {
        return (options: Parameters<Storage["list"]>[0]) =>
          counted(async () => {
            seen.lists++;
            seen.listsInFlight++;
            try {
              await pause(listMs);
              return await target.list(options);
            } finally {
              seen.listsInFlight--;
            }
          });
      }
      if (property === "put") {
        return (key: string, body: Uint8Array | string, options?: unknown) =>
          counted(async () => {
            const text = typeof body === "string" ? body : decoder.decode(body);
            if (key.includes("tasks/") && /"status":\s*"running"/.test(text) && seen.listsInFlight)
              seen.claimsBesideLists++;
            await pause(3); // so that the memory store's writes take time too
            return target.put(key, body, options as never);
          });
      }
      if (property === "get") {
        return (key: string, options?: unknown) => counted(() => target.get(key, options as never));
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { storage, seen };
}

for (const target of targets) {
  describe(`listing ahead on ${target.name}`, () => {
    let env: TargetInstance;
    const workers: Worker[] = [];

    beforeEach(async () => {
      env = await target.create();
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it("a busy worker keeps claiming while its next listing is made (issue 15)", {
      timeout: 60_000,
    }, async () => {
      const count = 60;
      const { storage, seen } = slowListings(env.storage, 150);
      const queue = new Queue({ storage, prefix: env.prefix });
      const started: string[] = [];
      const worker = new Worker(queue, {
        ...fast,
        listReuseMs: 300,
        skipDoctor: true,
        concurrency: 1,
      }).task("t", (_input, ctx) => {
        started.push(ctx.task.id);
        return null;
      });
      workers.push(worker);
      const tasks = await queue.submitMany(
        Array.from({ length: count }, (_, input) => ({ type: "t", input })),
      );
      await worker.start();
      await until("every task completed", () => worker.stats.completed === count, 30_000);
      await worker.stop();
      // Without the listing ahead, every relist held the claims until it came in: none beside.
      expect(seen.claimsBesideLists).toBeGreaterThan(0);
      expect(started).toHaveLength(count);
      expect(new Set(started).size).toBe(count);
      const stored = await Promise.all(tasks.map((t) => queue.get(t.id)));
      expect(stored.every((t) => t.status === "completed" && t.attempt === 1)).toBe(true);
      expect(seen.inFlight).toBe(0);
    });

    it("stop() waits for a listing made ahead that is still in flight", {
      timeout: 60_000,
    }, async () => {
      const { storage, seen } = slowListings(env.storage, 400);
      const queue = new Queue({ storage, prefix: env.prefix });
      const worker = new Worker(queue, {
        ...fast,
        listReuseMs: 600,
        skipDoctor: true,
        concurrency: 1,
      }).task("t", () => null);
      workers.push(worker);
      await queue.submitMany(Array.from({ length: 200 }, (_, input) => ({ type: "t", input })));
      await worker.start();
      await until("a claim beside a listing ahead", () => seen.claimsBesideLists > 0, 30_000);
      await worker.stop();
      expect(seen.listsInFlight).toBe(0);
      expect(seen.inFlight).toBe(0);
    });
  });
}
