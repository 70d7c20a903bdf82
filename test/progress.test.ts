import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { describeTask } from "../src/cli/status.ts";
import { createDashboard } from "../src/dashboard/handler.ts";
import { ValidationError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { type CountedStorage, countRequests } from "../src/storage/count.ts";
import { Worker, type WorkerOptions } from "../src/worker/worker.ts";
import { get } from "./dashboard/helpers.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, pause, until } from "./helpers/wait.ts";

for (const target of targets) {
  describe(`ctx.progress on ${target.name}`, () => {
    let env: TargetInstance;
    let storage: CountedStorage;
    let queue: Queue;
    const workers: Worker[] = [];
    const worker = (options: WorkerOptions = {}) => {
      const w = new Worker(queue, { ...fast, monitor: false, skipDoctor: true, ...options });
      workers.push(w);
      return w;
    };

    beforeEach(async () => {
      env = await target.create();
      storage = countRequests(env.storage);
      queue = new Queue({ storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it("shows the reported value through get while the handler runs, and the final one after", async () => {
      let release = () => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      const task = await queue.submit("video", { frames: 100 });
      await worker()
        .task("video", async (_input, ctx) => {
          ctx.progress({ done: 10, total: 100 });
          await held;
          ctx.progress({ done: 100, total: 100 });
          return "ok";
        })
        .start();
      // The first lease renewal, a second into the run, carries it.
      await until("the progress to show", async () => {
        const seen = await queue.get(task.id);
        return seen.status === "running" && (seen.progress as { done?: number })?.done === 10;
      });
      release();
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.progress).toEqual({ done: 100, total: 100 });
      // Progress writes are lease renewals: no history entry of their own.
      expect(done.history.map((e) => e.event)).toEqual([
        "submitted",
        "claimed",
        "lease-renewed",
        "completed",
      ]);
      const status = describeTask(done, queue.now(), styles);
      expect(status.some((line) => /^progress\s+\{"done":100,"total":100\}$/.test(line))).toBe(
        true,
      );
    });

    it("20 reports in a second cost no write of their own: the outcome carries the last", async () => {
      const task = await queue.submit("count", null);
      storage.reset();
      await worker()
        .task("count", async (_input, ctx) => {
          for (let i = 1; i <= 20; i++) {
            ctx.progress(i);
            await pause(30);
          }
          return "ok";
        })
        .start();
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(done.progress).toBe(20);
      // The claim and the outcome; a slow run adds its first lease renewal (and marker move).
      expect(storage.counts.PUT).toBeLessThanOrEqual(4);
    });

    it("writes a waiting value at most once per progressSeconds", async () => {
      const task = await queue.submit("count", null);
      let stop = false;
      await worker({ progressSeconds: 1 })
        .task("count", async (_input, ctx) => {
          for (let i = 1; !stop; i++) {
            ctx.progress(i);
            await pause(20);
          }
          return "ok";
        })
        .start();
      await until("a value reported after the first renewal", async () => {
        const seen = await queue.get(task.id);
        return seen.status === "running" && typeof seen.progress === "number" && seen.progress > 0;
      });
      storage.reset();
      const first = (await queue.get(task.id)).progress as number;
      await pause(2500);
      const later = (await queue.get(task.id)).progress as number;
      stop = true;
      expect(later).toBeGreaterThan(first);
      // 2.5 s at one write a second: at most 3 task writes (and one marker move with a renewal).
      expect(storage.counts.PUT).toBeLessThanOrEqual(4);
      expect((await queue.wait(task.id, { timeout: 20 })).status).toBe("completed");
    });

    it("refuses a value that is not JSON or larger than 4 KiB, synchronously", async () => {
      const task = await queue.submit("bad", null);
      const errors: unknown[] = [];
      await worker()
        .task("bad", (_input, ctx) => {
          for (const value of [10n, "x".repeat(5000)]) {
            try {
              ctx.progress(value);
            } catch (error) {
              errors.push(error);
            }
          }
          ctx.progress("x".repeat(4000));
          return "ok";
        })
        .start();
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(errors.length).toBe(2);
      for (const e of errors) expect(e).toBeInstanceOf(ValidationError);
      expect(done.progress).toBe("x".repeat(4000));
    });

    it("a cancel request racing progress writes still ends the task cancelled, with its progress", async () => {
      const task = await queue.submit("slow", null);
      await worker({ progressSeconds: 1, leaseSeconds: 6 })
        .task("slow", async (_input, ctx) => {
          for (let i = 1; !ctx.signal.aborted; i++) {
            ctx.progress(i);
            await pause(10);
          }
          ctx.progress("stopped");
          return "partial";
        })
        .start();
      await until("running", async () => (await queue.get(task.id)).progress !== null);
      await queue.cancel(task.id, { reason: "enough" });
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(done.status).toBe("cancelled");
      expect(done.progress).toBe("stopped");
    });

    it("a new attempt starts without the progress of the one before", async () => {
      const task = await queue.submit("fail-once", null, {
        backoff: { initialSeconds: 0, maxSeconds: 0 },
      });
      const seen: unknown[] = [];
      await worker()
        .task("fail-once", (_input, ctx) => {
          seen.push(ctx.task.progress);
          if (ctx.attempt === 1) {
            ctx.progress("half");
            throw new Error("again");
          }
          return null;
        })
        .start();
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(done).toMatchObject({ status: "completed", attempt: 2, progress: null });
      expect(seen).toEqual([null, null]);
    });

    it("the dashboard's task page shows progress, escaped", async () => {
      const evil = "<script>alert(1)</script>";
      const task = await queue.submit("page", null);
      await worker()
        .task("page", (_input, ctx) => {
          ctx.progress({ note: evil });
          return null;
        })
        .start();
      await queue.wait(task.id, { timeout: 20 });
      const page = await get(createDashboard(queue), `/tasks/${task.id}`);
      expect(page.text).toContain("<h2>Progress</h2>");
      expect(page.text).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
      expect(page.text).not.toContain("<script");
    });
  });
}

/** Styles without colour, for matching `oq status` lines. */
const styles = {
  bold: (s: string) => s,
  dim: (s: string) => s,
  red: (s: string) => s,
  green: (s: string) => s,
  yellow: (s: string) => s,
  cyan: (s: string) => s,
};
