/**
 * A handler's output and its progress reports pass the same JSON check as a task's input: a Map
 * or a Set (anywhere in the value) is refused rather than stored as `{}`, its contents lost.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ValidationError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast } from "./helpers/wait.ts";

for (const target of targets) {
  describe(`handler output and progress JSON on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    const workers: Worker[] = [];
    const worker = () => {
      const w = new Worker(queue, { ...fast, monitor: false, skipDoctor: true });
      workers.push(w);
      return w;
    };
    const retrying = { maxRetries: 3, backoff: { initialSeconds: 0, maxSeconds: 0 } };

    beforeEach(async () => {
      env = await target.create();
      queue = new Queue({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it("ctx.progress(a Map or a Set) throws VALIDATION at the call and keeps nothing", async () => {
      const task = await queue.submit("p", null);
      const errors: unknown[] = [];
      await worker()
        .task("p", (_input, ctx) => {
          ctx.progress({ done: 1 });
          for (const value of [new Map([["done", 2]]), { seen: new Set([1, 2]) }]) {
            try {
              ctx.progress(value);
            } catch (error) {
              errors.push(error);
            }
          }
          return "ok";
        })
        .start();
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      // The last good value, not the {} the Map or {"seen": {}} the Set would have become.
      expect(done.progress).toEqual({ done: 1 });
      expect(errors.length).toBe(2);
      for (const e of errors) {
        expect(e).toBeInstanceOf(ValidationError);
        expect((e as ValidationError).code).toBe("VALIDATION");
      }
      // Says what is wrong, where, and what to do instead.
      expect((errors[0] as Error).message).toMatch(/progress is a Map, .*convert it to an array/);
      expect((errors[1] as Error).message).toMatch(/progress\.seen is a Set/);
    });

    it("a handler returning a Map or a Set, even nested, fails at once with InvalidOutput, not {}", async () => {
      const values: [string, unknown, RegExp][] = [
        ["map", new Map([["a", 1]]), /output is a Map, which JSON would store as \{\}/],
        ["set", { rows: [1, { ids: new Set([1]) }] }, /output\.rows\[1\]\.ids is a Set/],
        ["big", { n: 1n }, /output\.n is a BigInt/],
      ];
      const ids = new Map<string, string>();
      for (const [type] of values) ids.set(type, (await queue.submit(type, null, retrying)).id);
      const w = worker();
      const runs = new Map<string, number>();
      for (const [type, value] of values)
        w.task(type, () => {
          runs.set(type, (runs.get(type) ?? 0) + 1);
          return value;
        });
      await w.start();
      for (const [type, , message] of values) {
        const done = await queue.wait(ids.get(type)!, { timeout: 20 });
        expect(done.status, type).toBe("failed");
        expect(done.output, type).toBeNull();
        expect(done.lastError?.name, type).toBe("InvalidOutput");
        expect(done.lastError?.message, type).toMatch(
          new RegExp(`^Output of ${type} task is not JSON-serializable: `),
        );
        expect(done.lastError?.message, type).toMatch(message);
        // Permanent: the same handler would return the same value, so retries are not spent.
        expect(done.attempt, type).toBe(1);
        expect(runs.get(type), type).toBe(1);
      }
    });

    it("input, output and progress nest at most 128 levels: deeper is refused, never stored unreadable", async () => {
      const nest = (levels: number): unknown => {
        let value: unknown = 1;
        for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { k: value };
        return value;
      };
      // Submit: 128 levels are stored; 129 (and 5,000) are refused, naming the bound.
      const ok = await queue.submit("deep", nest(128));
      for (const levels of [129, 5000]) {
        const error = await queue.submit("deep", nest(levels)).catch((e: unknown) => e);
        expect(error, String(levels)).toBeInstanceOf(ValidationError);
        expect((error as Error).message).toMatch(
          /^Input of deep task is not JSON-serializable: input nests arrays and objects deeper than 128 levels, which oq does not store; flatten it \(level 129 starts at input[[.]/,
        );
      }
      // It used to accept up to about 2,000 levels here: a reader on a runtime with a smaller
      // stack, or any reader after the check below, could not read such a task back.
      const tooDeepOut = await queue.submit("out", null, retrying);
      const errors: unknown[] = [];
      await worker()
        .task("deep", (input, ctx) => {
          ctx.progress(nest(128));
          try {
            ctx.progress(nest(129));
          } catch (error) {
            errors.push(error);
          }
          return input;
        })
        .task("out", () => nest(129))
        .start();
      const done = await queue.wait(ok.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.output).toEqual(nest(128));
      expect(done.progress).toEqual(nest(128));
      expect(errors).toHaveLength(1);
      expect((errors[0] as ValidationError).code).toBe("VALIDATION");
      expect((errors[0] as Error).message).toMatch(
        /progress nests arrays and objects deeper than 128/,
      );
      const out = await queue.wait(tooDeepOut.id, { timeout: 20 });
      expect(out.status).toBe("failed");
      expect(out.lastError?.name).toBe("InvalidOutput");
      expect(out.lastError?.message).toMatch(/output nests arrays and objects deeper than 128/);
      expect(out.attempt).toBe(1);
    });

    it("an output the input check accepts completes as its JSON: a Date, toJSON, class fields", async () => {
      const at = new Date(0);
      const task = await queue.submit("ok", null);
      await worker()
        .task("ok", () => ({
          at,
          money: { toJSON: () => "1.00 EUR" },
          point: new (class {
            x = 1;
          })(),
        }))
        .start();
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.output).toEqual({ at: at.toISOString(), money: "1.00 EUR", point: { x: 1 } });
    });
  });
}
