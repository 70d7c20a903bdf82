/**
 * Priorities (docs/protocol.md, "Priorities"): the priority rides in the marker key, so a worker
 * orders the due tasks it lists by effective priority without reading them; aging bounds how
 * long a task waits behind newer work of higher priority; and a task costs the same requests
 * with or without a priority.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Keys } from "../src/keys.ts";
import { Queue } from "../src/queue/queue.ts";
import { checkTaskOptions, submitOptions } from "../src/schedule/record.ts";
import { Scheduler } from "../src/schedule/scheduler.ts";
import { countRequests, type RequestCounts } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { PRIORITY_AGING_SECONDS } from "../src/task/priority.ts";
import { byEffectivePriority } from "../src/worker/priority-order.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast } from "./helpers/wait.ts";

const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);

describe("priority in marker keys", () => {
  const keys = new Keys("q/");
  const spec = { type: "email", id: "Job.7", part: 0, dueMs: T0, nonce: "5eed0a11" };

  it("round-trips a priority, with and without a TTL or lease suffix", () => {
    for (const priority of [-10, -1, 1, 3, 10]) {
      for (const extra of [{}, { expiresMs: T0 + 60_000 }, { lease: true }]) {
        const relative = keys.newReadyMarker({ ...spec, ...extra, priority });
        const parsed = keys.parseReadyMarker(keys.full(relative))!;
        expect(parsed, relative).toMatchObject({ id: "Job.7", type: "email", dueMs: T0, priority });
        if ("expiresMs" in extra) expect(parsed.expiresMs).toBe(T0 + 60_000);
        if ("lease" in extra) expect(parsed.lease).toBe(true);
      }
    }
  });

  it("writes no priority segment for priority 0, and reads keys without one as 0", () => {
    const relative = keys.newReadyMarker({ ...spec, priority: 0 });
    expect(relative).toBe("ready/email/0/20261130T120000Z/Job.7.5eed0a11");
    expect(keys.parseReadyMarker(keys.full(relative))?.priority).toBe(0);
    // A key written before priorities existed (and by hand, per the docs).
    const old = keys.parseReadyMarker("q/ready/email/0/20261130T120000Z/Job-7.5eed0a11");
    expect(old).toMatchObject({ id: "Job-7", priority: 0 });
    // A hand-written key beyond the range is ordered at its end.
    const wild = keys.parseReadyMarker("q/ready/email/0/20261130T120000Z/Job-7.5eed0a11-p999");
    expect(wild).toMatchObject({ id: "Job-7", priority: 10 });
  });

  it("keeps the id where a reader without priorities looks for it (before the last dot)", () => {
    const relative = keys.newReadyMarker({ ...spec, priority: -3 });
    expect(relative).toBe("ready/email/0/20261130T120000Z/Job.7.5eed0a11-p-3");
    const last = relative.split("/").pop()!;
    expect(last.slice(0, last.lastIndexOf("."))).toBe("Job.7");
  });

  it("orders by priority plus seconds overdue per aging step, then by due time", () => {
    const aging = PRIORITY_AGING_SECONDS * 1000;
    const old = { id: "old-low", dueMs: T0, priority: 0 };
    const newerHigh = { id: "newer-high", dueMs: T0 + aging - 1000, priority: 1 };
    const tooLateHigh = { id: "too-late-high", dueMs: T0 + aging + 1000, priority: 1 };
    expect(byEffectivePriority([old, newerHigh]).map((m) => m.id)).toEqual([
      "newer-high",
      "old-low",
    ]);
    expect(byEffectivePriority([old, tooLateHigh]).map((m) => m.id)).toEqual([
      "old-low",
      "too-late-high",
    ]);
  });
});

describe("priority options", () => {
  it("submit checks the range, the queue's defaults apply, and a schedule's tasks carry it", async () => {
    const queue = new Queue({ storage: new MemoryStorage(), defaults: { priority: 2 } });
    expect((await queue.submit("job", 1)).priority).toBe(2);
    expect((await queue.submit("job", 1, { priority: 0 })).priority).toBeUndefined();
    for (const priority of [11, -11, 1.5, Number.NaN]) {
      await expect(queue.submit("job", 1, { priority })).rejects.toThrow(
        /priority must be a whole number from -10 to 10/,
      );
    }
    expect(() => new Queue({ storage: new MemoryStorage(), defaults: { priority: 20 } })).toThrow(
      /priority/,
    );
    const options = checkTaskOptions({ id: "s", type: "job", cron: "* * * * *", priority: -4 });
    expect(options.priority).toBe(-4);
    const scheduler = new Scheduler(queue);
    const schedule = await scheduler.create({
      id: "s",
      type: "job",
      cron: "* * * * *",
      priority: -4,
    });
    expect(schedule.task.priority).toBe(-4);
    expect(submitOptions(schedule, "k")).toMatchObject({ priority: -4, idempotencyKey: "k" });
  });
});

/** Run every due task with one worker of concurrency 1; the inputs in the order they ran. */
async function runOrder(queue: Queue): Promise<string[]> {
  const ran: string[] = [];
  const worker = new Worker(queue, { ...fast, concurrency: 1, skipDoctor: true }).task(
    "job",
    async (input) => {
      ran.push(input as string);
    },
  );
  await worker.drain({ budgetMs: 60_000 });
  return ran;
}

