/**
 * Typed task definitions (issue 13, item 1) on every storage, with arktype, zod and valibot
 * schemas: input validated at submit (nothing written when it fails) and again before the
 * handler runs, output validated, async validators, definition defaults. The compile-time side
 * is in typed-tasks.types.ts.
 */
import { type } from "arktype";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as z from "zod";
import { connect } from "../src/connect.ts";
import { ValidationError } from "../src/errors.ts";
import type { Queue } from "../src/queue/queue.ts";
import { defineTask } from "../src/task/definition.ts";
import type { StandardSchemaV1 } from "../src/task/standard-schema.ts";
import { Worker, type WorkerOptions } from "../src/worker/worker.ts";
import { keysUnder, type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, pause } from "./helpers/wait.ts";

/** The same email input schema in each validator library: `{ to: string, cc?: string[] }`. */
const emailInputs: Record<string, StandardSchemaV1> = {
  arktype: type({ to: "string", "cc?": "string[]" }),
  zod: z.object({ to: z.string(), cc: z.array(z.string()).optional() }),
  valibot: v.object({ to: v.string(), cc: v.optional(v.array(v.string())) }),
};
const messageOutputs: Record<string, StandardSchemaV1> = {
  arktype: type({ messageId: "string" }),
  zod: z.object({ messageId: z.string() }),
  valibot: v.object({ messageId: v.string() }),
};
const libraries = Object.keys(emailInputs);

/** A Standard Schema whose `validate` is async: accepts even numbers only. */
const asyncEven: StandardSchemaV1<number> = {
  "~standard": {
    version: 1,
    vendor: "test",
    validate: async (value) => {
      await pause(5);
      return typeof value === "number" && value % 2 === 0
        ? { value }
        : { issues: [{ message: "must be an even number", path: ["n"] }] };
    },
  },
};

