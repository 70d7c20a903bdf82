/** The attempt part: one claimed task while it runs — renewal, signals, grace, outcome, release. */

import { describe, expect, it } from "vitest";
import { internals } from "../../src/queue/internals.ts";
import type { Queue } from "../../src/queue/queue.ts";
import type { Versioned } from "../../src/queue/types.ts";
import { Attempt } from "../../src/worker/attempt.ts";
import type { CheckedHandlerOptions, Handler } from "../../src/worker/options.ts";
import { claimed, memoryQueue, shared } from "./helpers.ts";

const LEASE_MS = 60_000;

/** A handler that runs until the test opens its gate (whatever its signal says). */
function gated() {
  let open: (value: unknown) => void = () => {};
  const gate = new Promise((resolve) => {
    open = resolve;
  });
  const signals: AbortSignal[] = [];
  const handler: Handler = async (_input, ctx) => {
    signals.push(ctx.signal);
    return gate;
  };
  return { handler, open: (value: unknown = "done") => open(value), signals };
}

function attempt(
  queue: Queue,
  task: Versioned,
  handler: Handler,
  options: { signalGraceMs?: number; handlerOptions?: CheckedHandlerOptions } = {},
) {
  const s = shared(queue);
  const freed: Attempt[] = [];
  const a = new Attempt(
    internals(queue),
    task,
    { token: "tok", leaseMs: LEASE_MS, entry: { handler, options: options.handlerOptions ?? {} } },
    {
      workerId: "w",
      signalGraceMs: options.signalGraceMs ?? 5000,
      timeoutSeconds: undefined,
      progressSeconds: 10,
      ...s,
      onFree: (x) => void freed.push(x),
    },
  );
  return { attempt: a, freed, ...s };
}

const stored = async (queue: Queue, id: string) => (await queue.read(id))!.task;

describe("Attempt", () => {
  it("the first check moves the marker past the lease's expiry; later ones renew once half the lease is gone, moving it every second time", async () => {
    const { queue, advance } = memoryQueue();
    const task = await claimed(queue, "t", { leaseMs: LEASE_MS });
    const h = gated();
    const { attempt: a } = attempt(queue, task, h.handler);
    a.start();
    const claimedMarker = task.task.marker!;
    await a.watch();
    const moved = await stored(queue, task.task.id);
    expect(moved.event).toBe("lease-renewed");
    const marker = queue.keys.parseReadyMarker(queue.keys.full(moved.marker!))!;
    expect(marker.dueMs).toBeGreaterThanOrEqual(Date.parse(moved.lease!.expiresAt));
    await internals(queue).flush();
    expect(await queue.storage.head(queue.keys.full(claimedMarker)).catch(() => "gone")).toBe(
      "gone",
    );
    const first = moved.lease!.expiresAt;
    await a.watch();
    expect((await stored(queue, task.task.id)).lease!.expiresAt).toBe(first);
    advance(LEASE_MS / 2 + 1000);
    await a.watch();
    const renewed = await stored(queue, task.task.id);
    expect(renewed.event).toBe("lease-renewed");
    expect(Date.parse(renewed.lease!.expiresAt)).toBeGreaterThan(Date.parse(first));
    // The marker lies a lease beyond the takeover: this renewal leaves it, the next moves it.
    expect(renewed.marker).toBe(moved.marker);
    advance(LEASE_MS / 2 + 1000);
    await a.watch();
    const again = await stored(queue, task.task.id);
    expect(again.marker).not.toBe(moved.marker);
    const at = queue.keys.parseReadyMarker(queue.keys.full(again.marker!))!.dueMs;
    expect(at).toBeGreaterThanOrEqual(Date.parse(again.lease!.expiresAt) + LEASE_MS);
    h.open();
    await a.settled;
    expect((await stored(queue, task.task.id)).status).toBe("completed");
  });

  it("stops renewing once the signal grace is over, and frees the slot when the lease lapsed", async () => {
    const { queue, advance } = memoryQueue();
    const task = await claimed(queue, "t", { leaseMs: LEASE_MS });
    const h = gated();
    const graceMs = 40_000;
    const {
      attempt: a,
      events,
      freed,
    } = attempt(queue, task, h.handler, { signalGraceMs: graceMs });
    a.start();
    await Promise.resolve();
    a.interrupt({ kind: "shutdown" }, new Error("stop"));
    expect(h.signals[0]?.aborted).toBe(true);
    // Within the grace, a signalled attempt still renews.
    advance(LEASE_MS / 2 + 1000);
    await a.watch();
    const renewed = await stored(queue, task.task.id);
    expect(renewed.event).toBe("lease-renewed");
    // Past it, the lease is left to lapse: no more renewals, and the slot is still held.
    advance(LEASE_MS / 2 + 1000);
    await a.watch();
    expect(a.lapsing).toBe(true);
    expect(events.map((e) => e.kind)).toContain("abandoned");
    expect((await stored(queue, task.task.id)).lease!.expiresAt).toBe(renewed.lease!.expiresAt);
    expect(freed).toEqual([]);
    advance(LEASE_MS);
    await a.watch();
    expect((await stored(queue, task.task.id)).lease!.expiresAt).toBe(renewed.lease!.expiresAt);
    expect(freed).toEqual([a]);
    h.open();
    await a.settled;
  });

  it("releases a task interrupted by shutdown only after its handler settled", async () => {
    const { queue } = memoryQueue();
    const task = await claimed(queue, "t");
    const h = gated();
    const { attempt: a, events } = attempt(queue, task, h.handler);
    a.start();
    await Promise.resolve();
    a.interrupt({ kind: "shutdown" }, new Error("stop"));
    await new Promise((r) => setTimeout(r, 50));
    expect((await stored(queue, task.task.id)).status).toBe("running");
    expect(events.map((e) => e.kind)).toEqual(["started"]);
    h.open();
    await a.settled;
    const back = await stored(queue, task.task.id);
    expect(back.status).toBe("pending");
    expect(back.attempt).toBe(0);
    expect(events.map((e) => e.kind)).toEqual(["started", "released"]);
  });

  it("records a timeout as a failed attempt, whatever the handler returned", async () => {
    const { queue } = memoryQueue();
    const task = await claimed(queue, "t");
    const h = gated();
    const { attempt: a, stats } = attempt(queue, task, h.handler, {
      handlerOptions: { timeoutSeconds: 0.05 },
    });
    a.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(h.signals[0]?.reason?.name).toBe("Timeout");
    h.open("a result");
    await a.settled;
    const after = await stored(queue, task.task.id);
    expect(after.status).toBe("pending");
    expect(after.lastError?.name).toBe("Timeout");
    expect(stats.retried).toBe(1);
  });

  it("notices a lost lease: fires LeaseLost and writes nothing more", async () => {
    const { queue } = memoryQueue();
    const task = await claimed(queue, "t");
    const h = gated();
    const { attempt: a, events, stats } = attempt(queue, task, h.handler);
    a.start();
    await Promise.resolve();
    // Someone else holds the task now (its lease was taken over).
    const taken = await internals(queue).update(task.task.id, (t) => ({
      ...t,
      lease: { ...t.lease!, token: "theirs" },
      updatedAt: new Date(queue.now() + 1).toISOString(),
    }));
    await a.watch();
    expect(h.signals[0]?.reason?.name).toBe("LeaseLost");
    expect(stats.leaseLost).toBe(1);
    h.open();
    await a.settled;
    const after = await queue.read(task.task.id);
    expect(after!.etag).toBe(taken.etag);
    expect(events.map((e) => e.kind)).toEqual(["started", "lease-lost"]);
  });
});
