import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "../src/connect.ts";
import {
  ConfigError,
  InvalidStateError,
  NotFoundError,
  TimeoutError,
  ValidationError,
} from "../src/errors.ts";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { PermanentError, Worker, type WorkerOptions } from "../src/worker/worker.ts";
import { expectValidHistory } from "./helpers/history.ts";
import { s3Config, type TargetInstance, targets, testS3Storage } from "./helpers/targets.ts";
import { provenSafe } from "./helpers/verdict.ts";
import { fast, until } from "./helpers/wait.ts";

for (const target of targets) {
  describe(`queue on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    const workers: Worker[] = [];
    const worker = (options: WorkerOptions = {}) => {
      const w = new Worker(queue, { ...fast, ...options });
      workers.push(w);
      return w;
    };

    beforeEach(async () => {
      env = await target.create();
      queue = await connect({ storage: env.storage, prefix: env.prefix });
      // Workers start without probing: doctor proved this bucket once for the file.
      await provenSafe(queue);
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it("runs the full lifecycle: submit, claim, complete, history", async () => {
      const submitted = await queue.submit("add", { a: 2, b: 3 });
      expect(submitted.status).toBe("pending");
      expect((await queue.get(submitted.id)).input).toEqual({ a: 2, b: 3 });
      const seen: number[] = [];
      const w = worker().task("add", async (input: { a: number; b: number }, ctx) => {
        seen.push(ctx.attempt);
        return input.a + input.b;
      });
      await w.start();
      const done = await queue.wait(submitted.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.output).toBe(5);
      expect(done.attempt).toBe(1);
      expect(done.marker).toBeNull();
      expect(seen).toEqual([1]);
      const history = await queue.getVersions(submitted.id);
      expect(history.map((h) => h.task?.event)).toEqual(["submitted", "claimed", "completed"]);
      // Finished tasks leave nothing in the ready index: markers go in a batch within a second.
      const markerCount = async () => {
        let n = 0;
        for await (const _ of internals(queue).markers()) n++;
        return n;
      };
      await until("the marker is deleted", async () => (await markerCount()) === 0, 2000);
    });

    it("8 workers on 500 tasks run each task exactly once", async () => {
      const runs = new Map<string, number>();
      const tasks = await queue.submitMany(
        Array.from({ length: 500 }, (_, i) => ({ type: "count", input: i })),
      );
      for (let i = 0; i < 8; i++) {
        worker({ concurrency: 4 }).task("count", async (_input, ctx) => {
          runs.set(ctx.task.id, (runs.get(ctx.task.id) ?? 0) + 1);
          return ctx.workerId;
        });
      }
      await Promise.all(workers.map((w) => w.start()));
      await until(
        "all 500 done",
        () => [...runs.values()].length === 500 && workers.every((w) => w.active.length === 0),
        90_000,
      );
      await Promise.all(workers.map((w) => w.stop()));
      expect(runs.size).toBe(500);
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
      const page = await queue.list({ status: "completed", limit: 1000 });
      expect(page.tasks.length).toBe(500);
      expect(new Set(tasks.map((t) => t.id))).toEqual(new Set(page.tasks.map((t) => t.id)));
      expect(workers.reduce((n, w) => n + w.stats.completed, 0)).toBe(500);
    }, 120_000);

    it("retries with backoff until retries run out, then replay runs it to completion", async () => {
      let fail = true;
      const attempts: number[] = [];
      const t = await queue.submit("flaky", null, {
        maxRetries: 2,
        backoff: { initialSeconds: 0.05, maxSeconds: 0.1 },
      });
      await worker()
        .task("flaky", async (_i, ctx) => {
          attempts.push(ctx.attempt);
          if (fail) throw new TypeError(`boom ${ctx.attempt}`);
          return "ok";
        })
        .start();
      const failed = await queue.wait(t.id, { timeout: 20 });
      expect(failed.status).toBe("failed");
      expect(failed.attempt).toBe(3);
      expect(failed.lastError).toMatchObject({ name: "TypeError", message: "boom 3", attempt: 3 });
      expect(attempts).toEqual([1, 2, 3]);
      fail = false;
      await queue.replay(t.id);
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.output).toBe("ok");
      const events = (await queue.getVersions(t.id)).map((h) => h.task!.event);
      expect(events).toEqual([
        "submitted",
        "claimed",
        "retry-scheduled",
        "claimed",
        "retry-scheduled",
        "claimed",
        "failed",
        "replayed",
        "claimed",
        "completed",
      ]);
      expectValidHistory(events);
      await expect(queue.replay(t.id)).rejects.toBeInstanceOf(InvalidStateError);
    });

    it("fails at once on a PermanentError", async () => {
      const t = await queue.submit("bad", null, { maxRetries: 5 });
      await worker()
        .task("bad", () => {
          throw new PermanentError("no way");
        })
        .start();
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(done).toMatchObject({
        status: "failed",
        attempt: 1,
        lastError: { name: "PermanentError", permanent: true },
      });
    });

    it("times out an attempt, fires its signal, and retries", async () => {
      const reasons: string[] = [];
      const t = await queue.submit("slow", null, {
        timeoutSeconds: 0.3,
        maxRetries: 1,
        backoff: { initialSeconds: 0.01, maxSeconds: 0.01 },
      });
      await worker()
        .task(
          "slow",
          (_i, ctx) =>
            new Promise((resolve) => {
              ctx.signal.addEventListener("abort", () => {
                reasons.push((ctx.signal.reason as Error).name);
                resolve("late");
              });
            }),
        )
        .start();
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(done.status).toBe("failed");
      expect(done.attempt).toBe(2);
      expect(done.lastError?.name).toBe("Timeout");
      expect(reasons).toEqual(["Timeout", "Timeout"]);
    });

    it("expires a task whose TTL runs out before it starts", async () => {
      const t = await queue.submit("nobody-runs-this", null, { ttlSeconds: 0.3 });
      const keep = await queue.submit("nobody-runs-this", null, { ttlSeconds: 3600 });
      await new Promise((r) => setTimeout(r, 1500));
      await worker().start(); // a pure monitor: no handlers
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(done.status).toBe("expired");
      expect((await queue.get(keep.id)).status).toBe("pending");
    });

    it("never starts a delayed task early", async () => {
      const started: number[] = [];
      const t = await queue.submit("later", null, { delay: "1.5s" });
      const at = Date.parse(t.availableAt);
      await worker()
        .task("later", () => {
          started.push(queue.now());
        })
        .start();
      await queue.wait(t.id, { timeout: 20 });
      expect(started.length).toBe(1);
      expect(started[0]).toBeGreaterThanOrEqual(at);
      const scheduled = await queue.submit("later", null, {
        scheduleAt: new Date(queue.now() + 1000).toISOString(),
      });
      expect((await queue.wait(scheduled.id, { timeout: 20 })).status).toBe("completed");
    });

    it("cancels pending tasks, by type, and running ones cooperatively", async () => {
      const a = await queue.submit("idle", 1, { delay: 3600 });
      expect((await queue.cancel(a.id, { reason: "not needed" })).status).toBe("cancelled");
      expect((await queue.get(a.id)).cancel?.reason).toBe("not needed");
      await expect(queue.cancel(a.id)).rejects.toBeInstanceOf(InvalidStateError);

      const byType = await queue.submitMany(
        [1, 2, 3].map((i) => ({ type: "bulk", input: i, options: { delay: 3600 } })),
      );
      const other = await queue.submit("keep", 0, { delay: 3600 });
      const outcomes = await queue.cancelByType("bulk", { reason: "cleanup" });
      expect(outcomes.map((o) => o.result).sort()).toEqual(["cancelled", "cancelled", "cancelled"]);
      for (const t of byType) expect((await queue.get(t.id)).status).toBe("cancelled");
      expect((await queue.get(other.id)).status).toBe("pending");
      const many = await queue.cancelMany([other.id, "0000missing", "../bad"]);
      expect(many.map((o) => o.result)).toEqual(["cancelled", "not-found", "invalid-id"]);

      let sawSignal = false;
      const running = await queue.submit("long", null);
      await worker({ leaseSeconds: 1 })
        .task("long", async (_i, ctx) => {
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener("abort", () => resolve()),
          );
          sawSignal = (ctx.signal.reason as Error).name === "Cancelled";
          expect(await ctx.isCancellationRequested()).toBe(true);
          return "stopped early";
        })
        .start();
      await until("running", async () => (await queue.get(running.id)).status === "running");
      const requested = await queue.cancel(running.id, { reason: "user" });
      expect(requested.status).toBe("running");
      expect(requested.event).toBe("cancel-requested");
      const done = await queue.wait(running.id, { timeout: 20 });
      expect(done.status).toBe("cancelled");
      expect(sawSignal).toBe(true);
      expectValidHistory((await queue.getVersions(running.id)).map((h) => h.task!.event));
    });

    it("returns the first task for a repeated idempotency key", async () => {
      const first = await queue.submit("once", { n: 1 }, { idempotencyKey: "order-42" });
      const second = await queue.submit("once", { n: 1 }, { idempotencyKey: "order-42" });
      expect(second.id).toBe(first.id);
      expect(second.createdAt).toBe(first.createdAt);
      const racing = await Promise.all(
        Array.from({ length: 8 }, () => queue.submit("once", { i: 1 }, { idempotencyKey: "race" })),
      );
      expect(new Set(racing.map((t) => t.id)).size).toBe(1);
      expect((await queue.getVersions(racing[0]!.id)).length).toBe(1);
      const markers = [];
      for await (const m of internals(queue).markers()) markers.push(m);
      // Losers may leave an orphan marker only until they delete it: none are left.
      expect(markers.length).toBe(2);
    });

    it("hands a running task back on stop, without counting the attempt", async () => {
      const t = await queue.submit("stuck", null);
      const w = worker({ shutdownGraceMs: 100 }).task(
        "stuck",
        (_i, ctx) => new Promise((r) => ctx.signal.addEventListener("abort", r)),
      );
      await w.start();
      await until("running", async () => (await queue.get(t.id)).status === "running");
      await w.stop();
      const back = await queue.get(t.id);
      expect(back).toMatchObject({ status: "pending", attempt: 0, event: "released", lease: null });
    });

    it("recovers a task whose worker vanished once its lease expires, without stealing live leases", async () => {
      const t = await queue.submit("crashy", null);
      // The first worker reaches storage through a link we can cut, like a crashed process:
      // it can neither renew its lease nor hand the task back.
      let cut = false;
      const link = new Proxy(env.storage, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (typeof value !== "function" || prop === "serverTime")
            return typeof value === "function" ? value.bind(target) : value;
          return (...args: unknown[]) =>
            cut ? Promise.reject(new Error("link cut")) : value.apply(target, args);
        },
      });
      const crashing = new Queue({ storage: link, prefix: env.prefix });
      const first = new Worker(crashing, {
        ...fast,
        leaseSeconds: 2,
        monitor: false,
        shutdownGraceMs: 0,
        // A crashed process gives its handler no time to settle (stop() waited the default 5 s).
        signalGraceMs: 100,
      });
      workers.push(first);
      first.task("crashy", () => new Promise(() => {})); // hangs forever
      await first.start();
      await until("claimed", async () => (await queue.get(t.id)).status === "running");
      cut = true;
      const claimedBy = (await queue.get(t.id)).lease?.workerId;
      const second = worker({ leaseSeconds: 5 }).task(
        "crashy",
        (_i, ctx) => `recovered on attempt ${ctx.attempt}`,
      );
      await second.start();
      await new Promise((r) => setTimeout(r, 500));
      // Still inside the first lease: nobody may take it over yet.
      expect((await queue.get(t.id)).lease?.workerId).toBe(claimedBy);
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.output).toBe("recovered on attempt 2");
      expect(done.lastError?.name).toBe("LeaseExpired");
      expect(second.stats.completed).toBe(1);
    });

    it("tells the handler when its lease expires because storage cannot be reached", async () => {
      let cut = false;
      const link = new Proxy(env.storage, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (typeof value !== "function") return value;
          if (prop === "serverTime") return value.bind(target);
          return (...args: unknown[]) =>
            cut ? Promise.reject(new Error("link cut")) : value.apply(target, args);
        },
      });
      await queue.submit("cutoff", null);
      let reason = "";
      const w = new Worker(new Queue({ storage: link, prefix: env.prefix }), {
        ...fast,
        leaseSeconds: 1,
        shutdownGraceMs: 0,
      });
      workers.push(w);
      w.task(
        "cutoff",
        (_i, ctx) =>
          new Promise<void>((resolve) => {
            cut = true;
            ctx.signal.addEventListener("abort", () => {
              reason = (ctx.signal.reason as Error).name;
              resolve();
            });
          }),
      );
      await w.start();
      await until("the handler is told", () => reason !== "", 10_000);
      expect(reason).toBe("LeaseLost");
      cut = false;
    });

    it("rejects bad input with errors that say what to fix", async () => {
      await expect(queue.submit("../x", null)).rejects.toBeInstanceOf(ValidationError);
      await expect(queue.submit("a/b", null)).rejects.toThrow(/task type/);
      await expect(queue.submit("ok", { f: () => 1 })).rejects.toThrow(/not JSON-serializable/);
      await expect(queue.submit("ok", { n: 10n })).rejects.toThrow(/BigInt/);
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await expect(queue.submit("ok", cyclic)).rejects.toThrow(/not JSON-serializable/);
      await expect(queue.submit("ok", "x".repeat(32 * 1024 * 1024))).rejects.toThrow(
        /limit is 33554432 \(maxInputBytes\)/,
      );
      await expect(queue.submit("ok", null, { delay: "1x" })).rejects.toThrow(
        /expected a number of seconds/,
      );
      await expect(queue.submit("ok", null, { scheduleAt: "tomorrow" })).rejects.toThrow(
        /ISO 8601/,
      );
      await expect(
        queue.submit("ok", null, { ttlSeconds: 1, scheduleAt: Date.now() + 10_000, expiresAt: 1 }),
      ).rejects.toThrow(/either/);
      await expect(queue.get("nope")).rejects.toBeInstanceOf(NotFoundError);
      await expect(queue.get("../../etc")).rejects.toBeInstanceOf(ValidationError);
      await expect(
        queue.wait((await queue.submit("never", null)).id, { timeout: 0.2 }),
      ).rejects.toBeInstanceOf(TimeoutError);
    });

    it("reports and skips malformed objects without crashing or spinning", async () => {
      const warnings: string[] = [];
      const q = new Queue({
        storage: env.storage,
        prefix: env.prefix,
        logger: { info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
      });
      const k = q.keys;
      await env.storage.put(`${k.partition("t", 0)}garbage`, "x");
      await env.storage.put(`${k.partition("t", 0)}20200101T000000Z/deadbeef.abc`, "");
      await env.storage.put(k.task("deadbeef"), "{not json");
      await env.storage.put(`${k.partition("t", 0)}20200101T000000Z/cafe.abc`, "");
      await env.storage.put(k.task("cafe"), JSON.stringify({ oq: 1, id: "cafe" }));
      const good = await q.submit("t", "fine");
      const w = new Worker(q, fast).task("t", (x) => x);
      workers.push(w);
      await w.start();
      expect((await q.wait(good.id, { timeout: 20 })).output).toBe("fine");
      await new Promise((r) => setTimeout(r, 300));
      expect(w.stats.polls).toBeLessThan(40); // backs off instead of spinning
      expect(warnings.some((m) => m.includes("garbage"))).toBe(true);
      expect(warnings.some((m) => m.includes("deadbeef") && m.includes("not JSON"))).toBe(true);
      expect(warnings.some((m) => m.includes("cafe") && m.includes("not a valid task"))).toBe(true);
      const page = await q.list({ limit: 10 });
      expect(page.tasks.map((t) => t.id)).toEqual([good.id]);
    });
  });
}

describe("versioning check", () => {
  it("refuses an unversioned bucket unless allowed, and says how to fix it", async () => {
    const storage = new MemoryStorage({ versioning: "Disabled" });
    await expect(connect({ storage })).rejects.toBeInstanceOf(ConfigError);
    await expect(connect({ storage })).rejects.toThrow(/OQ_ALLOW_NO_VERSIONING=1/);
    const warnings: string[] = [];
    const q = await connect({
      storage,
      allowNoVersioning: true,
      logger: { info() {}, warn: (m) => warnings.push(m), error() {} },
    });
    expect(warnings.join()).toMatch(/history is unavailable/);
    await q.submit("x", null);
    expect(await connect({ storage, env: { OQ_ALLOW_NO_VERSIONING: "1" } })).toBeInstanceOf(Queue);
  });

  if (s3Config?.unversionedBucket) {
    it("refuses the unversioned MinIO bucket without the override", async () => {
      const storage = testS3Storage(s3Config!.unversionedBucket);
      await expect(connect({ storage })).rejects.toThrow(/versioning is (Disabled|Suspended)/);
      const q = await connect({ storage, allowNoVersioning: true, prefix: `unv-${Date.now()}` });
      const t = await q.submit("x", 1);
      expect((await q.getVersions(t.id)).length).toBe(1);
      await storage.delete(q.keys.task(t.id));
      await storage.delete(q.keys.full(t.marker!));
    });
  }
});

/**
 * The same storage seen from a process whose local clock is `skewMs` off: its own clock reads
 * `Date.now() + skewMs`, and so does the local time it pairs with each server `Date`.
 */
function skewedView(storage: MemoryStorage, skewMs: number) {
  const now = () => Date.now() + skewMs;
  const view = new Proxy(storage, {
    get(target, prop, receiver) {
      if (prop === "serverTime") {
        return () => {
          const seen = target.serverTime();
          return seen === undefined
            ? undefined
            : { ...seen, sentMs: seen.sentMs + skewMs, localMs: seen.localMs + skewMs };
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { storage: view, now };
}

describe("server clock", () => {
  for (const skew of [-5 * 60_000, 5 * 60_000]) {
    it(`a worker whose clock is 5 minutes ${skew > 0 ? "fast" : "slow"} neither starts early nor steals a live lease`, async () => {
      const storage = new MemoryStorage();
      const submitter = await connect({ storage });
      const t = await submitter.submit("skewed", null, { delay: 1 });
      const started: number[] = [];
      const make = (out: string, hold: number) => {
        const view = skewedView(storage, skew);
        const q = new Queue(view);
        return new Worker(q, { ...fast, leaseSeconds: 2 }).task("skewed", async () => {
          started.push(Date.now());
          await new Promise((r) => setTimeout(r, hold)); // longer than the lease: renewed, never stolen
          return out;
        });
      };
      const w = make("ok", 2500);
      const thief = make("stolen", 0);
      await w.start();
      await until("claimed", async () => (await submitter.get(t.id)).status === "running");
      await thief.start();
      const done = await submitter.wait(t.id, { timeout: 20 });
      await Promise.all([w.stop(), thief.stop()]);
      expect(done.output).toBe("ok");
      expect(done.attempt).toBe(1);
      expect(started.length).toBe(1);
      expect(started[0]).toBeGreaterThanOrEqual(Date.parse(t.availableAt));
    });
  }
});

describe("worker shutdown", () => {
  it("leaves no timer behind once stop() returns, so an embedding process can exit", async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const queue = await connect({ storage: new MemoryStorage() });
    const before = timers();
    const w = new Worker(queue, { heartbeatSeconds: 1 }).task("x", () => 1);
    await w.start();
    await queue.submit("x", null);
    await new Promise((r) => setTimeout(r, 300));
    await w.stop();
    await internals(queue).flush();
    expect(timers()).toBeLessThanOrEqual(before);
  });
});

describe("deep ready index", () => {
  it("a deep index of another type costs no more than one LIST a poll, and its own task is still found", async () => {
    const storage = countRequests(new MemoryStorage());
    const queue = await connect({ storage });
    await queue.submitMany(Array.from({ length: 3500 }, (_, i) => ({ type: "other", input: i })));
    const mine = await queue.submit("zzz", "found", { delay: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    storage.reset();
    const w = new Worker(queue, { ...fast, monitor: false }).task("zzz", (x) => x);
    await w.start();
    try {
      expect((await queue.wait(mine.id, { timeout: 20 })).output).toBe("found");
    } finally {
      await w.stop();
    }
    expect(storage.counts.LIST).toBeLessThanOrEqual(w.stats.polls + 1);
    expect(w.stats.polls).toBeGreaterThanOrEqual(2);
  });
});
