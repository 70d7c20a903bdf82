/**
 * Pausing a type (docs/protocol.md, "Pause"): a pause marker at the start of each partition,
 * which workers see first in the listing they make anyway. A running worker stops claiming the
 * type within one poll, its running task finishes, submits still work, and resume runs what
 * waited; nothing the index maintenance does deletes the marker.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { Worker } from "../src/worker/worker.ts";
import { keysUnder, type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";

describe.each(targets)("pause and resume on $name", (target) => {
  let env: TargetInstance;
  let queue: Queue;
  beforeEach(async () => {
    env = await target.create();
    queue = new Queue({ storage: env.storage, prefix: env.prefix });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("a running worker stops claiming within one poll, its running task finishes, resume runs the rest", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const started: string[] = [];
    const worker = new Worker(queue, { ...fast, concurrency: 1, skipDoctor: true }).task(
      "job",
      async (input) => {
        started.push(input as string);
        if (input === "first") await gate;
      },
    );
    const first = await queue.submit("job", "first");
    worker.start();
    try {
      await until("the first task runs", () => started.length === 1);
      await queue.pause("job");
      expect(await queue.isPaused("job")).toBe(true);
      const waiting = await queue.submitMany([
        { type: "job", input: "second" },
        { type: "job", input: "third" },
      ]);
      // Every listing that starts after the pause sees the marker: wait for two more of them.
      const polls = worker.stats.polls;
      release();
      await until("the running task finishes", async () => {
        return (await queue.get(first.id))?.status === "completed";
      });
      await until("two more polls", () => worker.stats.polls >= polls + 2);
      expect(started).toEqual(["first"]);
      for (const t of waiting) expect((await queue.get(t.id))?.status).toBe("pending");
      const stats = await queue.stats({ types: ["job"] });
      expect(stats.types[0]).toMatchObject({ type: "job", paused: true });

      await queue.resume("job");
      expect(await queue.isPaused("job")).toBe(false);
      await until("the waiting tasks run", () => started.length === 3);
      expect(started.slice(1).sort()).toEqual(["second", "third"]);
    } finally {
      release();
      await worker.stop();
    }
  });

  it("drain() leaves a paused type's tasks waiting, and runs them once resumed", async () => {
    await queue.submitMany([1, 2, 3].map((n) => ({ type: "job", input: n })));
    await queue.submit("other", 0);
    await queue.pause("job");
    const worker = () =>
      new Worker(queue, { ...fast, skipDoctor: true })
        .task("job", async () => {})
        .task("other", async () => {});
    expect(await worker().drain({ budgetMs: 30_000 })).toBe(1);
    await queue.resume("job");
    expect(await worker().drain({ budgetMs: 30_000 })).toBe(3);
  });

  it("pauses every shard of a split type, and the shards added while paused", async () => {
    await queue.setShards("video", 2);
    await queue.pause("video");
    await queue.setShards("video", 4);
    const q = internals(queue);
    const markers = (await keysUnder(env.storage, q.keys.readyType("video"))).sort();
    expect(markers).toEqual([0, 1, 2, 3].map((part) => q.keys.pauseMarker("video", part)));
    await queue.submitMany(Array.from({ length: 8 }, (_, i) => ({ type: "video", input: i })));
    const worker = () =>
      new Worker(queue, { ...fast, skipDoctor: true }).task("video", async () => {});
    expect(await worker().drain({ budgetMs: 30_000 })).toBe(0);
    await queue.resume("video");
    expect(await keysUnder(env.storage, q.keys.readyType("video"))).toHaveLength(8);
    expect(await worker().drain({ budgetMs: 30_000 })).toBe(8);
  });

  it("a listing resumed deep in a partition still stops at its pause marker", async () => {
    const q = internals(queue);
    const tasks = await queue.submitMany([1, 2, 3].map((n) => ({ type: "job", input: n })));
    await queue.pause("job");
    const first = (await queue.get(tasks[0]!.id))!.marker!;
    const progress = { capped: false, pages: 0, paused: false };
    const listed = [];
    for await (const m of q.markers({
      prefix: q.keys.partition("job", 0),
      startAfter: q.keys.full(first),
      stopAtPause: true,
      progress,
    }))
      listed.push(m);
    expect(listed).toEqual([]);
    expect(progress).toMatchObject({ paused: true, pages: 1 });
  });
});

describe("the pause marker and index maintenance", () => {
  it("repair, the monitor's sweep and listings never take it for a stale marker", async () => {
    let now = Date.UTC(2026, 10, 30, 12, 0, 0);
    const storage = new MemoryStorage({ now: () => now });
    const queue = new Queue({ storage, now: () => now });
    const q = internals(queue);
    await queue.submit("job", 1);
    await queue.pause("job");
    now += 3_600_000; // far past the stale-marker grace
    const report = await queue.repair();
    expect(report).toMatchObject({ staleMarkersDeleted: 0 });
    // A worker with a monitor lists the paused partition (and would sweep junk found there).
    const worker = new Worker(queue, { ...fast, skipDoctor: true, monitor: true }).task(
      "job",
      async () => {},
    );
    expect(await worker.drain({ budgetMs: 10_000 })).toBe(0);
    expect(await queue.isPaused("job")).toBe(true);
    expect((await queue.list({ status: "pending" })).tasks).toHaveLength(1);
    expect(await keysUnder(storage, q.keys.pauseMarker("job", 0))).toHaveLength(1);
  });
});

describe("cost of pause", () => {
  it("an idle worker spends one request per poll when nothing is paused", async () => {
    const storage = countRequests(new MemoryStorage());
    const queue = new Queue({ storage });
    await queue.submit("other", 1); // a type nobody here runs
    const worker = new Worker(queue, { ...fast, skipDoctor: true, monitor: false }).task(
      "job",
      async () => {},
    );
    worker.start();
    await until("a few idle polls", () => worker.stats.polls >= 5);
    storage.reset();
    const polls = worker.stats.polls;
    await until("ten more polls", () => worker.stats.polls >= polls + 10);
    const counted = { ...storage.counts };
    const pollsCounted = worker.stats.polls - polls;
    await worker.stop();
    expect(counted.LIST).toBeLessThanOrEqual(pollsCounted + 1);
    expect(counted.GET + counted.HEAD + counted.PUT).toBe(0);
  });
});
