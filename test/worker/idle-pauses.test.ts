/**
 * An idle worker's pauses between polls: doubling to `maxPollMs`, and, for a worker with live
 * peers, the first pause at the ceiling lengthened at random, so workers that went idle together
 * do not poll in step, and no minute holds more polls than before.
 * Fake timers: listing times are exact.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import type { ListOptions, Storage } from "../../src/storage/storage.ts";
import { IdlePauses } from "../../src/worker/poll-pause.ts";
import { Worker } from "../../src/worker/worker.ts";

/** The pauses `pauses` gives for `n` idle polls in a row. */
function take(pauses: IdlePauses, n: number, steppedOnly = false): number[] {
  return Array.from({ length: n }, () => {
    const ms = pauses.ms;
    pauses.advance(steppedOnly);
    return ms;
  });
}

describe("IdlePauses", () => {
  const alone = () => true;
  const withPeers = () => false;

  it("double to the ceiling; with peers, the first pause there is lengthened by random() times itself, the rest are whole", () => {
    const pauses = new IdlePauses(250, 6000, () => 0.5, withPeers);
    expect(take(pauses, 8)).toEqual([250, 500, 1000, 2000, 4000, 9000, 6000, 6000]);
    // Work found: the ramp starts over, and reaching the ceiling again spreads the phase again.
    pauses.reset();
    expect(take(pauses, 7)).toEqual([250, 500, 1000, 2000, 4000, 9000, 6000]);
  });

  it("a worker alone keeps the ramp as it was: nobody to be out of step with", () => {
    const pauses = new IdlePauses(250, 6000, () => 0.5, alone);
    expect(take(pauses, 8)).toEqual([250, 500, 1000, 2000, 4000, 6000, 6000, 6000]);
  });

  it("whether it has peers is asked when the ceiling is reached", () => {
    let peers = false;
    const pauses = new IdlePauses(
      250,
      6000,
      () => 0.25,
      () => !peers,
    );
    expect(take(pauses, 6)).toEqual([250, 500, 1000, 2000, 4000, 6000]);
    peers = true;
    pauses.reset();
    expect(take(pauses, 7)).toEqual([250, 500, 1000, 2000, 4000, 7500, 6000]);
  });

  it("a poll spent on a monitor step keeps the pause; random() = 0 keeps the ramp as it was", () => {
    const pauses = new IdlePauses(250, 6000, () => 0, withPeers);
    expect(take(pauses, 2, true)).toEqual([250, 250]);
    expect(take(pauses, 7)).toEqual([250, 500, 1000, 2000, 4000, 6000, 6000]);
  });

  it("minPollMs at the ceiling already: nothing to lengthen", () => {
    expect(take(new IdlePauses(500, 500, () => 0.9, withPeers), 3)).toEqual([500, 500, 500]);
  });

  it("no 60 s window holds more polls than the unshifted ramp's", () => {
    // Poll instants over 10 minutes, for random() across [0, 1): any window of a minute holds
    // at most as many as the same window of the ramp without a shift (the idle-cost budget).
    const instants = (r: number) => {
      const pauses = new IdlePauses(250, 6000, () => r, withPeers);
      const at = [0];
      while (at.at(-1)! < 600_000) {
        at.push(at.at(-1)! + pauses.ms);
        pauses.advance(false);
      }
      return at;
    };
    const inWindow = (at: number[], from: number) =>
      at.filter((t) => t >= from && t < from + 60_000).length;
    const plain = instants(0);
    for (const r of [0.01, 0.2, 0.5, 0.77, 0.99])
      for (let from = 0; from < 500_000; from += 250)
        expect(inWindow(instants(r), from)).toBeLessThanOrEqual(inWindow(plain, from));
  });
});

/**
 * `storage` as one worker's client, noting the (fake) time of each listing of its ready index in
 * `log`, and of each read in `reads` when given.
 */
function listingTimes(storage: MemoryStorage, log: number[], reads?: number[]): Storage {
  return new Proxy(storage, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (key === "get" && reads !== undefined)
        return (...args: Parameters<Storage["get"]>) => {
          reads.push(Date.now());
          return target.get(...args);
        };
      if (key !== "list") return typeof value === "function" ? value.bind(target) : value;
      return (options: ListOptions = {}) => {
        // A look for peers lists `workers/`; only the listings of the ready index are polls.
        if (!options.prefix?.includes("workers/")) log.push(Date.now());
        return target.list(options);
      };
    },
  });
}

/**
 * A worker of type `t` on `queue` pausing 250 ms to 6 s. Heartbeats on: workers on one store
 * learn of each other, and only a worker with peers spreads its phase.
 */
function idleWorker(queue: Queue): Worker {
  return new Worker(queue, {
    skipDoctor: true,
    heartbeatSeconds: 60,
    monitor: false,
    minPollMs: 250,
    maxPollMs: 6000,
  }).task("t", () => null);
}

