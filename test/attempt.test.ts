/**
 * The worker's attempt lifecycle at its edges: stopping, draining and cancelling while handlers
 * ignore their signals, claims and outcomes caught in storage outages, and memory over many
 * loop turns (test/worker-memory.test.ts). Each test is named after the defect it pins.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "../src/connect.ts";
import { AmbiguousWriteError, UnavailableError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import type { PutOptions, Storage } from "../src/storage/storage.ts";
import {
  type Handler,
  Worker,
  type WorkerEvent,
  type WorkerOptions,
} from "../src/worker/worker.ts";
import { memoryTarget, s3Target, type TargetInstance } from "./helpers/targets.ts";
import { provenSafe } from "./helpers/verdict.ts";
import { fast, pause, until } from "./helpers/wait.ts";

/** Storage faults decided per call: return an error to throw instead of calling `inner`. */
interface Faults {
  /** Before a call reaches storage. */
  before?(op: string, key: string | undefined): Error | undefined;
  /** After a PUT committed, to lose its answer. */
  afterPut?(key: string, body: string, options: PutOptions | undefined): Error | undefined;
}

/** `inner` seen through a link that fails as `faults` say (the server's clock still reads). */
function faultyLink(inner: Storage, faults: Faults): Storage {
  const decoder = new TextDecoder();
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop === "serverTime") return value.bind(target);
      return async (...args: unknown[]) => {
        const key = typeof args[0] === "string" ? args[0] : undefined;
        const refused = faults.before?.(String(prop), key);
        if (refused !== undefined) throw refused;
        const result = await value.apply(target, args);
        if (prop === "put") {
          const body = args[1];
          const text = typeof body === "string" ? body : decoder.decode(body as Uint8Array);
          const lost = faults.afterPut?.(key!, text, args[2] as PutOptions | undefined);
          if (lost !== undefined) throw lost;
        }
        return result;
      };
    },
  });
}

const targets = [memoryTarget, ...(s3Target === undefined ? [] : [s3Target])];

