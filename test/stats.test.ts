/**
 * `queue.stats()`: live counts from the ready index, finished counts from the buckets workers
 * write in their heartbeats (and a stopped worker's file), the hour and day windows, and a cost
 * that does not depend on the number of finished tasks.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { addWindows, FinishedCounter, type FinishedWindows } from "../src/queue/finished-counts.ts";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import type { TypeStats } from "../src/queue/stats.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { claimTask, completeTask, renewLease } from "../src/task/transitions.ts";
import { newStats } from "../src/worker/events.ts";
import { PermanentError } from "../src/worker/options.ts";
import { Peers } from "../src/worker/peers.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";

const HOUR = 3_600_000;

const of = (types: TypeStats[], type: string) => types.find((t) => t.type === type);

/** Submit a task and make it running with its marker moved to its lease expiry (`.lease`). */
async function runningTask(queue: Queue, type: string): Promise<void> {
  const q = internals(queue);
  const task = await queue.submit(type, {});
  const found = (await queue.read(task.id))!;
  const claim = claimTask(found.task, {
    workerId: "w",
    token: "tok",
    leaseMs: 60_000,
    now: queue.now(),
  });
  const claimed = (await q.write(found, claim))!;
  await q.update(task.id, (t) => renewLease(t, "tok", 60_000, queue.now()), claimed);
}