describe.each(targets)("priorities on $name", (target) => {
  let env: TargetInstance;
  beforeEach(async () => {
    env = await target.create();
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("a worker of concurrency 1 runs a backlog's high-priority tasks first", async () => {
    const queue = new Queue({ storage: env.storage, prefix: env.prefix });
    // Low first, so that key order (due time) alone would run them first.
    for (let i = 0; i < 4; i++) await queue.submit("job", `low-${i}`, { priority: -2 });
    for (let i = 0; i < 4; i++) await queue.submit("job", `mid-${i}`);
    for (let i = 0; i < 4; i++) await queue.submit("job", `high-${i}`, { priority: 5 });
    const ran = await runOrder(queue);
    expect(ran).toHaveLength(12);
    expect(
      ran.slice(0, 4).every((name) => name.startsWith("high-")),
      ran.join(),
    ).toBe(true);
    expect(
      ran.slice(4, 8).every((name) => name.startsWith("mid-")),
      ran.join(),
    ).toBe(true);
    expect(
      ran.slice(8).every((name) => name.startsWith("low-")),
      ran.join(),
    ).toBe(true);
    const stored = await queue.list({ status: "completed", type: "job" });
    expect(stored.tasks.find((t) => t.input === "high-0")?.priority).toBe(5);
  });

  it("a retried task keeps its priority in its new marker and record", async () => {
    const queue = new Queue({ storage: env.storage, prefix: env.prefix });
    const task = await queue.submit("job", "x", { priority: 7, backoff: { initialSeconds: 0 } });
    let runs = 0;
    const worker = new Worker(queue, { ...fast, skipDoctor: true }).task("job", async () => {
      if (++runs === 1) throw new Error("once");
    });
    await worker.drain({ budgetMs: 60_000 });
    const after = (await queue.get(task.id))!;
    expect(after).toMatchObject({ status: "completed", priority: 7, attempt: 2 });
    expect(after.history.map((h) => h.event)).toContain("retry-scheduled");
  });
});

describe("aging", () => {
  it("a task due longer than the aging step per level runs before newer higher-priority work", async () => {
    let now = T0;
    const storage = new MemoryStorage({ now: () => now });
    const queue = new Queue({ storage, now: () => now });
    await queue.submit("job", "old-low");
    now += (PRIORITY_AGING_SECONDS + 1) * 1000;
    await queue.submit("job", "newer-high", { priority: 1 });
    await queue.submit("job", "much-higher", { priority: 3 });
    expect(await runOrder(queue)).toEqual(["much-higher", "old-low", "newer-high"]);
  });
});

/** Submit `n` tasks and run them with one worker: the requests it all took, by kind. */
async function requestsFor(storage: Storage, priorities: (i: number) => number | undefined) {
  const counted = countRequests(storage);
  const queue = new Queue({ storage: counted });
  for (let i = 0; i < 20; i++) {
    const priority = priorities(i);
    await queue.submit("job", i, priority === undefined ? {} : { priority });
  }
  const worker = new Worker(queue, {
    ...fast,
    concurrency: 1,
    skipDoctor: true,
    listReuseMs: 60_000,
  }).task("job", async () => {});
  expect(await worker.drain({ budgetMs: 60_000 })).toBe(20);
  return { ...counted.counts } as RequestCounts;
}

describe("cost", () => {
  it("a task costs the same requests with a priority as without", async () => {
    const without = await requestsFor(new MemoryStorage(), () => undefined);
    const mixed = await requestsFor(new MemoryStorage(), (i) => (i % 3) - 1);
    expect(mixed).toEqual(without);
  });
});