for (const target of targets) {
  describe(`attempt lifecycle on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    const workers: Worker[] = [];
    const worker = (options: WorkerOptions = {}, on: Queue = queue) => {
      const w = new Worker(on, { ...fast, ...options });
      workers.push(w);
      return w;
    };
    /** Handlers still running; waited for before cleanup so none writes into a removed prefix. */
    const pending: Promise<unknown>[] = [];

    beforeEach(async () => {
      env = await target.create();
      queue = await connect({ storage: env.storage, prefix: env.prefix });
      // Workers start without probing: doctor proved this bucket once for the file.
      await provenSafe(queue);
    });
    afterEach(async () => {
      const late = pending.length > 0;
      await Promise.all(pending.splice(0));
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      // A handler that outlived its worker ends with a late outcome, whose marker delete is
      // batched (up to 500 ms): let it land before the prefix goes. Stopped workers flushed theirs.
      if (late) await pause(600);
      await env.cleanup();
    });

    it("a timeout longer than a timer's 24.8-day limit does not fire at once", async () => {
      // 30 days: a plain setTimeout stores the delay in 32 bits and fired it after 1 ms, so the
      // attempt failed at once with "timed out after 2592000s".
      const t = await queue.submit("long", null, { timeoutSeconds: "30d", maxRetries: 0 });
      const w = worker().task("long", async () => {
        await pause(300);
        return "done";
      });
      await w.start();
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.lastError).toBeNull();
    });

    it("stop() does not release a task while its handler still runs (defect 1)", async () => {
      const t = await queue.submit("charge", null);
      let active = 0;
      let mostActive = 0;
      let first: Worker | undefined;
      const charge: Handler = async (_input, ctx) => {
        active++;
        mostActive = Math.max(mostActive, active);
        try {
          if (ctx.workerId === first?.id) {
            // An HTTP call already in flight: the handler reacts to its signal only when it ends.
            await new Promise((resolve) =>
              ctx.signal.addEventListener("abort", () => setTimeout(resolve, 800)),
            );
            throw ctx.signal.reason;
          }
          return "charged";
        } finally {
          active--;
        }
      };
      first = worker().task("charge", charge);
      await first.start();
      await until("running", async () => (await queue.get(t.id)).status === "running");
      const second = worker().task("charge", charge);
      await second.start();
      await first.stop({ graceMs: 0 });
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(mostActive).toBe(1);
      expect(done).toMatchObject({ status: "completed", output: "charged", attempt: 1 });
      const events = (await queue.getVersions(t.id)).map((h) => h.task?.event);
      expect(events).toContain("released");
    });

    it("a handler ignoring its shutdown signal past the grace keeps its lease until it lapses (defect 3)", async () => {
      const t = await queue.submit("stubborn", null);
      let finished = () => {};
      pending.push(new Promise<void>((resolve) => (finished = resolve)));
      const first = worker({ leaseSeconds: 1, signalGraceMs: 200 }).task("stubborn", async () => {
        await pause(2500); // ignores its signal
        finished();
        return "late";
      });
      await first.start();
      await until("running", async () => (await queue.get(t.id)).status === "running");
      const second = worker({ leaseSeconds: 5 }).task("stubborn", (_i, ctx) => ctx.attempt);
      await second.start();
      await first.stop({ graceMs: 0 });
      const done = await queue.wait(t.id, { timeout: 20 });
      // Never handed back while it ran: the lease lapsed, and the lost attempt counts.
      const events = (await queue.getVersions(t.id)).map((h) => h.task?.event);
      expect(events).not.toContain("released");
      expect(done).toMatchObject({ status: "completed", output: 2, attempt: 2 });
      expect(done.lastError?.name).toBe("LeaseExpired");
    });

    it("cancelling a task whose handler ignores its signal ends it and frees the slot (defect 4)", async () => {
      let finish = () => {};
      const ignored = new Promise<void>((resolve) => (finish = resolve));
      pending.push(ignored);
      const w = worker({ leaseSeconds: 1, signalGraceMs: 200, concurrency: 1 })
        .task("stubborn", () => ignored)
        .task("next", () => "ran");
      try {
        const t = await queue.submit("stubborn", null);
        await w.start();
        await until("running", async () => (await queue.get(t.id)).status === "running");
        await queue.cancel(t.id);
        const next = await queue.submit("next", null);
        expect((await queue.wait(t.id, { timeout: 10 })).status).toBe("cancelled");
        expect(w.active).not.toContain(t.id);
        // The slot is free although the handler still runs.
        expect((await queue.wait(next.id, { timeout: 10 })).status).toBe("completed");
      } finally {
        finish();
      }
    });

    it("drain() returns by its budget while its slots are full (defect 5)", async () => {
      await queue.submit("long", null);
      let finished = () => {};
      pending.push(new Promise<void>((resolve) => (finished = resolve)));
      // The budget also covers doctor's first probe of a remote path; this test is about handlers.
      const w = worker({ signalGraceMs: 100, skipDoctor: true }).task("long", async () => {
        await pause(4000); // ignores its signal
        finished();
      });
      const began = Date.now();
      expect(await w.drain({ budgetMs: 300 })).toBe(1);
      // Today it waited for the handler (4 s); the budget is a deadline.
      expect(Date.now() - began).toBeLessThan(2500);
    });

    it("drain() runs what a fresh queue submitted a moment ago, every time", async () => {
      // A queue that has had no response yet stamps tasks with its local time, which can be
      // ahead of the worker's lower bound of server time (HTTP dates have second resolution):
      // such tasks may be due, and a drain waits the moment it takes to be sure.
      for (let round = 0; round < 5; round++) {
        const fresh = new Queue({ storage: env.storage, prefix: env.prefix });
        await fresh.submitMany([1, 2, 3].map((n) => ({ type: "quick", input: n })));
        const w = worker({ skipDoctor: true }, fresh).task("quick", async () => {});
        expect(await w.drain({ budgetMs: 10_000 })).toBe(3);
      }
    });

    it("drain() leaves a retry that is due after its backoff to the next drain", async () => {
      const t = await queue.submit("flaky", null, {
        maxRetries: 1,
        backoff: { initialSeconds: 4, maxSeconds: 4, factor: 1 },
      });
      const w = worker({ skipDoctor: true }).task("flaky", async (_input, ctx) => {
        if (ctx.attempt === 1) throw new Error("upstream busy");
      });
      const began = Date.now();
      // Due in 2-4 s, beyond the clock's uncertainty (about a second): "until none is left"
      // means none that may be due now, so the drain returns instead of sleeping it out.
      expect(await w.drain({ budgetMs: 10_000 })).toBe(1);
      expect(Date.now() - began).toBeLessThan(1900);
      expect(await queue.get(t.id)).toMatchObject({ status: "pending", attempt: 1 });
    });

    it("a task longer than every drain's budget fails after its retries (defect 5)", async () => {
      const t = await queue.submit("long", null, {
        maxRetries: 1,
        backoff: { initialSeconds: 0, maxSeconds: 0 },
      });
      const long: Handler = (_i, ctx) =>
        new Promise((_resolve, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
        );
      for (let cron = 0; cron < 5; cron++) {
        // A fresh worker per cron trigger, as on a Cloudflare Worker.
        await worker({ signalGraceMs: 100, skipDoctor: true })
          .task("long", long)
          .drain({ budgetMs: 400 });
        if ((await queue.get(t.id)).status === "failed") break;
      }
      const done = await queue.get(t.id);
      expect(done).toMatchObject({ status: "failed", attempt: 2 });
      expect(done.lastError).toMatchObject({ name: "BudgetExceeded", attempt: 2 });
      expect(done.lastError?.message).toMatch(/drain budget of 400 ms/);
    });

    it("an unseen claim during a read outage is handed back, not counted (defect 9)", async () => {
      const t = await queue.submit("once", null);
      let outageUntil = 0;
      let armed = true;
      const link = faultyLink(env.storage, {
        before: (op) =>
          (op === "get" || op === "list" || op === "head") && Date.now() < outageUntil
            ? new UnavailableError("storage restarting")
            : undefined,
        afterPut: (_key, body, options) => {
          if (!armed || options?.ifMatch === undefined || !body.includes('"event": "claimed"'))
            return undefined;
          // The claim committed, its answer was lost, and reads fail for longer than the
          // read-back retries (about 6 s).
          armed = false;
          outageUntil = Date.now() + 7000;
          return new AmbiguousWriteError("connection reset after the claim was sent");
        },
      });
      const runs: number[] = [];
      const w = worker({ leaseSeconds: 12 }, new Queue({ storage: link, prefix: env.prefix }));
      w.task("once", (_i, ctx) => runs.push(ctx.attempt));
      await w.start();
      const done = await queue.wait(t.id, { timeout: 30 });
      expect(armed).toBe(false);
      expect(done).toMatchObject({ status: "completed", attempt: 1, lastError: null });
      expect(runs).toEqual([1]);
    });

    it("keeps retrying a finished result through an 8 s storage outage (defect 20)", async () => {
      const t = await queue.submit("pay", null);
      let outageUntil = 0;
      const link = faultyLink(env.storage, {
        before: () =>
          Date.now() < outageUntil ? new UnavailableError("storage restarting") : undefined,
      });
      let runs = 0;
      const w = worker({ leaseSeconds: 30 }, new Queue({ storage: link, prefix: env.prefix }));
      w.task("pay", () => {
        runs++;
        outageUntil = Date.now() + 8000;
        return "paid";
      });
      await w.start();
      // Well before the 30 s lease could lapse and let the task run again.
      await until("completed", async () => (await queue.get(t.id)).status === "completed", 15_000);
      expect(runs).toBe(1);
      expect((await queue.get(t.id)).attempt).toBe(1);
    });

    it("reports a result given up once the lease ran out (defect 20)", async () => {
      const t = await queue.submit("pay", null);
      let outageUntil = 0;
      const link = faultyLink(env.storage, {
        before: () =>
          Date.now() < outageUntil ? new UnavailableError("storage restarting") : undefined,
      });
      const events: WorkerEvent[] = [];
      const w = worker(
        { leaseSeconds: 2, onEvent: (e) => events.push(e) },
        new Queue({ storage: link, prefix: env.prefix }),
      );
      w.task("pay", (_i, ctx) => {
        if (ctx.attempt === 1) outageUntil = Date.now() + 4000;
        return "paid";
      });
      await w.start();
      const done = await queue.wait(t.id, { timeout: 20 });
      expect(events.filter((e) => e.kind === "result-dropped")).toMatchObject([
        { id: t.id, attempt: 1 },
      ]);
      expect(done).toMatchObject({ status: "completed", attempt: 2 });
    });
  });
}
