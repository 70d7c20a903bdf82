/** The poller part: which markers a listing yields, the order candidates are tried in, claims. */

import { describe, expect, it, onTestFinished, vi } from "vitest";
import { internals } from "../../src/queue/internals.ts";
import type { Queue } from "../../src/queue/queue.ts";
import type { Versioned } from "../../src/queue/types.ts";
import type { MemoryStorage } from "../../src/storage/memory.ts";
import { claimTask, renewLease } from "../../src/task/transitions.ts";
import { ClaimProbes } from "../../src/worker/claim-probes.ts";
import { ClaimLimits } from "../../src/worker/limits.ts";
import { Monitor } from "../../src/worker/monitor.ts";
import type { HandlerEntry } from "../../src/worker/options.ts";
import { nextIdlePause } from "../../src/worker/poll-pause.ts";
import { Poller } from "../../src/worker/poller.ts";
import { STEAL_AFTER_MS } from "../../src/worker/poller-settings.ts";
import { pause } from "../helpers/wait.ts";
import { memoryQueue, recordReads, shared } from "./helpers.ts";

/** A poller on `queue` that handles type `t`; claims are recorded, not run. */
function poller(
  queue: Queue,
  options: {
    concurrency?: number;
    mine?: (id: string) => boolean;
    alone?: () => boolean;
    minPollMs?: number;
    onContended?: () => void;
    quickHandlers?: () => boolean;
  } = {},
) {
  const s = shared(queue);
  const running = new Map<string, Versioned>();
  const handlers = new Map<string, HandlerEntry>([["t", { handler: () => null, options: {} }]]);
  const started: string[] = [];
  const p = new Poller(internals(queue), {
    workerId: "w1",
    concurrency: options.concurrency ?? 10,
    leaseSeconds: 60,
    minPollMs: options.minPollMs ?? 10,
    maxPollMs: 100,
    listReuseMs: 60_000,
    handlers,
    running,
    skip: s.skip,
    monitor: new Monitor(internals(queue), { enabled: true, ...s }),
    mine: options.mine ?? (() => true),
    alone: options.alone ?? (() => true),
    ...(options.onContended === undefined ? {} : { onContended: options.onContended }),
    probes: new ClaimProbes(internals(queue), s.emit),
    limits: new ClaimLimits(internals(queue), {
      workerId: "w1",
      handlers,
      runningOf: () => 0,
      minPollMs: 10,
      maxPollMs: 100,
    }),
    stats: s.stats,
    emit: s.emit,
    quickHandlers: options.quickHandlers ?? (() => false),
    isRunning: () => true,
    start: (claimed) => {
      running.set(claimed.task.id, claimed);
      started.push(claimed.task.id);
    },
    onUnsafe: () => {},
  });
  return { poller: p, started, running, ...s };
}

