/**
 * Concurrency and rate limits (issue 13, item 3): the per-type concurrency of one worker, and
 * the fleet-wide limits of a type kept in its limit object (`limits/{type}.json`), on memory, file
 * and MinIO. The test with worker processes is test/limits-processes.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ValidationError } from "../src/errors.ts";
import { internals } from "../src/queue/internals.ts";
import { admit, type LimitDocument } from "../src/queue/limits.ts";
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { RequestKind, Storage } from "../src/storage/storage.ts";
import { sleep } from "../src/util/async.ts";
import { Worker, type WorkerOptions } from "../src/worker/worker.ts";
import { iso, limitDoc, startSpec, T0 } from "./helpers/limit-docs.ts";
import { maxOverlap, mostInWindow } from "./helpers/overlap.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, pause, until } from "./helpers/wait.ts";

const doc = (over: Partial<LimitDocument> = {}) => limitDoc("video", over);
const spec = startSpec;

describe("admit (the decision on a limit object)", () => {
  it("refuses a start when the concurrency limit is full, until the first holder's lease ends", () => {
    let d = doc({ concurrency: 2 });
    for (const token of ["a", "b"]) {
      const a = admit(d, spec(token));
      if (!a.admitted) throw new Error("refused");
      expect(a.holder).toBe(true);
      d = a.next;
    }
    expect(Object.keys(d.holders)).toEqual(["a", "b"]);
    const refused = admit(d, spec("c"));
    // Free at the lease's expiry plus the takeover margin, as a lease is.
    expect(refused).toEqual({ admitted: false, retryAt: T0 + 61_000, reason: "concurrency" });
    const later = admit(d, spec("c", T0 + 61_000));
    expect(later.admitted).toBe(true);
    if (later.admitted) expect(Object.keys(later.next.holders)).toEqual(["c"]);
  });

  it("keys holders by lease token: two claimers racing for one task hold two slots", () => {
    const first = admit(doc({ concurrency: 3 }), { ...spec("a"), taskId: "same" });
    if (!first.admitted) throw new Error("refused");
    const second = admit(first.next, { ...spec("b"), taskId: "same" });
    if (!second.admitted) throw new Error("refused");
    expect(Object.keys(second.next.holders)).toEqual(["a", "b"]);
  });

  it("allows at most R starts in any 1-second window, counting starts stamped ahead of us", () => {
    let d = doc({ ratePerSecond: 2 });
    const a = admit(d, spec("a"));
    if (!a.admitted) throw new Error("refused");
    expect(a.holder).toBe(false);
    // A start stamped 300 ms ahead of this claimer's clock still counts.
    d = { ...a.next, starts: [...a.next.starts, iso(T0 + 300)] };
    const refused = admit(d, spec("c", T0 + 100));
    expect(refused).toEqual({ admitted: false, retryAt: T0 + 1000, reason: "rate" });
    expect(admit(d, spec("c", T0 + 1000)).admitted).toBe(true);
  });

  it("stamps a start by the upper bound of server time, so an uncertain clock cannot admit more", () => {
    // Server time is known to lie in [T0, T0 + 900]: the start may have been at T0 + 900.
    const a = admit(doc({ ratePerSecond: 1 }), { ...spec("a"), startAt: T0 + 900 });
    if (!a.admitted) throw new Error("refused");
    expect(a.next.starts).toEqual([iso(T0 + 900)]);
    // A claimer whose lower bound is T0 + 1400 may be at T0 + 1400 exactly: within a second.
    expect(admit(a.next, spec("b", T0 + 1400))).toMatchObject({ admitted: false, reason: "rate" });
  });

  it("a rate below 1 per second allows one start per 1/R seconds", () => {
    const a = admit(doc({ ratePerSecond: 0.25 }), spec("a"));
    if (!a.admitted) throw new Error("refused");
    expect(admit(a.next, spec("b", T0 + 3999))).toMatchObject({ retryAt: T0 + 4000 });
    expect(admit(a.next, spec("b", T0 + 4000)).admitted).toBe(true);
  });

  it("drops starts older than two windows", () => {
    const d = doc({ ratePerSecond: 5, starts: [iso(T0 - 2500), iso(T0 - 1500)] });
    const a = admit(d, spec("a"));
    if (!a.admitted) throw new Error("refused");
    expect(a.next.starts).toEqual([iso(T0 - 1500), iso(T0)]);
  });
});

describe("per-type concurrency of one worker (memory)", () => {
  it("runs at most n tasks of a type at once while other types use the worker's other slots", async () => {
    const queue = new Queue({ storage: new MemoryStorage() });
    const runs: Record<string, { start: number; end: number }[]> = { slow: [], other: [] };
    const handler = (type: string) => async () => {
      const start = Date.now();
      await pause(80);
      runs[type]!.push({ start, end: Date.now() });
    };
    const worker = new Worker(queue, { ...fast, concurrency: 6, skipDoctor: true });
    worker.task("slow", handler("slow"), { concurrency: 2 });
    worker.task("other", handler("other"));
    await queue.submitMany([
      ...Array.from({ length: 8 }, () => ({ type: "slow", input: null })),
      ...Array.from({ length: 4 }, () => ({ type: "other", input: null })),
    ]);
    await worker.start();
    try {
      await until("every task ran", () => runs.slow!.length === 8 && runs.other!.length === 4);
    } finally {
      await worker.stop();
    }
    expect(maxOverlap(runs.slow!)).toBe(2);
    expect(maxOverlap([...runs.slow!, ...runs.other!])).toBeGreaterThan(2);
  });

  it("refuses a per-type concurrency that is not a whole number from 1 to 1000", () => {
    const worker = new Worker(new Queue({ storage: new MemoryStorage() }));
    for (const bad of [0, 1.5, 1001, Number.NaN])
      expect(() => worker.task("t", () => null, { concurrency: bad })).toThrow(ValidationError);
  });
});

for (const target of targets) {
  describe(`fleet-wide limits on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    const workers: Worker[] = [];
    const worker = (options: WorkerOptions = {}) => {
      const w = new Worker(queue, { ...fast, skipDoctor: true, ...options });
      workers.push(w);
      return w;
    };

    beforeEach(async () => {
      env = await target.create();
      queue = new Queue({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it("setLimits stores the limits in the type's limit object and lists the type in the manifest", async () => {
      expect(await queue.limits()).toEqual([]);
      const set = await queue.setLimits("video", { concurrency: 3 });
      expect(set).toEqual({
        type: "video",
        concurrency: 3,
        ratePerSecond: null,
        running: 0,
        recentStarts: 0,
      });
      await queue.setLimits("video", { ratePerSecond: 0.5 });
      expect((await queue.manifest()).limited).toEqual(["video"]);
      expect(await queue.limits("video")).toMatchObject([{ concurrency: 3, ratePerSecond: 0.5 }]);
      const stored = await env.storage.get(`${env.prefix}limits/video.json`);
      expect(JSON.parse(new TextDecoder().decode(stored.body))).toMatchObject({
        oq: "limit",
        type: "video",
        concurrency: 3,
        ratePerSecond: 0.5,
        holders: {},
      });
      await queue.setLimits("video", { concurrency: null, ratePerSecond: null });
      expect((await queue.manifest()).limited).toBeUndefined();
      expect(await queue.limits()).toEqual([]);
      for (const bad of [{ concurrency: 0 }, { ratePerSecond: 1.5 }, { ratePerSecond: -1 }])
        await expect(queue.setLimits("video", bad)).rejects.toThrow(ValidationError);
      // A rate whose window (1 / rate seconds) is Infinity stopped the type for good.
      await expect(queue.setLimits("video", { ratePerSecond: 5e-324 })).rejects.toThrow(
        /down to 1\/86400 .*one start a day/,
      );
      await queue.setLimits("video", { ratePerSecond: 1 / 86_400 });
      await queue.setLimits("video", { ratePerSecond: null });
      await expect(queue.setLimits("video", { speed: 1 } as never)).rejects.toThrow(
        /Unknown limit speed/,
      );
    });

    it("three workers never run more than the fleet limit of 2 at once, and free every slot", {
      timeout: 60_000,
    }, async () => {
      await queue.setLimits("video", { concurrency: 2 });
      const runs: { start: number; end: number }[] = [];
      for (let i = 0; i < 3; i++)
        worker({ concurrency: 3 }).task("video", async () => {
          const start = Date.now();
          await pause(400);
          runs.push({ start, end: Date.now() });
        });
      await queue.submitMany(Array.from({ length: 10 }, () => ({ type: "video", input: null })));
      await Promise.all(workers.map((w) => w.start()));
      await until("every task ran", () => runs.length === 10, 40_000);
      await Promise.all(workers.splice(0).map((w) => w.stop()));
      expect(maxOverlap(runs)).toBe(2);
      expect(await queue.limits("video")).toMatchObject([{ running: 0 }]);
      const stored = await env.storage.get(`${env.prefix}limits/video.json`);
      expect(JSON.parse(new TextDecoder().decode(stored.body)).holders).toEqual({});
    });

    it("a task running past its lease keeps its slot: renewals extend its holder first", {
      timeout: 60_000,
    }, async () => {
      await queue.setLimits("long", { concurrency: 1 });
      const runs: { start: number; end: number }[] = [];
      /** Lease tokens of the handlers running now. */
      const active = new Set<string>();
      for (let i = 0; i < 2; i++)
        worker({ leaseSeconds: 2 }).task("long", async (_input, ctx) => {
          const start = Date.now();
          active.add(ctx.task.lease!.token);
          // Runs two leases long, but stops at its signal (a lease lost on a slow machine).
          await sleep(4000, ctx.signal);
          active.delete(ctx.task.lease!.token);
          runs.push({ start, end: Date.now() });
        });
      const tasks = await queue.submitMany([0, 1].map(() => ({ type: "long", input: null })));
      await Promise.all(workers.map((w) => w.start()));
      // A handler running before and after a read of its slot holds it then, and its lease (read
      // before: the slot is extended before the lease) ends no later than its slot.
      let checked = 0;
      await until(
        "both tasks completed",
        async () => {
          const before = new Set(active);
          const read = await Promise.all(tasks.map((t) => queue.get(t.id)));
          const stored = await env.storage.get(`${env.prefix}limits/long.json`);
          const holders = JSON.parse(new TextDecoder().decode(stored.body)).holders;
          for (const task of read) {
            const token = task.lease?.token;
            if (token === undefined || !before.has(token) || !active.has(token)) continue;
            expect(
              holders[token],
              `the holder of ${task.id}'s attempt ${task.attempt}`,
            ).toBeDefined();
            expect(Date.parse(task.lease!.expiresAt)).toBeLessThanOrEqual(
              Date.parse(holders[token].until),
            );
            checked++;
          }
          return read.every((t) => t.status === "completed");
        },
        40_000,
      );
      expect(checked).toBeGreaterThan(5);
      // Without the holder's extension its slot would free a second after the first lease.
      expect(maxOverlap(runs)).toBe(1);
    });

    it("a slot taken by a claimer that died before its claim frees when the lease would have run out", {
      timeout: 60_000,
    }, async () => {
      await queue.setLimits("video", { concurrency: 1 });
      const task = await queue.submit("video", null);
      const q = internals(queue);
      await q.manifest.load();
      // A claimer added its holder and died before it wrote the claim.
      const diedAt = q.now();
      const answer = await q.limits.acquire(
        "video",
        { taskId: task.id, worker: "dead", token: "f".repeat(32) },
        () => ({ now: diedAt, until: diedAt + 1500 }),
      );
      expect("grant" in answer).toBe(true);
      let startedAt = 0;
      await worker()
        .task("video", () => {
          startedAt = q.now();
        })
        .start();
      expect((await queue.wait(task.id, { timeout: 20 })).status).toBe("completed");
      // Free once the dead claimer's lease would have run out (plus the takeover margin).
      expect(startedAt).toBeGreaterThanOrEqual(diedAt + 1500 + 1000);
    });

    it("three workers start at most R tasks of a rate-limited type per second", {
      timeout: 60_000,
    }, async () => {
      const rate = 4;
      await queue.setLimits("mail", { ratePerSecond: rate });
      const starts: number[] = [];
      for (let i = 0; i < 3; i++)
        worker({ concurrency: 4 }).task("mail", () => {
          starts.push(Date.now());
        });
      await queue.submitMany(Array.from({ length: 12 }, () => ({ type: "mail", input: null })));
      await Promise.all(workers.map((w) => w.start()));
      await until("every task ran", () => starts.length === 12, 40_000);
      // Starts are stamped before the claim is written; a handler starts up to a claim's write
      // later, so windows a tolerance shorter than a second are checked.
      expect(mostInWindow(starts, 1000 - 250)).toBeLessThanOrEqual(rate);
      expect(Math.max(...starts) - Math.min(...starts)).toBeGreaterThanOrEqual(2000 - 250);
    });
  });
}

