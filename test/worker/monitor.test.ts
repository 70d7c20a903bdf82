/** The monitor part: recovery transitions and the batched sweep of stale markers. */

import { describe, expect, it } from "vitest";
import { internals } from "../../src/queue/internals.ts";
import type { Queue } from "../../src/queue/queue.ts";
import { MARKER_GRACE_MS } from "../../src/queue/ready-index.ts";
import type { MemoryStorage } from "../../src/storage/memory.ts";
import { expireLease, expireTask, LEASE_TAKEOVER_MARGIN_MS } from "../../src/task/transitions.ts";
import { type Candidate, Monitor } from "../../src/worker/monitor.ts";
import { claimed, memoryQueue, shared } from "./helpers.ts";

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
        queue.keys.full(internals(queue).newMarker("t", id, queue.now())),
        new Uint8Array(0),
      );
    }
    advance(MARKER_GRACE_MS + 1000);
    await storage.put(
      queue.keys.full(internals(queue).newMarker("t", "young", queue.now())),
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

  it("without the monitor, a stale marker is skipped, never swept", async () => {
    const { queue, storage, advance, batches } = batching();
    const s = shared(queue);
    const monitor = new Monitor(internals(queue), { enabled: false, ...s });
    await storage.put(
      queue.keys.full(internals(queue).newMarker("t", "b1", queue.now())),
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

  it("lists the index's tail for garbage keys at most every 10 minutes", async () => {
    const { queue, storage, advance } = memoryQueue();
    const s = shared(queue);
    const monitor = new Monitor(internals(queue), { enabled: true, ...s });
    const garbage = `${queue.keys.ready}zz-not-a-marker`;
    await storage.put(garbage, new Uint8Array(0));
    advance(MARKER_GRACE_MS + 1000);
    await monitor.listTail(queue.now(), queue.clock.localNow());
    expect(monitor.pendingSweep).toEqual([garbage]);
    await monitor.sweep();
    const late = `${queue.keys.ready}zz-late`;
    await storage.put(late, new Uint8Array(0));
    advance(MARKER_GRACE_MS + 1000);
    await monitor.listTail(queue.now(), queue.clock.localNow());
    expect(monitor.pendingSweep).toEqual([]);
    advance(10 * 60_000);
    await monitor.listTail(queue.now(), queue.clock.localNow());
    expect(monitor.pendingSweep).toEqual([late]);
  });
});
