/**
 * Core bugs the chaos scenarios found, each pinned by a small deterministic test (the fix is in
 * src/; see the comments there).
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../../src/logger.ts";
import { Queue } from "../../src/queue/queue.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { Worker, type WorkerEvent, type WorkerOptions } from "../../src/worker/worker.ts";
import { ERROR_FAULT_KINDS, type ErrorFaultKind, FaultyStorage } from "../support/faulty.ts";

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
});

const until = async (what: string, check: () => boolean, timeoutMs: number) => {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

function collect() {
  const warnings: string[] = [];
  const events: WorkerEvent[] = [];
  const logger: Logger = {
    info() {},
    warn: (m) => warnings.push(m),
    error: (m) => warnings.push(m),
  };
  return { warnings, events, logger };
}

describe("core fixes found by the chaos runs", () => {
  it("a storage error on one due task neither stalls the others nor backs the worker off", async () => {
    // Ten tasks whose reads always fail (an object behind a broken disk, a throttled key) and
    // ten healthy ones. The worker polls rarely (every 5 s at best, 60 s when idle), so any
    // back-off shows as seconds: the healthy tasks must all start from the first listing.
    const inner = new MemoryStorage();
    const setup = new Queue({ storage: inner });
    const poison = await setup.submitMany(Array.from({ length: 10 }, () => ({ type: "t" })));
    const healthy = await setup.submitMany(Array.from({ length: 10 }, () => ({ type: "t" })));
    const bad = new Set(poison.map((t) => setup.keys.task(t.id)));
    const storage = new FaultyStorage(inner, {
      faultRate: 1,
      mix: { "slow-down": 1, "server-error": 1, dropped: 1, timeout: 0 },
      filter: (call) => call.op === "get" && bad.has(call.key ?? ""),
    });
    const { warnings, logger } = collect();
    const queue = new Queue({ storage, logger });
    const done = new Set<string>();
    const options: WorkerOptions = {
      concurrency: 20,
      minPollMs: 5000,
      maxPollMs: 60_000,
      heartbeatSeconds: 0,
    };
    const w = new Worker(queue, options).task("t", (_input, ctx) => {
      done.add(ctx.task.id);
    });
    workers.push(w);
    await w.start();
    await until("every healthy task", () => healthy.every((t) => done.has(t.id)), 3000);
    expect(storage.faults["slow-down"] + storage.faults["server-error"]).toBeGreaterThan(0);
    // The failures were reported, not swallowed.
    expect(warnings.some((m) => /injected/.test(m))).toBe(true);
  });

  it("a running task without a lease is reported as malformed and skipped, not re-read on every pass", async () => {
    const storage = new MemoryStorage();
    const { warnings, events, logger } = collect();
    const queue = new Queue({ storage, logger });
    const victim = await queue.submit("t", null, { delay: 3600 });
    // Another client rewrites it as running without a lease (a hand edit gone wrong).
    const broken = { ...victim, status: "running", event: "claimed", attempt: 1, lease: null };
    const due = queue.keys.newReadyMarker({
      dueMs: Date.now() - 60_000,
      type: "t",
      part: 0,
      id: victim.id,
      nonce: "00000000",
    });
    await storage.put(queue.keys.full(due), "");
    await storage.put(queue.keys.task(victim.id), JSON.stringify({ ...broken, marker: due }));
    const good = await queue.submit("t", "fine");
    const w = new Worker(queue, {
      minPollMs: 20,
      maxPollMs: 50,
      listReuseMs: 0,
      heartbeatSeconds: 0,
      onEvent: (e) => events.push(e),
    }).task("t", (x) => x);
    workers.push(w);
    await w.start();
    expect((await queue.wait(good.id, { timeout: 10 })).output).toBe("fine");
    await until(
      "the malformed task is reported",
      () => events.some((e) => e.kind === "skipped-malformed"),
      3000,
    );
    await new Promise((r) => setTimeout(r, 300)); // several more passes
    expect(warnings.filter((m) => m.startsWith("poll failed"))).toEqual([]);
    expect(events.filter((e) => e.kind === "skipped-malformed").length).toBe(1);
    expect(warnings.some((m) => m.includes(victim.id) && /lease/.test(m))).toBe(true);
  });

  it("a task object whose id is not the one in its key is reported as malformed and skipped", async () => {
    const storage = new MemoryStorage();
    const { warnings, events, logger } = collect();
    const queue = new Queue({ storage, logger });
    const other = "0123456789abcdef0123456789abcdef";
    const victim = await queue.submit("t", null);
    // Someone copied another task's body over this one: its id names a different key.
    const current = await queue.get(victim.id);
    await storage.put(queue.keys.task(victim.id), JSON.stringify({ ...current, id: other }));
    const good = await queue.submit("t", "fine");
    const ran: string[] = [];
    const w = new Worker(queue, {
      minPollMs: 20,
      maxPollMs: 50,
      listReuseMs: 0,
      heartbeatSeconds: 0,
      onEvent: (e) => events.push(e),
    }).task("t", (x, ctx) => {
      ran.push(ctx.task.id);
      return x;
    });
    workers.push(w);
    await w.start();
    expect((await queue.wait(good.id, { timeout: 10 })).output).toBe("fine");
    await until(
      "the malformed task is reported",
      () => events.some((e) => e.kind === "skipped-malformed"),
      3000,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(warnings.filter((m) => m.startsWith("poll failed"))).toEqual([]);
    expect(ran).toEqual([good.id]);
    expect(await queue.read(other).catch(() => undefined)).toBeUndefined();
  });

  for (const kind of ["slow-down", "dropped", "server-error-after-commit"] as const) {
    it(`a finished result survives a transient error (${kind}) on its completion write`, async () => {
      // The lease is long: if the worker gave up on the result, the task would sit running for
      // 30 s and then run a second time. A worker that retries records it within moments.
      const inner = new MemoryStorage();
      const setup = new Queue({ storage: inner });
      const task = await setup.submit("t", "x");
      const key = setup.keys.task(task.id);
      let writes = 0;
      const storage = new FaultyStorage(inner, {
        faultRate: 1,
        mix: Object.fromEntries(ERROR_FAULT_KINDS.map((k) => [k, k === kind ? 1 : 0])),
        // The task's conditional writes: 1 claims, 2 completes (and fails once), 3 retries.
        filter: (call) =>
          call.op === "put" && call.key === key && call.conditional && ++writes === 2,
      });
      const { logger } = collect();
      const queue = new Queue({ storage, logger });
      let runs = 0;
      const w = new Worker(queue, {
        leaseSeconds: 30,
        minPollMs: 20,
        maxPollMs: 50,
        heartbeatSeconds: 0,
      }).task("t", (x) => {
        runs++;
        return x;
      });
      workers.push(w);
      await w.start();
      const done = await setup.wait(task.id, { timeout: 5 }).catch((e: unknown) => e);
      expect(storage.injected()).toBe(1);
      expect(done).toMatchObject({ status: "completed", output: "x", attempt: 1 });
      expect(runs).toBe(1);
    });
  }

  it("a claim that committed but answered 500 is settled even when the read-back is throttled", async () => {
    // The claim lands but its answer is a 500 (ambiguous); the GET that settles it gets a 503.
    // Giving up there leaves the task running under a lease nobody works on: it would start
    // only after the 30 s lease. Retrying the read-back settles the claim at once.
    const inner = new MemoryStorage();
    const setup = new Queue({ storage: inner });
    const task = await setup.submit("t", "x");
    const key = setup.keys.task(task.id);
    const only = (kind: ErrorFaultKind) =>
      Object.fromEntries(ERROR_FAULT_KINDS.map((k) => [k, k === kind ? 1 : 0]));
    let claimed = false;
    let readBacks = 0;
    // Two layers, one fault each: the inner one throttles the read-back, the outer one loses
    // the claim's answer after it committed.
    const throttled = new FaultyStorage(inner, {
      faultRate: 1,
      mix: only("slow-down"),
      filter: (call) => call.op === "get" && call.key === key && claimed && ++readBacks === 1,
    });
    const storage = new FaultyStorage(throttled, {
      faultRate: 1,
      mix: only("server-error-after-commit"),
      filter: (call) => {
        if (call.op !== "put" || call.key !== key || !call.conditional || claimed) return false;
        claimed = true;
        return true;
      },
    });
    const { logger } = collect();
    const queue = new Queue({ storage, logger });
    let runs = 0;
    const w = new Worker(queue, {
      leaseSeconds: 30,
      minPollMs: 20,
      maxPollMs: 50,
      heartbeatSeconds: 0,
    }).task("t", (x) => {
      runs++;
      return x;
    });
    workers.push(w);
    await w.start();
    const done = await setup.wait(task.id, { timeout: 5 }).catch((e: unknown) => e);
    expect(storage.faults["server-error-after-commit"]).toBe(1);
    expect(throttled.faults["slow-down"]).toBe(1);
    expect(done).toMatchObject({ status: "completed", attempt: 1 });
    expect(runs).toBe(1);
  });

  it("a task whose marker a worker saw before the task was written still starts at once", async () => {
    // Submit writes the marker, then the task. A worker that lists in between finds no task:
    // it must look again soon, not only when the marker could be deleted as stale (120 s on).
    // Here the task's write takes 1.5 s, as it can on a slow link.
    const storage = new MemoryStorage();
    const slowTaskWrites = new FaultyStorage(storage, {
      latency: { spikeRate: 1, spikeMs: 1500 },
      filter: (call) => call.op === "put" && call.key?.startsWith("tasks/") === true,
    });
    const submitter = new Queue({ storage: slowTaskWrites });
    const seen: string[] = [];
    const w = new Worker(new Queue({ storage }), {
      minPollMs: 20,
      maxPollMs: 100,
      listReuseMs: 0,
      heartbeatSeconds: 0,
    }).task("t", (_x, ctx) => {
      seen.push(ctx.task.id);
    });
    workers.push(w);
    await w.start();
    const task = await submitter.submit("t", null);
    expect(slowTaskWrites.faults["latency-spike"]).toBe(1);
    await until("the task runs", () => seen.includes(task.id), 5000);
  });
});