/** A storage that records the key class (first path segment after the prefix) of each request. */
function byKey(inner: Storage): { storage: Storage; seen: string[] } {
  const seen: string[] = [];
  const counted = countRequests(inner);
  const storage = new Proxy(counted, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function" || typeof prop !== "string") return value;
      return (...args: unknown[]) => {
        const first = args[0];
        const key =
          typeof first === "string"
            ? first
            : ((first as { prefix?: string } | undefined)?.prefix ?? "");
        seen.push(`${prop} ${key.split("/")[0]}`);
        return value.apply(target, args);
      };
    },
  });
  return { storage, seen };
}

/** Requests of one worker draining `n` tasks of `type`, by kind, after `setup`. */
async function drainCost(
  type: string,
  n: number,
  setup: (queue: Queue) => Promise<void>,
): Promise<{ counts: Record<RequestKind, number>; limitRequests: string[] }> {
  const storage = countRequests(new MemoryStorage());
  const recorded = byKey(storage);
  const queue = new Queue({ storage: recorded.storage });
  await setup(queue);
  for (let i = 0; i < n; i++) await queue.submit(type, i);
  const worker = new Worker(queue, { ...fast, monitor: false, skipDoctor: true });
  worker.task(type, () => null);
  await internals(queue).manifest.load();
  storage.reset();
  recorded.seen.length = 0;
  expect(await worker.drain({ budgetMs: 10_000 })).toBe(n);
  return {
    counts: { ...storage.counts },
    limitRequests: recorded.seen.filter((s) => s.endsWith(" limits")),
  };
}

