/**
 * Limit objects (`limits/{type}.json`) that no worker wrote: one that is not a limit object at
 * all, and times further ahead than any claimer's clock puts them. The type must neither flood
 * storage and the log nor stay blocked for good; other types go on. On memory, file and MinIO.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ValidationError } from "../src/errors.ts";
import { admit, CLOCK_SLACK_MS, holds, type LimitDocument } from "../src/queue/limits.ts";
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { Worker } from "../src/worker/worker.ts";
import { iso, limitDoc, startSpec, T0 } from "./helpers/limit-docs.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";

const doc = (over: Partial<LimitDocument> = {}) => limitDoc("lim", over);
const spec = startSpec;
const WEEK_MS = 7 * 24 * 3600 * 1000;
const FAR = "2999-01-01T00:00:00.000Z";

describe("times ahead in a limit object (admit)", () => {
  it("ignores a start stamped further ahead than a clock can be (dropped at the write), not one within the slack", () => {
    const a = admit(doc({ ratePerSecond: 1, starts: [FAR] }), spec("a"));
    expect(a.admitted).toBe(true);
    if (a.admitted) expect(a.next.starts).toEqual([iso(T0)]);
    // A start stamped by a clock ahead of ours, as far as one can be, still counts.
    const ahead = doc({ ratePerSecond: 1, starts: [iso(T0 + CLOCK_SLACK_MS - 1)] });
    expect(admit(ahead, spec("a"))).toMatchObject({ admitted: false, reason: "rate" });
  });

  it("ignores a holder dated further ahead than any lease (dropped at the write), not one of the longest lease", () => {
    const ghost = { task: "ghost", worker: "ghost", until: FAR };
    const a = admit(doc({ concurrency: 1, holders: { ghost } }), spec("a"));
    expect(a.admitted).toBe(true);
    if (a.admitted) expect(Object.keys(a.next.holders)).toEqual(["a"]);
    expect(holds(ghost, T0)).toBe(false);
    // A 7-day lease dated by a clock ahead of ours, as far as one can be, still holds its slot.
    const longest = { task: "t", worker: "w", until: iso(T0 + WEEK_MS + CLOCK_SLACK_MS) };
    expect(holds(longest, T0)).toBe(true);
    const full = doc({ concurrency: 1, holders: { longest } });
    expect(admit(full, spec("a"))).toMatchObject({ admitted: false, reason: "concurrency" });
  });
});

describe("the longest lease (memory)", () => {
  it("ctx.extendLease refuses more than 7 days, as leaseSeconds does: its slot would be junk", async () => {
    const queue = new Queue({ storage: new MemoryStorage() });
    const outcome: unknown[] = [];
    const worker = new Worker(queue, { ...fast, skipDoctor: true }).task("t", async (_i, ctx) => {
      outcome.push(await ctx.extendLease(WEEK_MS / 1000 + 1).catch((e: unknown) => e));
      await ctx.extendLease(60);
    });
    const task = await queue.submit("t", null);
    await worker.start();
    try {
      expect((await queue.wait(task.id, { timeout: 10 })).status).toBe("completed");
    } finally {
      await worker.stop();
    }
    expect(outcome[0]).toBeInstanceOf(ValidationError);
    expect(String(outcome[0])).toMatch(/at most 604800 \(7 days\)/);
  });
});

/** A storage that records the key of every GET, beside counting requests by kind. */
function recordGets(inner: Storage): { storage: Storage; gets: string[] } {
  const gets: string[] = [];
  const counted = countRequests(inner);
  const storage = new Proxy(counted, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== "get" || typeof value !== "function") return value;
      return (key: string, ...rest: unknown[]) => {
        gets.push(key);
        return value.call(target, key, ...rest);
      };
    },
  });
  return { storage, gets };
}

const encoder = new TextEncoder();

