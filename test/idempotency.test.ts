import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "../src/connect.ts";
import { IdempotencyConflictError, ValidationError } from "../src/errors.ts";
import { observeTaskWrite } from "../src/metrics/task-events.ts";
import { canonicalJson } from "../src/queue/idempotency.ts";
import { internals } from "../src/queue/internals.ts";
import type { Queue } from "../src/queue/queue.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";

it("canonicalJson sorts object keys at every depth and keeps array order", () => {
  expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe(
    canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }),
  );
  expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
});

for (const target of targets) {
  describe(`idempotency keys on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;

    beforeEach(async () => {
      env = await target.create();
      queue = await connect({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await env.cleanup();
    });

    /** Submit under `key` until the key's window has passed and the call creates a task. */
    const submitUntilCreated = async (key: string, input: unknown) => {
      let created = false;
      await until(
        "the key's window to pass",
        async () => {
          const result = await queue.submitUnique("report", input, {
            idempotencyKey: key,
            idempotencyWindow: 1,
          });
          created = result.created;
          return created;
        },
        10_000,
      );
      return created;
    };

    it("submitUnique says whether it created the task or found it (issue 13)", async () => {
      const first = await queue.submitUnique("report", { day: 1 }, { idempotencyKey: "r-1" });
      expect(first.created).toBe(true);
      const again = await queue.submitUnique("report", { day: 1 }, { idempotencyKey: "r-1" });
      expect(again).toEqual({ task: first.task, created: false });
      expect((await queue.submit("report", { day: 1 }, { idempotencyKey: "r-1" })).id).toBe(
        first.task.id,
      );
      await expect(
        // @ts-expect-error: the key is required
        queue.submitUnique("report", {}, {}),
      ).rejects.toBeInstanceOf(ValidationError);
      await expect(queue.submit("report", {}, { idempotencyWindow: "1h" })).rejects.toBeInstanceOf(
        ValidationError,
      );
    });

    it("a different input or type under the same key is an IdempotencyConflictError, not the first task (issue 13)", async () => {
      const first = await queue.submit("report", { a: 1, b: [1, 2] }, { idempotencyKey: "k" });
      // The same input with its keys in another order is the same input.
      const same = await queue.submitUnique("report", { b: [1, 2], a: 1 }, { idempotencyKey: "k" });
      expect(same.created).toBe(false);
      for (const attempt of [
        () => queue.submit("report", { a: 2, b: [1, 2] }, { idempotencyKey: "k" }),
        () => queue.submitUnique("report", { a: 1, b: [2, 1] }, { idempotencyKey: "k" }),
        () => queue.submitUnique("email", { a: 1, b: [1, 2] }, { idempotencyKey: "k" }),
      ]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(IdempotencyConflictError);
        expect((error as IdempotencyConflictError).code).toBe("IDEMPOTENCY_CONFLICT");
        expect((error as IdempotencyConflictError).key).toBe(first.id);
      }
      expect((await queue.get(first.id)).input).toEqual({ a: 1, b: [1, 2] });
    });

    it("of 8 concurrent submits of one key exactly one is created", async () => {
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          queue.submitUnique("report", { n: 1 }, { idempotencyKey: "race" }),
        ),
      );
      expect(results.filter((r) => r.created).length).toBe(1);
      expect(new Set(results.map((r) => r.task.id)).size).toBe(1);
      expect(new Set(results.map((r) => r.task.createdAt)).size).toBe(1);
    });

    it("after its window a key makes a new task once the old one finished, never while it is pending", async () => {
      const first = await queue.submitUnique(
        "report",
        { n: 1 },
        { idempotencyKey: "daily", idempotencyWindow: 1 },
      );
      // Past the window, a pending task is still returned as it is.
      await new Promise((r) => setTimeout(r, 2100));
      const pending = await queue.submitUnique(
        "report",
        { n: 1 },
        { idempotencyKey: "daily", idempotencyWindow: 1 },
      );
      expect(pending).toEqual({ task: first.task, created: false });
      await queue.cancel(first.task.id);
      const next = await queue.submitUnique(
        "report",
        { n: 2 },
        { idempotencyKey: "daily", idempotencyWindow: "1s" },
      );
      expect(next.created).toBe(true);
      expect(next.task.id).toBe(first.task.id);
      expect(next.task).toMatchObject({ status: "pending", attempt: 0, input: { n: 2 } });
      expect(next.task.history.map((e) => e.event)).toEqual(["submitted"]);
      expect(next.task.createdAt > first.task.createdAt).toBe(true);
      // Metrics count the replacement as a submitted task.
      const cancelled = {
        ...first.task,
        status: "cancelled" as const,
        event: "cancelled" as const,
      };
      expect(observeTaskWrite(cancelled, next.task).counters).toEqual(["submitted"]);
      // The new task is in the ready index: a worker runs it.
      const worker = new Worker(queue, { ...fast }).task("report", (input) => input);
      try {
        await worker.start();
        expect((await queue.wait(next.task.id, { timeout: 20 })).output).toEqual({ n: 2 });
      } finally {
        await worker.stop({ graceMs: 0 });
      }
    });

    it("of 8 concurrent submits replacing a finished task past its window exactly one is created", async () => {
      const first = await queue.submit("report", 1, { idempotencyKey: "k", idempotencyWindow: 1 });
      await queue.cancel(first.id);
      await new Promise((r) => setTimeout(r, 2100));
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          queue.submitUnique("report", 2, { idempotencyKey: "k", idempotencyWindow: 1 }),
        ),
      );
      expect(results.filter((r) => r.created).length).toBe(1);
      expect(new Set(results.map((r) => r.task.createdAt)).size).toBe(1);
      expect((await queue.get(first.id)).status).toBe("pending");
    });

    it("a prune of the replaced completed task's journal entry leaves the new task alone", async () => {
      const first = await queue.submit("report", 1, { idempotencyKey: "k", idempotencyWindow: 1 });
      const worker = new Worker(queue, { ...fast }).task("report", (input) => input);
      try {
        await worker.start();
        await queue.wait(first.id, { timeout: 20 });
      } finally {
        await worker.stop({ graceMs: 0 });
      }
      await internals(queue).flush();
      expect(await submitUntilCreated("k", 1)).toBe(true);
      // The journal's time is its entry's, rounded up to the second: due once server time passed it.
      let seen = { skipped: 0, deleted: 0 };
      await until("the prune to reach the journal", async () => {
        seen = await queue.prune({ retention: { completed: 0 } });
        return seen.skipped + seen.deleted > 0;
      });
      expect(seen).toMatchObject({ skipped: 1, deleted: 0 });
      expect(await queue.get(first.id)).toMatchObject({ status: "pending", attempt: 0 });
    });
  });
}
