import { describe, expect, it } from "vitest";
import { InvalidStateError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";

const HOUR = 3_600_000;

/**
 * `shared` as another process sees it over HTTP: the server's time only to the second, as an
 * HTTP `Date` header gives it, so its clock's bounds are a second wide.
 */
function secondsOnly(shared: MemoryStorage): Storage {
  return new Proxy(shared, {
    get(target, prop, receiver) {
      if (prop === "serverTime")
        return () => {
          const s = target.serverTime();
          return s && { ...s, serverMs: Math.floor(s.serverMs / 1000) * 1000, resolutionMs: 1000 };
        };
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as Storage;
}

describe("replay near the end of a task's retention, from a process whose clock is coarse", () => {
  // 600 ms into a second: this process's clock knows the server's time only within
  // [now - 600 ms, now + 400 ms], where a worker with exact samples stamped the task exactly.
  const start = Date.UTC(2026, 11, 4, 10, 0, 0, 600);

  async function cancelledTask(retention: string | number) {
    let now = start;
    const shared = new MemoryStorage({ now: () => now });
    const exact = new Queue({ storage: shared, now: () => now });
    const keyed = { idempotencyKey: "k", idempotencyWindow: 0 };
    const task = await exact.cancel((await exact.submit("job", "x", keyed)).id);
    await exact.setRetention({ cancelled: retention });
    const coarse = new Queue({ storage: secondsOnly(shared), now: () => now });
    return { id: task.id, keyed, coarse, at: (ms: number) => (now = ms) };
  }

  it("refuses a task kept for no time at all, though its finish is later than this clock's earliest", async () => {
    const { id, coarse } = await cancelledTask(0);
    const error = await coarse.replay(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidStateError);
    expect((await coarse.get(id)).status).toBe("cancelled");
  });

  it("refuses within the margin before the retention ends as soon as the server may be there", async () => {
    const { id, coarse, at } = await cancelledTask("2h");
    // The margin (an hour) begins at start + 1 h; 300 ms before it here, but the server's
    // time may be up to 700 ms later than this clock's reading (its second ends then).
    at(start + HOUR - 300);
    const error = await coarse.replay(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidStateError);
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