for (const target of targets) {
  describe(`typed tasks on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    const workers: Worker[] = [];
    const worker = (options: WorkerOptions = {}) => {
      const w = new Worker(queue, { ...fast, skipDoctor: true, ...options });
      workers.push(w);
      return w;
    };
    /** Every key under the test's prefix except the manifest. */
    const taskKeys = async () =>
      (await keysUnder(env.storage, env.prefix)).filter((k) => !k.endsWith("queue.json"));

    beforeEach(async () => {
      env = await target.create();
      queue = await connect({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it.each(libraries)(
      "submit rejects bad input naming the path and writes nothing (%s)",
      async (lib) => {
        const email = defineTask("email", { input: emailInputs[lib]! });
        const error = await queue.submit(email, { to: 5, cc: ["ok", 7] }).catch((e) => e);
        expect(error).toBeInstanceOf(ValidationError);
        expect(error.code).toBe("VALIDATION");
        expect(error.message).toMatch(/^email input: /);
        expect(error.message).toMatch(/(^|; |: )to: /);
        expect(error.message).toMatch(/cc\[1\]: /);
        const many = await queue
          .submitMany([
            { type: email, input: { to: "a@example.com" } },
            { type: email, input: { to: ["not", "a", "string"] } },
          ])
          .catch((e) => e);
        expect(many).toBeInstanceOf(ValidationError);
        expect(many.message).toMatch(/^Task #1: email input: to: /);
        expect(await taskKeys()).toEqual([]);
        const ok = await queue.submit(email, { to: "a@example.com" });
        expect((await queue.get(ok.id)).input).toEqual({ to: "a@example.com" });
      },
    );

    it.each(libraries)(
      "a task whose stored input does not validate fails permanently without calling the handler (%s)",
      async (lib) => {
        const email = defineTask("email", { input: emailInputs[lib]!, maxRetries: 3 });
        // Submitted by name (an older producer, the CLI): stored unchecked.
        const bad = await queue.submit("email", { to: 42 });
        const good = await queue.submit(email, { to: "a@example.com" });
        const seen: unknown[] = [];
        await worker()
          .task(email, async (input) => {
            seen.push(input);
            return "sent";
          })
          .start();
        const failed = await queue.wait(bad, { timeout: 20 });
        expect(failed.status).toBe("failed");
        expect(failed.attempt).toBe(1);
        expect(failed.lastError?.name).toBe("InvalidInput");
        expect(failed.lastError?.message).toMatch(
          /stored input does not match the input schema of email, so the handler was not called: to: /,
        );
        expect((await queue.wait(good, { timeout: 20 })).output).toBe("sent");
        expect(seen).toEqual([{ to: "a@example.com" }]);
      },
    );

    it.each(libraries)(
      "a handler's output that does not validate fails the task permanently (%s)",
      async (lib) => {
        const email = defineTask("email", {
          input: emailInputs[lib]!,
          output: messageOutputs[lib]!,
          maxRetries: 3,
        });
        let runs = 0;
        await worker()
          .task(email, async (input) => {
            runs++;
            const { to } = input as { to: string };
            return to === "bad" ? { messageId: 7 } : { messageId: `<${to}>` };
          })
          .start();
        const good = await queue.wait(await queue.submit(email, { to: "a" }), { timeout: 20 });
        expect(good.output).toEqual({ messageId: "<a>" });
        const bad = await queue.wait(await queue.submit(email, { to: "bad" }), { timeout: 20 });
        expect(bad.status).toBe("failed");
        expect(bad.attempt).toBe(1);
        expect(bad.output).toBeNull();
        expect(bad.lastError?.name).toBe("InvalidOutput");
        expect(bad.lastError?.message).toMatch(/output schema of email: messageId: /);
        expect(runs).toBe(2);
      },
    );

    it("an async validator is awaited at submit and before the handler", async () => {
      const half = defineTask("half", { input: asyncEven });
      const error = await queue.submit(half, 3).catch((e) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.message).toBe("half input: n: must be an even number");
      expect(await taskKeys()).toEqual([]);
      const stale = await queue.submit("half", 5);
      await worker()
        .task(half, async (n) => n / 2)
        .start();
      expect((await queue.wait(await queue.submit(half, 8), { timeout: 20 })).output).toBe(4);
      const failed = await queue.wait(stale, { timeout: 20 });
      expect(failed.lastError?.name).toBe("InvalidInput");
      expect(failed.lastError?.message).toMatch(/: n: must be an even number$/);
    });

    it("stores and hands the handler the schema's result (defaults, transforms)", async () => {
      const resize = defineTask("resize", {
        input: v.object({ url: v.pipe(v.string(), v.trim()), width: v.optional(v.number(), 100) }),
      });
      const task = await queue.submit(resize, { url: "  https://example.com/a.png " });
      expect(task.input).toEqual({ url: "https://example.com/a.png", width: 100 });
      expect((await queue.get(task.id)).input).toEqual(task.input);
      await worker()
        .task(resize, async (input) => input.width * 2)
        .start();
      expect((await queue.wait(task, { timeout: 20 })).output).toBe(200);
    });

    it("refuses a schema whose output does not pass it again (it could never run)", async () => {
      const length = defineTask("length", { input: z.string().transform((s) => s.length) });
      const error = await queue.submit(length, "hello").catch((e) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.message).toMatch(/^length input: the value its schema returned does not pass/);
      expect(await taskKeys()).toEqual([]);
    });

    it("applies the definition's defaults; a submit's own options win", async () => {
      const email = defineTask("email", {
        input: emailInputs.arktype!,
        maxRetries: 7,
        timeoutSeconds: 30,
        ttlSeconds: 600,
        backoff: { initialSeconds: 2, maxSeconds: 60 },
      });
      const a = await queue.submit(email, { to: "a" });
      expect(a.maxRetries).toBe(7);
      expect(a.timeoutSeconds).toBe(30);
      expect(a.backoff).toMatchObject({ initialSeconds: 2, maxSeconds: 60 });
      expect(Date.parse(a.expiresAt!) - Date.parse(a.availableAt)).toBe(600_000);
      const expiresAt = new Date(queue.now() + 3_600_000).toISOString();
      const b = await queue.submit(
        email,
        { to: "b" },
        { maxRetries: 1, backoff: { maxSeconds: 10 }, expiresAt },
      );
      expect(b.maxRetries).toBe(1);
      expect(b.backoff).toMatchObject({ initialSeconds: 2, maxSeconds: 10 });
      expect(b.expiresAt).toBe(expiresAt);
      expect(() => defineTask("email", { input: emailInputs.arktype!, maxRetries: -1 })).toThrow(
        /defaults of task email: maxRetries must be a whole number >= 0/,
      );
      expect(() =>
        defineTask("email", { input: { parse: () => 1 } as unknown as StandardSchemaV1 }),
      ).toThrow(/input must be a Standard Schema v1 validator/);
    });
  });
}
