/**
 * Each page view makes a bounded number of storage requests, whatever the number of finished
 * tasks: the same count with 2,000 finished tasks as with 10 (docs/dashboard.md, "Cost").
 */
import { describe, expect, it } from "vitest";
import { createDashboard } from "../../src/dashboard/handler.ts";
import { Queue } from "../../src/queue/queue.ts";
import { Scheduler } from "../../src/schedule/scheduler.ts";
import { type CountedStorage, countRequests } from "../../src/storage/count.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { flushJournal, get, heartbeat } from "./helpers.ts";

/** The pages measured; `{id}` is a finished task's id. */
const PAGES = [
  "/",
  "/tasks",
  "/tasks?status=cancelled&type=email",
  "/tasks?status=pending",
  "/tasks/{id}",
  "/workers",
  "/schedules",
];

/** A queue with `finished` cancelled tasks, 3 pending ones, a schedule and a worker. */
async function queueWith(finished: number): Promise<{ storage: CountedStorage; id: string }> {
  const storage = countRequests(new MemoryStorage());
  const queue = new Queue({ storage });
  const tasks = await queue.submitMany(
    Array.from({ length: finished }, (_, i) => ({ type: "email", input: i })),
  );
  await queue.cancelMany(tasks.map((t) => t.id));
  await flushJournal(queue);
  await queue.submitMany([{ type: "report" }, { type: "report" }, { type: "email" }]);
  await new Scheduler(queue).create({ id: "nightly", type: "report", cron: "0 3 * * *" });
  await heartbeat(queue, "w-1", ["email", "report"], { email: { completed: finished } });
  return { storage, id: tasks[0]!.id };
}

/** The requests of one view of each page, each through a new queue and handler (cold caches). */
async function costs(setup: { storage: CountedStorage; id: string }) {
  const out: Record<string, number> = {};
  for (const path of PAGES) {
    const handler = createDashboard(new Queue({ storage: setup.storage }), { pageSize: 5 });
    setup.storage.reset();
    const page = await get(handler, path.replace("{id}", setup.id));
    expect(page.status, path).toBe(200);
    out[path] = setup.storage.total();
  }
  return out;
}

describe("dashboard cost", () => {
  it("each page costs the same requests with 2,000 finished tasks as with 10", async () => {
    const small = await costs(await queueWith(10));
    const large = await costs(await queueWith(2000));
    expect(large).toEqual(small);
    // The overview is one stats() call: types, one LIST per type, the heartbeats and one GET.
    expect(small["/"]).toBeLessThanOrEqual(7);
    expect(small["/tasks/{id}"]).toBe(1);
    expect(small["/workers"]).toBe(2);
    expect(small["/schedules"]).toBe(2);
    for (const path of PAGES) expect(small[path], path).toBeLessThanOrEqual(20);
  }, 60_000);
});