for (const target of targets) {
  describe(`hostile limit objects on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    let limitKey: string;
    const workers: Worker[] = [];

    beforeEach(async () => {
      env = await target.create();
      queue = new Queue({ storage: env.storage, prefix: env.prefix });
      limitKey = `${env.prefix}limits/lim.json`;
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    const put = (body: string) =>
      env.storage.put(limitKey, encoder.encode(body), { contentType: "application/json" });

    /** A worker of `lim` and `free` tasks on its own queue object, with its GETs and warnings. */
    function watched(options: { minPollMs?: number; maxPollMs?: number } = {}) {
      const { storage, gets } = recordGets(env.storage);
      const warnings: string[] = [];
      const logger = { info() {}, warn: (m: string) => warnings.push(m), error() {} };
      const q = new Queue({ storage, prefix: env.prefix, logger });
      const ran = { lim: 0, free: 0 };
      const w = new Worker(q, { ...fast, skipDoctor: true, ...options })
        .task("lim", () => void ran.lim++)
        .task("free", () => void ran.free++);
      workers.push(w);
      return { w, gets, warnings, ran };
    }

    it("a malformed limit object blocks its type with one warning, not a read of each due task per listing", {
      timeout: 60_000,
    }, async () => {
      await queue.setLimits("lim", { concurrency: 2 });
      await put("{oops");
      const due = 40;
      await queue.submitMany([
        ...Array.from({ length: due }, (_, i) => ({ type: "lim", input: i })),
        ...Array.from({ length: 5 }, (_, i) => ({ type: "free", input: i })),
      ]);
      // Blocks (from minPollMs, doubling) longer than a try's two GETs, even on a slow machine.
      const { w, gets, warnings, ran } = watched({ minPollMs: 50, maxPollMs: 200 });
      await w.start();
      await until("the other type ran and 12 polls passed", () => {
        return ran.free === 5 && w.stats.polls >= 12;
      });
      const polls = w.stats.polls;
      const limitGets = gets.filter((k) => k === limitKey).length;
      const taskGets = gets.filter((k) => k.startsWith(`${env.prefix}tasks/`)).length;
      // Blocked like a full limit: a try (a task's GET, the object's GET) only once its block
      // ended, at most one per pass (a pass may reuse the last listing: two per listing), where
      // each listing read every due task and the object once per task (2 x 40 GETs).
      expect(ran.lim).toBe(0);
      expect(limitGets).toBeGreaterThanOrEqual(1);
      expect(limitGets).toBeLessThanOrEqual(2 * polls);
      expect(taskGets).toBeLessThanOrEqual(2 * polls + 5 * 2);
      const about = warnings.filter((m) => m.includes(limitKey));
      expect(about).toHaveLength(1);
      expect(about[0]).toMatch(/tasks of type lim wait/);
      expect(warnings.filter((m) => m.includes("retried at the next listing"))).toEqual([]);
      // Fixed by setting the limits again (no delete by hand first): the type runs again.
      const set = await queue.setLimits("lim", { concurrency: 2 });
      expect(set.replaced).toMatch(/not a limit object \(not JSON\)/);
      await until("every task of the type ran", () => ran.lim === due, 30_000);
    });

    it("setLimits replaces a malformed limit object, says so, and keeps only the limits given", async () => {
      const warnings: string[] = [];
      const logger = { info() {}, warn: (m: string) => warnings.push(m), error() {} };
      const q = new Queue({ storage: env.storage, prefix: env.prefix, logger });
      const stored = async () =>
        JSON.parse(new TextDecoder().decode((await env.storage.get(limitKey)).body));
      for (const [body, problem] of [
        ["{oops", /not JSON/],
        [JSON.stringify({ oq: "limit", type: "lim", concurrency: "two" }), /concurrency/],
      ] as const) {
        await put(body);
        await expect(q.limits("lim")).rejects.toMatchObject({ code: "MALFORMED" });
        const set = await q.setLimits("lim", { ratePerSecond: 1 });
        expect(set).toMatchObject({ type: "lim", concurrency: null, ratePerSecond: 1 });
        expect(set.replaced).toContain(limitKey);
        expect(set.replaced).toMatch(problem);
        expect(warnings.pop()).toBe(`setLimits(lim): ${set.replaced}`);
        expect(await stored()).toMatchObject({ oq: "limit", type: "lim", ratePerSecond: 1 });
        expect(await q.limits("lim")).toMatchObject([{ concurrency: null, ratePerSecond: 1 }]);
        expect((await q.manifest()).limited).toEqual(["lim"]);
      }
      // Over a valid object: changed as before, keeping the other limit, with nothing to say.
      const set = await q.setLimits("lim", { concurrency: 3 });
      expect(set).toEqual({
        type: "lim",
        concurrency: 3,
        ratePerSecond: 1,
        running: 0,
        recentStarts: 0,
      });
      expect(warnings).toEqual([]);
    });

    it("setLimits replaces a malformed limit object only on its ETag: a rival's write meanwhile is kept", async () => {
      await put("{oops");
      const rival = JSON.stringify(doc({ concurrency: 7, updatedAt: iso(Date.now()) }));
      let raced = false;
      // Just before setLimits' write over the malformed object, another writer fixes it.
      const storage = new Proxy(env.storage, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (typeof value !== "function") return value;
          if (prop !== "put") return value.bind(target);
          return async (key: string, ...rest: unknown[]) => {
            if (key === limitKey && !raced) {
              raced = true;
              await put(rival);
            }
            return value.call(target, key, ...rest);
          };
        },
      });
      const q = new Queue({ storage, prefix: env.prefix });
      const set = await q.setLimits("lim", { ratePerSecond: 1 });
      expect(raced).toBe(true);
      // The rival's object was valid when the write was retried: changed, not replaced.
      expect(set.replaced).toBeUndefined();
      expect(set).toMatchObject({ concurrency: 7, ratePerSecond: 1 });
      expect(await queue.limits("lim")).toMatchObject([{ concurrency: 7, ratePerSecond: 1 }]);
    });

    it("a start stamped in 2999 neither blocks a rate-limited type nor stays", {
      timeout: 60_000,
    }, async () => {
      await queue.setLimits("lim", { ratePerSecond: 1 });
      await put(JSON.stringify(doc({ ratePerSecond: 1, starts: [FAR] })));
      await queue.submitMany([0, 1].map((i) => ({ type: "lim", input: i })));
      const { w, warnings, ran } = watched();
      await w.start();
      await until("both tasks ran", () => ran.lim === 2, 15_000);
      const stored = JSON.parse(new TextDecoder().decode((await env.storage.get(limitKey)).body));
      expect(stored.starts).not.toContain(FAR);
      const about = warnings.filter((m) => m.includes(limitKey));
      expect(about).toHaveLength(1);
      expect(about[0]).toMatch(/1 start time\(s\) such as 2999/);
    });

    it("a slot holder until 2999 neither blocks the type nor stays", {
      timeout: 60_000,
    }, async () => {
      await queue.setLimits("lim", { concurrency: 1 });
      const ghost = { task: "ghost", worker: "ghost", until: FAR };
      await put(JSON.stringify(doc({ concurrency: 1, holders: { ghost } })));
      await queue.submitMany([0, 1].map((i) => ({ type: "lim", input: i })));
      const { w, warnings, ran } = watched();
      await w.start();
      await until("both tasks ran", () => ran.lim === 2, 15_000);
      // Each worker frees its own slot in the background once the outcome is written.
      await until("every slot freed", async () => (await queue.limits("lim"))[0]!.running === 0);
      const stored = JSON.parse(new TextDecoder().decode((await env.storage.get(limitKey)).body));
      expect(stored.holders).toEqual({});
      const about = warnings.filter((m) => m.includes(limitKey));
      expect(about).toHaveLength(1);
      expect(about[0]).toMatch(/1 slot holder\(s\) until 2999/);
    });
  });
}