describe.each(targets)("queue.stats() on $name", (target) => {
  let env: TargetInstance;
  beforeEach(async () => {
    env = await target.create();
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("counts pending due and delayed, and running tasks, from the ready index", async () => {
    const queue = new Queue({ storage: env.storage, prefix: env.prefix });
    await queue.submitMany([
      { type: "email" },
      { type: "email" },
      { type: "email" },
      { type: "email", options: { delay: 3600 } },
      { type: "email", options: { delay: 7200 } },
      { type: "report" },
    ]);
    await runningTask(queue, "report");
    await runningTask(queue, "report");
    const stats = await queue.stats();
    expect(stats.types.map((t) => t.type)).toEqual(["email", "report"]);
    expect(of(stats.types, "email")).toMatchObject({
      pending: { due: 3, delayed: 2 },
      running: 0,
      capped: false,
    });
    expect(of(stats.types, "email")!.oldestDueAgeMs).toBeGreaterThanOrEqual(0);
    expect(of(stats.types, "report")).toMatchObject({
      pending: { due: 1, delayed: 0 },
      running: 2,
    });
    expect(stats.capped).toBe(false);
    // 1 LIST for the types, 1 per type's markers, 2 for heartbeats; no heartbeat to read.
    expect(stats.requests).toEqual({ LIST: 5, GET: 0 });

    const only = await queue.stats({ types: ["report"] });
    expect(only.types.map((t) => t.type)).toEqual(["report"]);
    expect(only.requests).toEqual({ LIST: 3, GET: 0 });
  });

  it("counts what each drain() finished (a cron-triggered worker writes no heartbeats)", async () => {
    const queue = new Queue({ storage: env.storage, prefix: env.prefix });
    // Each cron tick drains with a new worker object, as examples/cloudflare does.
    const tick = () =>
      new Worker(queue, { ...fast, heartbeatSeconds: 60, skipDoctor: true }).task(
        "email",
        async () => {},
      );
    await queue.submitMany([{}, {}, {}].map((input) => ({ type: "email", input })));
    expect(await tick().drain({ budgetMs: 20_000 })).toBe(3);
    const after = (await queue.stats()).types.find((t) => t.type === "email");
    expect(after?.finished.lastHour.completed).toBe(3);
    await queue.submitMany([{}, {}].map((input) => ({ type: "email", input })));
    expect(await tick().drain({ budgetMs: 20_000 })).toBe(2);
    const again = (await queue.stats()).types.find((t) => t.type === "email");
    expect(again?.finished.lastHour.completed).toBe(5);
  });

  it("sums finished counts over live workers' heartbeats and a stopped worker's file", async () => {
    const queue = new Queue({ storage: env.storage, prefix: env.prefix });
    const options = { ...fast, heartbeatSeconds: 1, skipDoctor: true };
    const first = new Worker(queue, { ...options, id: "first" })
      .task("email", async (input: { fail?: boolean }) => {
        if (input.fail) throw new PermanentError("no");
      })
      .task("report", async () => {});
    await queue.submitMany([
      { type: "email", input: {} },
      { type: "email", input: {} },
      { type: "email", input: { fail: true } },
      { type: "report", input: {} },
    ]);
    await first.start();
    await until(
      "the first worker finished 4 tasks",
      () => first.stats.completed + first.stats.failed === 4,
    );
    await first.stop();
    const stopped = await env.storage.list({ prefix: queue.keys.stoppedWorkers });
    expect(stopped.objects).toHaveLength(1);
    expect(await env.storage.list({ prefix: queue.keys.worker("first") })).toMatchObject({
      objects: [],
    });

    const second = new Worker(queue, { ...options, id: "second" }).task("email", async () => {});
    await queue.submit("email", {});
    await second.start();
    try {
      await until("the second worker's heartbeat counts its task", async () => {
        const email = of((await queue.stats()).types, "email");
        return email?.finished.lastHour.completed === 3;
      });
      const stats = await queue.stats();
      expect(of(stats.types, "email")!.finished).toEqual({
        lastHour: { completed: 3, failed: 1, cancelled: 0, expired: 0 },
        lastDay: { completed: 3, failed: 1, cancelled: 0, expired: 0 },
      });
      expect(of(stats.types, "report")!.finished.lastDay.completed).toBe(1);
      // 1 LIST for the types, 1 per type still listed (MinIO lists a prefix whose keys were
      // all deleted in a versioned bucket), 2 for the files; 1 GET per file.
      expect(stats.requests.GET).toBe(2);
      expect(stats.requests.LIST).toBeGreaterThanOrEqual(3);
      expect(stats.requests.LIST).toBeLessThanOrEqual(5);
    } finally {
      await second.stop();
    }
  });
});

describe("queue.stats() windows", () => {
  /** A memory queue at a time the test moves, starting 10 minutes into an hour. */
  function clocked() {
    const clock = { now: Date.UTC(2026, 10, 30, 12, 10) };
    const storage = countRequests(new MemoryStorage({ now: () => clock.now }));
    const queue = new Queue({ storage, now: () => clock.now });
    return { clock, storage, queue };
  }

  it("counts a finished task in the last hour and day, then only the day, then neither", async () => {
    const { clock, queue } = clocked();
    const finished = new FinishedCounter(() => clock.now);
    const peers = new Peers(internals(queue), "w", 60, () => ({
      types: ["email"],
      concurrency: 1,
      active: [],
      startedAt: 0,
      stats: newStats(),
      finished,
    }));
    finished.record({
      type: "email",
      status: "completed",
      finishedAt: new Date(clock.now).toISOString(),
    });
    finished.record({
      type: "email",
      status: "expired",
      finishedAt: new Date(clock.now).toISOString(),
    });
    await peers.heartbeat();
    const email = async () => of((await queue.stats()).types, "email")!.finished;

    clock.now += 30 * 60_000;
    expect(await email()).toEqual({
      lastHour: { completed: 1, failed: 0, cancelled: 0, expired: 1 },
      lastDay: { completed: 1, failed: 0, cancelled: 0, expired: 1 },
    });
    clock.now += 2 * HOUR;
    expect((await email()).lastHour.completed).toBe(0);
    expect((await email()).lastDay.completed).toBe(1);
    // The heartbeat is older than 25 hours: not even read.
    clock.now += 24 * HOUR;
    const stats = await queue.stats();
    expect(stats.types).toEqual([]);
    expect(stats.requests.GET).toBe(0);
  });

  it("lists the workers whose heartbeats it reads, without a request more; stale ones marked", async () => {
    const { clock, queue } = clocked();
    const peers = (id: string) =>
      new Peers(internals(queue), id, 60, () => ({
        types: ["email"],
        concurrency: 2,
        active: [],
        startedAt: 0,
        stats: newStats(),
        finished: new FinishedCounter(() => clock.now),
      }));
    await peers("w-old").heartbeat();
    clock.now += 5 * 60_000;
    await peers("w-new").heartbeat();
    const stats = await queue.stats();
    expect(stats.workers.map((w) => [w.id, w.stale, w.concurrency])).toEqual([
      ["w-new", false, 2],
      ["w-old", true, 2],
    ]);
    // 1 LIST for the types, 2 for the heartbeats, 1 GET per heartbeat: as before.
    expect(stats.requests).toEqual({ LIST: 3, GET: 2 });
  });

  it("averages throughput over whole minutes before the current one", () => {
    const now = Date.UTC(2026, 10, 30, 12, 10, 30);
    const counter = new FinishedCounter(() => now);
    const at = (msAgo: number) => new Date(now - msAgo).toISOString();
    // 20 in the 10 minutes before this one, 5 in this minute, 7 eleven minutes ago.
    for (let i = 0; i < 20; i++)
      counter.record({
        type: "t",
        status: i % 2 ? "completed" : "failed",
        finishedAt: at(60_000 + i * 25_000),
      });
    for (let i = 0; i < 5; i++)
      counter.record({ type: "t", status: "completed", finishedAt: at(1000) });
    for (let i = 0; i < 7; i++)
      counter.record({ type: "t", status: "completed", finishedAt: at(11 * 60_000) });
    const into = new Map<string, FinishedWindows>();
    addWindows(into, counter.snapshot(now), now, 10);
    expect(into.get("t")!.recent).toBe(20);
    expect(into.get("t")!.lastHour.completed + into.get("t")!.lastHour.failed).toBe(32);
  });

  it("reports finished counts minute by minute and hour by hour, the current one last", () => {
    const now = Date.UTC(2026, 10, 30, 12, 10, 30);
    const counter = new FinishedCounter(() => now);
    const record = (msAgo: number, status: "completed" | "failed") =>
      counter.record({ type: "t", status, finishedAt: new Date(now - msAgo).toISOString() });
    record(1000, "completed");
    record(5 * 60_000, "failed");
    record(5 * 60_000, "failed");
    record(3 * HOUR, "completed");
    const into = new Map<string, FinishedWindows>();
    addWindows(into, counter.snapshot(now), now, 10);
    const t = into.get("t")!;
    expect(t.minutes).toHaveLength(60);
    expect(t.minutes[59]).toEqual({ completed: 1, failed: 0, cancelled: 0, expired: 0 });
    expect(t.minutes[54]!.failed).toBe(2);
    expect(t.minutes.reduce((n, m) => n + m.completed + m.failed, 0)).toBe(3);
    expect(t.hours).toHaveLength(24);
    expect(t.hours[23]).toEqual({ completed: 1, failed: 2, cancelled: 0, expired: 0 });
    expect(t.hours[20]!.completed).toBe(1);
  });

  it("keeps a bounded number of buckets", () => {
    let now = Date.UTC(2026, 10, 30);
    const counter = new FinishedCounter(() => now);
    for (let i = 0; i < 48 * 60; i++) {
      counter.record({ type: "t", status: "completed", finishedAt: new Date(now).toISOString() });
      now += 60_000;
    }
    const snapshot = counter.snapshot(now);
    expect(Object.keys(snapshot.minutes).length).toBeLessThanOrEqual(61);
    expect(Object.keys(snapshot.hours).length).toBeLessThanOrEqual(25);
  });

  it("costs the same requests with 0 and 2,000 finished tasks", async () => {
    const { clock, storage, queue } = clocked();
    const finished = new FinishedCounter(() => clock.now);
    const peers = new Peers(internals(queue), "w", 60, () => ({
      types: ["email"],
      concurrency: 1,
      active: [],
      startedAt: 0,
      stats: newStats(),
      finished,
    }));
    await peers.heartbeat();
    await queue.submit("email", {});
    storage.reset();
    const before = await queue.stats();
    const costBefore = storage.total();
    expect(before.requests.LIST + before.requests.GET).toBe(costBefore);

    const q = internals(queue);
    for (let i = 0; i < 2000; i++) {
      const task = await queue.submit("email", {});
      const found = (await queue.read(task.id))!;
      const claimed = (await q.write(
        found,
        claimTask(found.task, { workerId: "w", token: "tok", leaseMs: 60_000, now: clock.now }),
      ))!;
      const done = (await q.write(claimed, completeTask(claimed.task, "tok", null, clock.now)))!;
      finished.record(done.task);
    }
    await q.flush();
    await peers.heartbeat();
    storage.reset();
    const after = await queue.stats();
    expect(storage.total()).toBe(costBefore);
    expect(after.requests).toEqual(before.requests);
    expect(of(after.types, "email")!.finished.lastHour.completed).toBe(2000);
    expect(of(after.types, "email")!.pending.due).toBe(1);
  });

  it("reports a type with more markers than it reads as capped, with lower bounds", async () => {
    const storage = new MemoryStorage();
    const queue = new Queue({ storage });
    await queue.submitMany(Array.from({ length: 30 }, () => ({ type: "t" })));
    // The memory store pages at 1,000 keys: wrap list to page at 10 so the cap is reachable.
    const list = storage.list.bind(storage);
    storage.list = (o) => list({ ...o, maxKeys: 10 });
    const stats = await queue.stats({ maxPagesPerType: 2 });
    expect(of(stats.types, "t")).toMatchObject({ pending: { due: 20, delayed: 0 }, capped: true });
    expect(stats.capped).toBe(true);
  });
});