describe("what limits cost in requests (memory)", () => {
  it("a type without limits costs exactly as much as in a queue with no limits at all", async () => {
    const none = await drainCost("free", 10, async () => {});
    const other = await drainCost("free", 10, async (q) => {
      await q.setLimits("video", { concurrency: 1, ratePerSecond: 1 });
    });
    expect(other.counts).toEqual(none.counts);
    expect(other.limitRequests).toEqual([]);
  });

  it("a concurrency limit costs 2 GET and 2 PUT per task; a rate limit 1 GET and 1 PUT", async () => {
    const base = await drainCost("video", 10, async () => {});
    const capped = await drainCost("video", 10, async (q) => {
      await q.setLimits("video", { concurrency: 5 });
    });
    const rated = await drainCost("video", 10, async (q) => {
      await q.setLimits("video", { ratePerSecond: 1000 });
    });
    expect(capped.counts.GET - base.counts.GET).toBe(20);
    expect(capped.counts.PUT - base.counts.PUT).toBe(20);
    expect(rated.counts.GET - base.counts.GET).toBe(10);
    expect(rated.counts.PUT - base.counts.PUT).toBe(10);
    for (const c of [capped, rated])
      expect({ ...c.counts, GET: 0, PUT: 0 }).toEqual({ ...base.counts, GET: 0, PUT: 0 });
  });
});
