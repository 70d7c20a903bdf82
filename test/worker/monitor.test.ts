/** The monitor part: recovery transitions and the batched sweep of stale markers. */

import { describe, expect, it } from "vitest";
import { internals } from "../../src/queue/internals.ts";
import type { Queue } from "../../src/queue/queue.ts";
import { MARKER_GRACE_MS } from "../../src/queue/ready-index.ts";
import type { MemoryStorage } from "../../src/storage/memory.ts";
import {
  claimTask,
  expireLease,
  expireTask,
  LEASE_TAKEOVER_MARGIN_MS,
  renewLease,
} from "../../src/task/transitions.ts";
import { type Candidate, Monitor } from "../../src/worker/monitor.ts";
import { claimed, memoryQueue, pendingSpec, recordReads, shared } from "./helpers.ts";

/** A memory store with `deleteMany` (as S3 has), recording each batch. */
function batching() {
  const batches: string[][] = [];
  const setup = memoryQueue((s: MemoryStorage) =>
    Object.assign(s, {
      async deleteMany(keys: readonly string[]) {
        batches.push([...keys]);
        for (const key of keys) await s.delete(key);
      },
    }),
  );
  return { ...setup, batches };
}

async function listed(queue: Queue): Promise<Candidate[]> {
  const found: Candidate[] = [];
  for await (const m of internals(queue).markers()) found.push(m);
  return found;
}

async function allMarkers(setup: { queue: Queue }): Promise<string[]> {
  return (await listed(setup.queue)).map((m) => m.key);
}