describe("idle workers (fake timers)", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("that went idle together poll at different instants once at the ceiling (they listed in step for as long as they stayed idle)", async () => {
    const storage = new MemoryStorage();
    const a: number[] = [];
    const b: number[] = [];
    const workers = [[0, a] as const, [0.8, b] as const].map(([r, log]) =>
      idleWorker(new Queue({ storage: listingTimes(storage, log), random: () => r })),
    );
    await Promise.all(workers.map((w) => w.start()));
    await vi.advanceTimersByTimeAsync(60_000);
    await Promise.all(workers.map((w) => w.stop()));
    // The ramp is the same for both (they start together); from the ceiling on, w1 lists 4.8 s
    // (0.8 * 6000) after w0, every time: their phases differ by 4.8 s.
    const start = a[0]!;
    const late = (times: number[]) => times.filter((t) => t - start > 20_000);
    const phases = (times: number[]) => late(times).map((t) => (t - start) % 6000);
    expect(phases(a).length).toBeGreaterThan(5);
    expect(new Set(phases(a))).toEqual(new Set([1750]));
    expect(new Set(phases(b))).toEqual(new Set([(1750 + 4800) % 6000]));
    // And as many listings a minute as before: one per 6 s at the ceiling.
    for (const times of [late(a), late(b)])
      expect(times.slice(1).map((t, i) => t - times[i]!)).toEqual(times.slice(1).map(() => 6000));
  });

  it("a worker alone keeps the plain ramp: no pause is lengthened", async () => {
    const log: number[] = [];
    const worker = idleWorker(
      new Queue({ storage: listingTimes(new MemoryStorage(), log), random: () => 0.8 }),
    );
    await worker.start();
    await vi.advanceTimersByTimeAsync(60_000);
    await worker.stop();
    const gaps = log.slice(1).map((t, i) => t - log[i]!);
    expect(gaps.slice(0, 8)).toEqual([250, 500, 1000, 2000, 4000, 6000, 6000, 6000]);
    expect(log.length).toBeGreaterThan(12);
  });

  it("a worker whose steal reads a stale marker lists again once after minPollMs, then keeps its idle pace (each such read restarted the ramp: 11 LISTs a second idle in the hostile chaos run)", async () => {
    const storage = new MemoryStorage();
    const logs = [0, 1].map(() => ({ lists: [] as number[], reads: [] as number[] }));
    const queues = logs.map(
      (log) => new Queue({ storage: listingTimes(storage, log.lists, log.reads), random: () => 0 }),
    );
    // Heartbeats on: each learns of the other, so half the markers are steals for each.
    const workers = queues.map(idleWorker);
    // Ids from a counter: their shares alternate, 4 tasks each (random ids put 7 of 8 in one
    // share 1 time in 14: that worker then read its 7 and one steal, and left none to relist).
    let n = 0;
    const submitter = new Queue({
      storage,
      randomHex: (length) => (n++).toString(16).padStart(length, "0"),
    });
    const done = await Promise.all(Array.from({ length: 8 }, (_, i) => submitter.submit("t", i)));
    await Promise.all(workers.map((w) => w.start()));
    await vi.advanceTimersByTimeAsync(30_000);
    for (const task of done) expect((await submitter.get(task.id))?.status).toBe("completed");
    // Another client writes markers naming the finished tasks, due a minute ago: each is a
    // stale marker to whichever worker reads it, and a young one is looked at again after
    // twice its age.
    const keys = submitter.keys;
    for (const [i, task] of done.entries()) {
      const marker = keys.newReadyMarker({
        type: "t",
        id: task.id,
        part: 0,
        dueMs: Date.now() - 60_000,
        nonce: `garbage${i}`,
      });
      await storage.put(keys.full(marker), new Uint8Array(0));
    }
    const from = Date.now();
    await vi.advanceTimersByTimeAsync(60_000);
    await Promise.all(workers.map((w) => w.stop()));
    // Each stale read may cost one listing after minPollMs; the pauses between stay at the
    // ceiling. A pass that read stale markers restarted the ramp: 250, 500, 1000, 2000, 4000.
    for (const log of logs) {
      const times = log.lists.filter((t) => t >= from);
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      const quick = gaps.filter((gap) => gap < 6000);
      expect(gaps.filter((gap) => gap >= 6000).length).toBeGreaterThan(5);
      expect(
        quick.every((gap) => gap === 250),
        `gaps ${gaps.join(", ")}`,
      ).toBe(true);
      // Idle, a worker reads nothing but the garbage (a heartbeat is written, not read).
      const staleReads = log.reads.filter((t) => t >= from).length;
      expect(quick.length).toBeGreaterThan(0);
      expect(quick.length).toBeLessThanOrEqual(staleReads);
    }
  });
});
