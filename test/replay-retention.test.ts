/**
 * Replays (and submits replacing a keyed task) near the end of a task's retention and after a
 * raise of it, from a process whose clock knows the server's time only to the second: on the
 * memory store, with the clock in the test's hands.
 */
import { describe, expect, it } from "vitest";
import { InvalidStateError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { RETENTION_RAISE_HOLD_MS } from "../src/queue/retention.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { secondResolution } from "./helpers/storage-view.ts";

const HOUR = 3_600_000;

// 600 ms into a second: the coarse process's clock knows the server's time only within
// [now - 600 ms, now + 400 ms], where a worker with exact samples stamped the task exactly.
const start = Date.UTC(2026, 11, 4, 10, 0, 0, 600);

/**
 * A `job` task cancelled at `start` (with an idempotency key) and kept `retention`, set long
 * before; a queue with an exact clock (`exact`) and one with a coarse clock (`coarse`) over it.
 */
async function cancelledTask(retention: string | number) {
  let now = start - RETENTION_RAISE_HOLD_MS - 10_000;
  const shared = new MemoryStorage({ now: () => now });
  const exact = new Queue({ storage: shared, now: () => now });
  await exact.setRetention({ cancelled: retention });
  now = start;
  const keyed = { idempotencyKey: "k", idempotencyWindow: 0 };
  const task = await exact.cancel((await exact.submit("job", "x", keyed)).id);
  const coarse = new Queue({ storage: secondResolution(shared), now: () => now });
  return { id: task.id, keyed, exact, coarse, at: (ms: number) => (now = ms) };
}

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => "went ahead",
    (e: unknown) => (e instanceof InvalidStateError ? e.message : `threw ${String(e)}`),
  );

describe("replay near the end of a task's retention, from a process whose clock is coarse", () => {
  it("refuses a task kept for no time at all, though its finish is later than this clock's earliest", async () => {
    const { id, coarse } = await cancelledTask(0);
    expect(await refusal(coarse.replay(id))).toMatch(/retention ends at once/);
    expect((await coarse.get(id)).status).toBe("cancelled");
  });

  it("refuses within the margin before the retention ends as soon as the server may be there", async () => {
    const { id, coarse, at } = await cancelledTask("2h");
    // The margin (an hour) begins at start + 1 h; 300 ms before it here, but the server's
    // time may be up to 700 ms later than this clock's reading (its second ends then).
    at(start + HOUR - 300);
    expect(await refusal(coarse.replay(id))).toMatch(/retention ends at/);
    // Surely before the margin: replayed.
    at(start + HOUR - 2_000);
    expect((await coarse.replay(id)).status).toBe("pending");
  });

  it("a submit with the task's idempotency key returns it rather than replace it then", async () => {
    const { id, keyed, coarse, at } = await cancelledTask("2h");
    at(start + HOUR - 300);
    expect(await coarse.submit("job", "x", keyed)).toMatchObject({ id, status: "cancelled" });
    at(start + HOUR - 2_000);
    const replaced = await coarse.submit("job", "x", keyed);
    expect(replaced).toMatchObject({ id, status: "pending" });
  });
});

describe("replay after a raise of the retention", () => {
  it("is held back for 2 minutes after a raise of the setting that governs the task", async () => {
    const { id, keyed, exact, coarse, at } = await cancelledTask(0);
    expect(await refusal(coarse.replay(id))).toMatch(/Raise the cancelled retention/);
    // The advice followed: a prune that read the earlier setting may still be deleting it.
    const raisedAt = start + 5_000;
    at(raisedAt);
    await exact.setRetention({ cancelled: "30d" }, { type: "job" });
    at(raisedAt + RETENTION_RAISE_HOLD_MS - 100);
    const held = await refusal(coarse.replay(id));
    expect(held).toMatch(/raised less than 2 minutes ago/);
    // (to the second: the raise is stamped with the latest the server's time may be)
    const after = new Date(raisedAt + RETENTION_RAISE_HOLD_MS).toISOString().slice(0, 19);
    expect(held).toContain(`again after ${after}`);
    expect(await coarse.submit("job", "x", keyed)).toMatchObject({ id, status: "cancelled" });
    // A raise of another type's setting holds nothing of this one back.
    await exact.setRetention({ cancelled: "60d" }, { type: "other" });
    // Surely past the hold (this clock's earliest, up to a second behind): replayed.
    at(raisedAt + RETENTION_RAISE_HOLD_MS + 1_100);
    expect((await coarse.replay(id)).status).toBe("pending");
  });

  it("a raise of the queue's own setting holds back every type; a lowering, none", async () => {
    const { id, exact, coarse, at } = await cancelledTask("30d");
    at(start + 1_000);
    await exact.setRetention({ completed: "8d" });
    expect(await refusal(coarse.replay(id))).toMatch(/raised less than 2 minutes ago/);
    at(start + 1_000 + RETENTION_RAISE_HOLD_MS + 1_100);
    // Lowered (a prune by the earlier setting deletes less), or set to what it is: no hold.
    await exact.setRetention({ completed: "1d", cancelled: "20d" });
    await exact.setRetention({ completed: "1d" });
    expect((await coarse.replay(id)).status).toBe("pending");
  });

  it("the manifest keeps only the raises whose hold has not ended", async () => {
    const { exact, at } = await cancelledTask("30d");
    at(start + 1_000);
    await exact.setRetention({ completed: "8d" }, { type: "a" });
    at(start + 1_000 + RETENTION_RAISE_HOLD_MS + 1);
    const manifest = await exact.setRetention({ completed: "9d" }, { type: "b" });
    expect(Object.keys(manifest.retentionRaisedAt ?? {})).toEqual(["types"]);
    expect(Object.keys(manifest.retentionRaisedAt?.types ?? {})).toEqual(["b"]);
  });
});