describe("Monitor", () => {
  it("recovers an expired lease: the task is pending again with a new marker", async () => {
    const setup = memoryQueue();
    const { queue, advance } = setup;
    const s = shared(queue);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const running = await claimed(queue, "t", { leaseMs: 1000 });
    advance(1000 + LEASE_TAKEOVER_MARGIN_MS + 1);
    const found = (await queue.read(running.task.id))!;
    await monitor.apply(
      found,
      (t) => expireLease(t, queue.now(), internals(queue).random()),
      "recovered",
    );
    await internals(queue).flush();
    const after = (await queue.read(running.task.id))!.task;
    expect(after.status).toBe("pending");
    expect(after.lastError?.name).toBe("LeaseExpired");
    expect(after.marker).not.toBe(running.task.marker);
    expect(await allMarkers(setup)).toEqual([queue.keys.full(after.marker!)]);
    expect(s.stats.recovered).toBe(1);
    expect(s.events).toMatchObject([{ kind: "recovered", id: after.id, type: "t" }]);
  });

  it("expires a task past its TTL and drops its marker from the index", async () => {
    const setup = memoryQueue();
    const { queue, advance } = setup;
    const s = shared(queue);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const task = await queue.submit("t", null, { ttlSeconds: 1 });
    advance(1500);
    const found = (await queue.read(task.id))!;
    await monitor.apply(found, (t) => expireTask(t, queue.now()), "expired");
    await internals(queue).flush();
    const after = (await queue.read(task.id))!.task;
    expect(after.status).toBe("expired");
    expect(after.marker).toBeNull();
    expect(await allMarkers(setup)).toEqual([]);
    expect(s.stats.expired).toBe(1);
    expect(s.events.map((e) => e.kind)).toEqual(["expired"]);
  });

  it("losing a transition's race counts nothing", async () => {
    const { queue, advance } = memoryQueue();
    const s = shared(queue);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const task = await queue.submit("t", null, { ttlSeconds: 1 });
    const found = (await queue.read(task.id))!;
    await queue.cancel(task.id);
    advance(1500);
    await monitor.apply(found, (t) => expireTask(t, queue.now()), "expired");
    expect((await queue.read(task.id))!.task.status).toBe("cancelled");
    expect(s.stats.expired).toBe(0);
    expect(s.events).toEqual([]);
  });

  it("sweeps stale markers past the grace in one batch, and keeps young ones", async () => {
    const setup = batching();
    const { queue, storage, advance, batches } = setup;
    const s = shared(queue);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    for (const id of ["a1", "a2", "a3"]) {
      await storage.put(
        queue.keys.full(internals(queue).newMarker(pendingSpec(id), queue.now())),
        new Uint8Array(0),
      );
    }
    advance(MARKER_GRACE_MS + 1000);
    await storage.put(
      queue.keys.full(internals(queue).newMarker(pendingSpec("young"), queue.now())),
      new Uint8Array(0),
    );
    const markers = await listed(queue);
    for (const m of markers) monitor.stale(m, queue.now(), false);
    const old = markers.filter((m) => m.id !== "young").map((m) => m.key);
    expect(monitor.pendingSweep.sort()).toEqual(old.sort());
    const young = markers.find((m) => m.id === "young")!;
    expect(s.skip.skipped(young.key, queue.clock.localNow())).toBe(true);
    await monitor.sweep();
    expect(batches).toEqual([old]);
    expect(await allMarkers(setup)).toEqual([young.key]);
    expect(monitor.pendingSweep).toEqual([]);
  });

  it("a stale marker outside this worker's share is swept only a grace later: one sweeper per key, not one per worker", async () => {
    const setup = batching();
    const { queue, storage, advance } = setup;
    const s = shared(queue);
    const mineOnly = new Monitor(internals(queue), {
      enabled: true,
      ...s,
      mine: (id) => id === "a1",
    });
    for (const id of ["a1", "a2"]) {
      await storage.put(
        queue.keys.full(internals(queue).newMarker(pendingSpec(id), queue.now())),
        new Uint8Array(0),
      );
    }
    advance(MARKER_GRACE_MS + 1000);
    const markers = await listed(queue);
    for (const m of markers) mineOnly.stale(m, queue.now(), false);
    const a1 = markers.find((m) => m.id === "a1")!;
    const a2 = markers.find((m) => m.id === "a2")!;
    expect(mineOnly.pendingSweep).toEqual([a1.key]);
    expect(s.skip.skipped(a2.key, queue.clock.localNow())).toBe(true);
    advance(MARKER_GRACE_MS);
    mineOnly.stale(a2, queue.now(), false);
    expect(mineOnly.pendingSweep.sort()).toEqual([a1.key, a2.key].sort());
  });

  it("an old marker its task left a moment ago (moved or finished) is left to that task's writer, not swept by every lister (end-of-backlog burst)", async () => {
    const setup = batching();
    const { queue, storage, advance } = setup;
    const heads: string[] = [];
    const head = storage.head.bind(storage);
    storage.head = (key) => {
      heads.push(key);
      return head(key);
    };
    const s = shared(queue);
    // Every worker listing the partition sees the marker; this one is not the id's owner.
    const monitor = new Monitor(internals(queue), { enabled: true, ...s, mine: () => false });
    const moving = await queue.submit("t", null);
    const finishing = await queue.submit("t", null);
    // Backlog tasks: their markers were written long before a worker gets to them.
    advance(3 * MARKER_GRACE_MS);
    const markers = await listed(queue);
    // Meanwhile the first task is claimed and its marker moved to its lease's expiry (its
    // writer deletes the old marker right after), and the second finishes.
    const found = (await queue.read(moving.id))!;
    const claim = claimTask(found.task, {
      workerId: "w",
      token: "tok",
      leaseMs: 60_000,
      now: queue.now(),
    });
    await internals(queue).write(found, claim);
    const moved = await internals(queue).update(moving.id, (t) =>
      renewLease(t, "tok", 60_000, queue.now()),
    );
    expect(moved.task.marker).not.toBe(found.task.marker);
    await queue.cancel(finishing.id);
    const finished = (await queue.read(finishing.id))!;
    // A worker reads the tasks of its listing a moment later: neither names its marker now.
    for (const m of markers) {
      await monitor.unnamed(m, m.id === moving.id ? moved : finished, queue.now());
    }
    expect(monitor.pendingSweep).toEqual([]);
    expect(heads).toEqual([]);
    for (const m of markers) expect(s.skip.skipped(m.key, queue.clock.localNow())).toBe(true);
    // Had their writers died before deleting them, they are swept in the end.
    advance(2 * MARKER_GRACE_MS + 1000);
    for (const m of markers) {
      await monitor.unnamed(m, m.id === moving.id ? moved : finished, queue.now());
    }
    expect(monitor.pendingSweep.sort()).toEqual(markers.map((m) => m.key).sort());
  });

  it("without the monitor, a stale marker is skipped, never swept", async () => {
    const { queue, storage, advance, batches } = batching();
    const s = shared(queue);
    const monitor = new Monitor(internals(queue), { enabled: false, ...s });
    await storage.put(
      queue.keys.full(internals(queue).newMarker(pendingSpec("b1"), queue.now())),
      new Uint8Array(0),
    );
    advance(MARKER_GRACE_MS + 1000);
    const [m] = await listed(queue);
    monitor.stale(m!, queue.now(), false);
    await monitor.unnamed(m!, undefined, queue.now());
    expect(monitor.pendingSweep).toEqual([]);
    expect(s.skip.skipped(m!.key, queue.clock.localNow())).toBe(true);
    await monitor.sweep();
    expect(batches).toEqual([]);
  });

  it("a round, once per 10 minutes, expires TTL'd tasks of types nobody here runs, reading only those, and sweeps junk", async () => {
    const { queue, storage, advance } = memoryQueue();
    const s = shared(queue, ["email"]);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const short = await queue.submit("video", 1, { ttlSeconds: 10 });
    const others = await queue.submitMany([
      { type: "video", input: 2 },
      { type: "video", input: 3, options: { ttlSeconds: 3600 } },
    ]);
    const junk = `${queue.keys.ready}zz-not-a-marker`;
    await storage.put(junk, new Uint8Array(0));
    advance(MARKER_GRACE_MS + 11_000);
    const reads = recordReads(storage);
    let steps = 0;
    while (await monitor.step(queue.now())) steps++;
    // The manifest, the delimiter listing, the journal types (pruning), the stopped workers'
    // files, the one video partition, and one page of the walk of tasks/ (which reads none:
    // nothing there is older than the retention).
    expect(steps).toBe(6);
    expect(reads.filter((k) => k.startsWith(queue.keys.tasks))).toEqual([
      queue.keys.task(short.id),
    ]);
    expect((await queue.get(short.id)).status).toBe("expired");
    for (const t of others) expect((await queue.get(t.id)).status).toBe("pending");
    expect(monitor.pendingSweep).toEqual([junk]);
    advance(5 * 60_000);
    expect(await monitor.step(queue.now())).toBe(false);
    advance(5 * 60_000 + 1);
    expect(await monitor.step(queue.now())).toBe(true);
  });

  it("a round recovers an expired lease of a type nobody here runs from its .lease marker", async () => {
    const { queue, advance } = memoryQueue();
    const s = shared(queue, ["email"]);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const running = await claimed(queue, "video", { leaseMs: 1000 });
    const renewed = await internals(queue).update(running.task.id, (t) =>
      renewLease(t, "tok", 1000, queue.now()),
    );
    const marker = queue.keys.parseReadyMarker(queue.keys.full(renewed.task.marker!))!;
    expect(marker.lease).toBe(true);
    // The marker comes due a lease length after the takeover time.
    advance(1000 + LEASE_TAKEOVER_MARGIN_MS + 1000 + 1000);
    while (await monitor.step(queue.now()));
    const after = (await queue.read(running.task.id))!.task;
    expect(after.status).toBe("pending");
    expect(after.lastError?.name).toBe("LeaseExpired");
    expect(s.stats.recovered).toBe(1);
  });

  it("a round leaves the partitions of types this worker runs, and those outside its share, to others", async () => {
    const { queue, advance } = memoryQueue();
    const s = { ...shared(queue, ["email"]), owns: (p: string) => !p.includes("/audio/") };
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const tasks = await queue.submitMany(
      ["email", "audio"].map((type) => ({ type, input: 0, options: { ttlSeconds: 5 } })),
    );
    advance(10_000);
    while (await monitor.step(queue.now()));
    for (const t of tasks) expect((await queue.get(t.id)).status).toBe("pending");
  });

  it("a round deletes stopped workers' files older than 25 hours, and keeps younger ones", async () => {
    const { queue, storage, advance } = memoryQueue();
    const s = shared(queue, ["email"]);
    const old = queue.keys.stoppedWorker("old", queue.now());
    await storage.put(old, "{}");
    advance(24 * 3_600_000);
    const young = queue.keys.stoppedWorker("young", queue.now());
    await storage.put(young, "{}");
    advance(1 * 3_600_000 + 1000);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    while (await monitor.step(queue.now()));
    const left = await storage.list({ prefix: queue.keys.stoppedWorkers });
    expect(left.objects.map((o) => o.key)).toEqual([young]);
  });

  it("counts a lease recovered to failed and an expiry in its finished counts", async () => {
    const { queue, advance } = memoryQueue();
    const s = shared(queue, ["email"]);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const task = await queue.submit("video", 1, { maxRetries: 0 });
    const found = (await queue.read(task.id))!;
    const running = (await internals(queue).write(
      found,
      claimTask(found.task, { workerId: "w", token: "tok", leaseMs: 1000, now: queue.now() }),
    ))!;
    const expiring = await queue.submit("video", 2, { ttlSeconds: 1 });
    advance(1000 + LEASE_TAKEOVER_MARGIN_MS + 1000);
    await monitor.apply(running, (t) => expireLease(t, queue.now(), 0.5), "recovered");
    await monitor.apply(
      (await queue.read(expiring.id))!,
      (t) => expireTask(t, queue.now()),
      "expired",
    );
    expect((await queue.get(task.id)).status).toBe("failed");
    const snapshot = s.finished.snapshot(queue.now());
    expect(Object.values(snapshot.hours)).toEqual([{ video: { failed: 1, expired: 1 } }]);
  });
});