describe("Poller", () => {
  it("an idle poll spent on a monitor step does not lengthen the pause (latency p99 5.8 s)", () => {
    expect(nextIdlePause(250, true, 6000)).toBe(250);
    expect(nextIdlePause(250, false, 6000)).toBe(500);
    expect(nextIdlePause(4000, false, 6000)).toBe(6000);
  });

  it("a quiet worker still lists its own partitions every other poll while its monitor's round has many steps (soak stall)", async () => {
    const { queue } = memoryQueue();
    // Ten types nobody here runs: the round gets a step for each of their partitions.
    await queue.submitMany(Array.from({ length: 10 }, (_, i) => ({ type: `other${i}`, input: i })));
    const { poller: p, started } = poller(queue);
    expect(await p.pass()).toBe(0); // nothing of ours: the worker is quiet now
    const mine = await queue.submit("t", 1);
    for (let i = 0; i < 2 && started.length === 0; i++) await p.pass();
    expect(started).toEqual([mine.id]);
  });

  it("a starting worker's first pass lists its partitions before its monitor's first step (start to first claim)", async () => {
    const { queue, storage } = memoryQueue();
    const task = await queue.submit("t", 1);
    const requests: string[] = [];
    const get = storage.get.bind(storage);
    storage.get = (key, options) => {
      requests.push(`get ${key}`);
      return get(key, options);
    };
    const list = storage.list.bind(storage);
    storage.list = (options) => {
      requests.push(`list ${options?.prefix ?? ""}`);
      return list(options);
    };
    const { poller: p, started } = poller(queue);
    expect(await p.pass()).toBe(1);
    expect(started).toEqual([task.id]);
    // The monitor's round begins by reading the manifest again: not before the first claim.
    expect(requests[0]).toBe(`list ${queue.keys.partition("t", 0)}`);
    expect(requests).not.toContain(`get ${queue.keys.manifest}`);
    // The next listing takes the step.
    await pause(20);
    await p.list();
    expect(requests).toContain(`get ${queue.keys.manifest}`);
  });

  it("lists again after a read finds a task taken since its listing, instead of reading the rest of the stale page (8-worker GETs)", async () => {
    const { queue, storage } = memoryQueue();
    await queue.submitMany([1, 2, 3, 4].map((input) => ({ type: "t", input })));
    const { poller: p, started } = poller(queue);
    await p.list();
    const order = p.candidates.map((m) => m.id);
    // Another worker finishes the two oldest after our listing.
    await queue.cancel(order[0]!);
    await queue.cancel(order[1]!);
    const read = recordReads(storage);
    await pause(20); // older than minPollMs: a new listing is allowed
    await p.pass();
    expect(read).toContain(queue.keys.task(order[0]!));
    expect(read).not.toContain(queue.keys.task(order[1]!));
    expect(started.sort()).toEqual([order[2]!, order[3]!].sort());
  });

  it("lists again after a read finds a task moved to another worker's lease marker since its listing (end-of-backlog GETs)", async () => {
    const { queue, storage } = memoryQueue();
    await queue.submitMany([1, 2, 3, 4].map((input) => ({ type: "t", input })));
    const { poller: p, started } = poller(queue);
    await p.list();
    const order = p.candidates.map((m) => m.id);
    // Another worker claims the two oldest after our listing, and a second later their markers
    // move to its leases' expiry: the tasks no longer name the markers we listed.
    for (const id of order.slice(0, 2)) {
      const found = (await queue.read(id))!;
      const claim = claimTask(found.task, {
        workerId: "w2",
        token: "tok",
        leaseMs: 60_000,
        now: queue.now(),
      });
      await internals(queue).write(found, claim);
      await internals(queue).update(id, (t) => renewLease(t, "tok", 60_000, queue.now()));
    }
    const read = recordReads(storage);
    await pause(20); // older than minPollMs: a new listing is allowed
    await p.pass();
    expect(read).toContain(queue.keys.task(order[0]!));
    expect(read).not.toContain(queue.keys.task(order[1]!));
    expect(started.sort()).toEqual([order[2]!, order[3]!].sort());
  });

  it("a thief whose steal finds a task taken since its listing, and may not list again, leaves the other shares of that listing to the next (8-worker end-of-backlog GETs)", async () => {
    const { queue, storage, advance } = memoryQueue();
    const own = await queue.submit("t", "own");
    const others = await queue.submitMany([1, 2, 3, 4].map((input) => ({ type: "t", input })));
    advance(STEAL_AFTER_MS + 1000);
    // minPollMs far off: no new listing within this pass.
    const { poller: p, started } = poller(queue, {
      mine: (id) => id === own.id,
      minPollMs: 60_000,
    });
    await p.list();
    expect(p.candidates).toHaveLength(5);
    // Their owners finish the other shares' tasks after our listing.
    for (const task of others) await queue.cancel(task.id);
    const read = recordReads(storage);
    expect(await p.pass()).toBe(1);
    expect(started).toEqual([own.id]);
    // Its own task, then one stale steal: not the other three.
    expect(read.filter((key) => key.startsWith(queue.keys.tasks))).toHaveLength(2);
    expect(p.candidates).toEqual([]);
  });

  it("looks for peers when another worker took a task of its own share, not when a steal lost (8-worker workers/ LISTs)", async () => {
    const { queue, advance } = memoryQueue();
    const [own, other] = await queue.submitMany([1, 2].map((input) => ({ type: "t", input })));
    advance(STEAL_AFTER_MS + 1000);
    let looks = 0;
    const { poller: p } = poller(queue, {
      mine: (id) => id === own!.id,
      minPollMs: 60_000,
      onContended: () => looks++,
    });
    await p.list();
    // Another worker claims both after our listing.
    for (const task of [other!, own!]) {
      const found = (await queue.read(task.id))!;
      const claim = claimTask(found.task, {
        workerId: "w2",
        token: "tok",
        leaseMs: 60_000,
        now: queue.now(),
      });
      await internals(queue).write(found, claim);
    }
    expect(await p.pass()).toBe(0);
    expect(looks).toBe(1);
  });

  it("lists only due markers, and not those of tasks it runs", async () => {
    const { queue } = memoryQueue();
    const due = await queue.submit("t", 1);
    const running = await queue.submit("t", 2);
    await queue.submit("t", 3, { delay: 60 });
    const { poller: p, running: map } = poller(queue);
    map.set(running.id, (await queue.read(running.id))!);
    await p.list();
    expect(p.candidates.map((m) => m.id)).toEqual([due.id]);
  });

  it("claims every due task it has a handler for in one pass", async () => {
    const { queue } = memoryQueue();
    const a = await queue.submit("t", 1);
    const b = await queue.submit("t", 2);
    const { poller: p, started, stats } = poller(queue);
    expect(await p.pass()).toBe(2);
    expect(started.sort()).toEqual([a.id, b.id].sort());
    for (const id of started) expect((await queue.read(id))!.task.status).toBe("running");
    expect(stats.polls).toBe(1);
  });

  it("takes its own share first, then steals tasks due long enough, newest first", async () => {
    const { queue, advance } = memoryQueue();
    const others1 = await queue.submit("t", "other, oldest");
    advance(1000);
    const others2 = await queue.submit("t", "other, newer");
    advance(1000);
    const own = await queue.submit("t", "own, newest");
    advance(STEAL_AFTER_MS + 1000);
    // Stealing starts at a random point of the newest-first order: here its start.
    Object.defineProperty(internals(queue), "random", { value: () => 0 });
    const { poller: p, started } = poller(queue, { mine: (id) => id === own.id });
    expect(await p.pass()).toBe(3);
    expect(started).toEqual([own.id, others2.id, others1.id]);
  });

  it("steals from a random point, so workers whose shares ran dry do not all read the newest task", async () => {
    const { queue, advance } = memoryQueue();
    const others: string[] = [];
    for (let i = 0; i < 4; i++) {
      others.push((await queue.submit("t", i)).id);
      advance(1000);
    }
    advance(STEAL_AFTER_MS);
    Object.defineProperty(internals(queue), "random", { value: () => 0.5 });
    const { poller: p, started } = poller(queue, { mine: () => false, concurrency: 4 });
    expect(await p.pass()).toBe(4);
    // Newest first is 3, 2, 1, 0; from the middle on: 1, 0, then 3, 2.
    expect(started).toEqual([others[1], others[0], others[3], others[2]]);
  });

  it("does not steal a task due for less than 3 s while its own share gave work", async () => {
    const { queue } = memoryQueue();
    const own = await queue.submit("t", "own");
    const other = await queue.submit("t", "other");
    const { poller: p, started } = poller(queue, { mine: (id) => id === own.id });
    expect(await p.pass()).toBe(1);
    expect(started).toEqual([own.id]);
    // With nothing of its own left, it takes anything.
    expect(await p.pass()).toBe(1);
    expect(started).toEqual([own.id, other.id]);
  });

  it("reads one page a poll and resumes after the last key read", async () => {
    const setup = memoryQueue((s: MemoryStorage) => {
      const list = s.list.bind(s);
      return Object.assign(s, {
        list: (o: Parameters<MemoryStorage["list"]>[0]) => list({ ...o, maxKeys: 2 }),
      });
    });
    const { queue } = setup;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await queue.submit("t", i)).id);
    const { poller: p } = poller(queue);
    const partition = queue.keys.partition("t", 0);
    const seen: string[] = [];
    for (const size of [2, 2, 2]) {
      await p.list();
      const keys = p.candidates.map((m) => m.key);
      expect(keys).toHaveLength(size);
      expect(p.resumeAfter(partition)).toBe(keys.at(-1));
      seen.push(...keys);
    }
    await p.list();
    expect(p.candidates).toHaveLength(1);
    expect(p.resumeAfter(partition)).toBeUndefined();
    seen.push(p.candidates[0]!.key);
    expect(new Set(seen).size).toBe(7);
  });

  it("never lists or reads the partitions of types it has no handler for", async () => {
    const lists: string[] = [];
    const gets: string[] = [];
    const { queue } = memoryQueue((s: MemoryStorage) => {
      const list = s.list.bind(s);
      const get = s.get.bind(s);
      return Object.assign(s, {
        list: (o: Parameters<MemoryStorage["list"]>[0]) => {
          lists.push(o?.prefix ?? "");
          return list(o);
        },
        get: (key: string, o?: Parameters<MemoryStorage["get"]>[1]) => {
          gets.push(key);
          return get(key, o);
        },
      });
    });
    await queue.submitMany(
      Array.from({ length: 20 }, (_, i) => ({ type: `other${i % 4}`, input: i })),
    );
    const mine = await queue.submit("t", 1);
    const { poller: p, started } = poller(queue);
    lists.length = 0;
    gets.length = 0;
    expect(await p.pass()).toBe(1);
    expect(started).toEqual([mine.id]);
    expect(gets.filter((k) => k.startsWith(queue.keys.tasks))).toEqual([queue.keys.task(mine.id)]);
    expect(lists.filter((prefix) => prefix.startsWith(queue.keys.ready))).toEqual([
      queue.keys.partition("t", 0),
    ]);
  });

  it("lists every shard of a split type, starting at different shards on different workers", async () => {
    const { queue } = memoryQueue();
    await internals(queue).manifest.setShards("t", 4);
    const tasks = await queue.submitMany(
      Array.from({ length: 40 }, (_, i) => ({ type: "t", input: i })),
    );
    const parts = new Set(
      tasks.map((t) => queue.keys.parseReadyMarker(queue.keys.full(t.marker!))!.part),
    );
    expect([...parts].sort()).toEqual([0, 1, 2, 3]);
    const { poller: p, started } = poller(queue, { concurrency: 100 });
    expect(p.partitions()).toEqual([0, 1, 2, 3].map((i) => queue.keys.partition("t", i)));
    p.relist();
    let claimed = 0;
    for (let i = 0; i < 4; i++) claimed += await p.pass();
    expect(claimed).toBe(40);
    expect(new Set(started).size).toBe(40);
  });

  it("takes oldest first until another worker shows up at its tasks, then, seeing no peers yet, from a random point", async () => {
    // The clock stands still. On the wall clock, a first pass whose contended read came 10 ms
    // (minPollMs) or more after its listing (a loaded run) listed again, and the new walk, after
    // contention, rightly started from the random point: tasks[5], not tasks[1].
    vi.useFakeTimers({ toFake: ["Date"] });
    onTestFinished(() => void vi.useRealTimers());
    const { queue } = memoryQueue();
    const tasks: string[] = [];
    for (let i = 0; i < 10; i++) {
      const scheduleAt = new Date(queue.now() - (10 - i) * 1000);
      tasks.push((await queue.submit("t", i, { scheduleAt })).id);
    }
    // Another worker claimed the oldest; this one does not know it exists.
    const taken = (await queue.read(tasks[0]!))!;
    await internals(queue).write(
      taken,
      claimTask(taken.task, { workerId: "other", token: "x", leaseMs: 60_000, now: queue.now() }),
    );
    Object.defineProperty(internals(queue), "random", { value: () => 0.5 });
    const { poller: p, started, running } = poller(queue, { concurrency: 1 });
    expect(await p.pass()).toBe(1);
    expect(started).toEqual([tasks[1]]);
    running.clear();
    expect(await p.pass()).toBe(1);
    // Candidates left: tasks 2..9; from the middle of the listing (tasks 0..9) on.
    expect(started[1]).toBe(tasks[5]);
    const { poller: known, started: knownStarted } = poller(queue, {
      concurrency: 1,
      alone: () => false,
    });
    await known.pass();
    expect(knownStarted).toEqual([tasks[2]]);
  });

  it("stops claiming at its concurrency", async () => {
    const { queue } = memoryQueue();
    for (let i = 0; i < 3; i++) await queue.submit("t", i);
    const { poller: p, started } = poller(queue, { concurrency: 2 });
    expect(await p.pass()).toBe(2);
    expect(started).toHaveLength(2);
  });
});
