/**
 * Large inputs and outputs (issue 13, item 9): stored once as objects of their own that the task
 * names, read by the worker before the handler and by `get`, deleted with the task, refused above
 * the limit; a small task costs what it did. docs/protocol.md, "Large inputs and outputs".
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { styles } from "../src/cli/output.ts";
import { describeTask } from "../src/cli/status.ts";
import { MalformedObjectError, NotFoundError, ValidationError } from "../src/errors.ts";
import { PAYLOAD_GRACE_MS } from "../src/queue/payload-sweep.ts";
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import type { TaskRecord } from "../src/task/record.ts";
import { Worker } from "../src/worker/worker.ts";
import { runAll } from "./helpers/run.ts";
import { keysUnder, type TargetInstance, targets } from "./helpers/targets.ts";
import { fast as fastPolls, pause, until } from "./helpers/wait.ts";

const fast = { ...fastPolls, skipDoctor: true, monitor: false };
const MB5 = 5 * 1000 * 1000;
const encoder = new TextEncoder();

/** A storage that records every PUT (key, bytes) and GET (key) it passes on. */
function recording(inner: Storage) {
  const puts: { key: string; bytes: number }[] = [];
  const gets: string[] = [];
  const storage = new Proxy(inner, {
    get(target, prop) {
      if (prop === "put")
        return (key: string, body: Uint8Array | string, options?: object) => {
          puts.push({
            key,
            bytes: typeof body === "string" ? encoder.encode(body).length : body.length,
          });
          return target.put(key, body, options);
        };
      if (prop === "get")
        return (key: string, options?: object) => {
          gets.push(key);
          return target.get(key, options);
        };
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { storage, puts, gets };
}

for (const target of targets) {
  describe(`large inputs and outputs on ${target.name}`, () => {
    let env: TargetInstance;
    let rec: ReturnType<typeof recording>;
    let queue: Queue;
    const workers: Worker[] = [];
    const worker = (options = {}) => {
      const w = new Worker(queue, { ...fast, ...options });
      workers.push(w);
      return w;
    };
    const payloadKeys = () => keysUnder(env.storage, queue.keys.payloads);

    beforeEach(async () => {
      env = await target.create();
      rec = recording(env.storage);
      queue = new Queue({ storage: rec.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it("a 5 MB input and output are stored once, not in every version of the task (item 9)", async () => {
      const input = { blob: "x".repeat(MB5) };
      const submitted = await queue.submit("big", input);
      expect(submitted.input).toBeNull();
      expect(submitted.inputRef).toMatchObject({ bytes: MB5 + 11 });
      expect(submitted.inputRef!.key).toMatch(
        new RegExp(`^payloads/./${submitted.id}/input\\.[0-9a-f]{16}\\.json$`),
      );
      let seen = 0;
      worker({ leaseSeconds: 3 })
        .task("big", async (got: { blob: string }) => {
          seen = got.blob.length;
          await pause(1500); // past the first lease check: a renewal rewrites the task
          return { echo: got.blob.toUpperCase() };
        })
        .start();
      const done = await queue.wait(submitted.id, { timeout: 30 });
      expect(seen).toBe(MB5);
      expect(done.status).toBe("completed");
      expect((done.input as { blob: string }).blob).toBe(input.blob);
      expect((done.output as { echo: string }).echo).toBe("X".repeat(MB5));
      expect(done.outputRef!.key).toMatch(/\/output\.1\.[0-9a-f]{16}\.json$/);

      const taskKey = queue.keys.task(submitted.id);
      const taskPuts = rec.puts.filter((p) => p.key === taskKey);
      // Submit, claim, renewal, completion: every version stays small.
      expect(taskPuts.length).toBeGreaterThanOrEqual(4);
      for (const p of taskPuts) expect(p.bytes).toBeLessThan(16 * 1024);
      const payloadPuts = rec.puts.filter((p) => p.key.startsWith(queue.keys.payloads));
      expect(payloadPuts.map((p) => p.bytes)).toEqual([MB5 + 11, MB5 + 11]);
      expect(rec.puts.reduce((n, p) => n + p.bytes, 0)).toBeLessThan(2 * MB5 + 200 * 1024);
      // The stored record names the objects; read() and list() show it as stored.
      const stored = (await queue.read(submitted.id))!.task;
      expect(stored.input).toBeNull();
      expect(stored.output).toBeNull();
    });

    it("a small input costs what it did: 2 PUTs at submit, no payload object", async () => {
      await queue.submit("small", { n: 1 }); // creates the manifest
      const counted = countRequests(env.storage);
      const q = new Queue({ storage: counted, prefix: env.prefix });
      await q.manifest();
      counted.reset();
      const task = await q.submit("small", { n: "y".repeat(200 * 1024) });
      expect(counted.counts).toEqual({ GET: 0, HEAD: 0, PUT: 2, POST: 0, LIST: 0, DELETE: 0 });
      expect(task.inputRef).toBeUndefined();
      expect("inputRef" in (await q.read(task.id))!.task).toBe(false);
      counted.reset();
      await q.submit("small", { n: "y".repeat(300 * 1024) });
      expect(counted.counts).toMatchObject({ PUT: 3, GET: 0 });
      expect(await payloadKeys()).toHaveLength(1);
    });

    it("a submit that loses its idempotency key to another deletes its unused input object", async () => {
      const first = await queue.submit("big", "a".repeat(300 * 1024), { idempotencyKey: "k1" });
      // The second submit's first read misses the task (as when both submit at once).
      let hide = true;
      const racing = new Proxy(env.storage, {
        get(target, prop) {
          if (prop === "get")
            return (key: string, options?: object) => {
              if (hide && key === queue.keys.task(first.id)) {
                hide = false;
                return Promise.reject(new NotFoundError("hidden", { key }));
              }
              return target.get(key, options);
            };
          const value = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const other = new Queue({ storage: racing, prefix: env.prefix });
      // The same input: the key's task is returned (its input compared by SHA-256, unread).
      const second = await other.submit("big", "a".repeat(300 * 1024), { idempotencyKey: "k1" });
      expect(hide).toBe(false);
      expect(second.inputRef).toEqual(first.inputRef);
      expect(await payloadKeys()).toEqual([queue.keys.full(first.inputRef!.key)]);
      expect((await queue.get(first.id)).input).toBe("a".repeat(300 * 1024));
      // Another input under the key: a conflict, and its unused input object is gone too.
      hide = true;
      await expect(
        other.submit("big", "b".repeat(300 * 1024), { idempotencyKey: "k1" }),
      ).rejects.toMatchObject({ code: "IDEMPOTENCY_CONFLICT" });
      expect(hide).toBe(false);
      expect(await payloadKeys()).toEqual([queue.keys.full(first.inputRef!.key)]);
    });

    it("an idempotent submit compares a large input stored apart with the one given", async () => {
      const big = { rows: "r".repeat(300 * 1024), n: 1 };
      const first = await queue.submit("big", big, { idempotencyKey: "k2" });
      expect(first.inputRef).toBeDefined();
      // Equal as JSON with other key order: the SHA-256 differs, the stored input is read.
      const again = await queue.submitUnique(
        "big",
        { n: 1, rows: big.rows },
        { idempotencyKey: "k2" },
      );
      expect(again).toMatchObject({ created: false, task: { id: first.id } });
      await expect(
        queue.submit("big", { ...big, n: 2 }, { idempotencyKey: "k2" }),
      ).rejects.toMatchObject({ code: "IDEMPOTENCY_CONFLICT" });
      expect(await payloadKeys()).toEqual([queue.keys.full(first.inputRef!.key)]);
    });

    it("the worker reads a large input with one GET per run", async () => {
      const task = await queue.submit("big", "z".repeat(400 * 1024));
      await runAll(queue, ["big"], () => false);
      const t = await queue.get(task.id);
      expect(t.output).toBe("z".repeat(400 * 1024));
      const inputKey = queue.keys.full(task.inputRef!.key);
      // One GET by the worker, one by get() above.
      expect(rec.gets.filter((k) => k === inputKey)).toHaveLength(2);
      // `oq status` shows the size and where it is stored, without reading it.
      const lines = describeTask((await queue.read(task.id))!.task, Date.now(), styles({})).join(
        "\n",
      );
      expect(lines).toMatch(
        new RegExp(`input +400\\.0 KiB stored apart: ${task.inputRef!.key}, sha256 [0-9a-f]{16}`),
      );
      expect(lines).toMatch(/output +400\.0 KiB stored apart: payloads\//);
      expect(rec.gets.filter((k) => k === inputKey)).toHaveLength(2);
    });

    it("refuses an input or output over the limit with a ValidationError that says what to fix", async () => {
      const err = await queue.submit("big", "x".repeat(32 * 1024 * 1024)).catch((e) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toMatch(
        /33554434 bytes of JSON; the limit is 33554432 \(maxInputBytes\)/,
      );
      expect(rec.puts).toHaveLength(0);

      queue = new Queue({ storage: rec.storage, prefix: env.prefix, maxOutputBytes: 1_000_000 });
      const task = await queue.submit("big", null, { maxRetries: 3 });
      worker()
        .task("big", () => "o".repeat(2_000_000))
        .start();
      const done = await queue.wait(task.id, { timeout: 20 });
      expect(done.status).toBe("failed");
      expect(done.attempt).toBe(1); // permanent: the same handler would return it again
      expect(done.lastError).toMatchObject({ name: "ValidationError", permanent: true });
      expect(done.lastError!.message).toMatch(/the limit is 1000000 \(maxOutputBytes\)/);
      expect(await payloadKeys()).toEqual([]);
    });

    it("a missing or damaged input object fails the task permanently with a clear error", async () => {
      const missing = await queue.submit("big", "m".repeat(300 * 1024), { maxRetries: 5 });
      const damaged = await queue.submit("big", "d".repeat(300 * 1024), { maxRetries: 5 });
      await env.storage.delete(queue.keys.full(missing.inputRef!.key));
      await env.storage.put(queue.keys.full(damaged.inputRef!.key), `"${"e".repeat(300 * 1024)}"`);
      await expect(queue.get(missing.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(queue.get(damaged.id)).rejects.toBeInstanceOf(MalformedObjectError);
      let ran = 0;
      worker()
        .task("big", () => {
          ran++;
        })
        .start();
      const read = async (id: string) => (await queue.read(id))!.task;
      await until("both failed", async () => {
        const [a, b] = await Promise.all([read(missing.id), read(damaged.id)]);
        return a.status === "failed" && b.status === "failed";
      });
      expect(ran).toBe(0);
      const [a, b] = await Promise.all([read(missing.id), read(damaged.id)]);
      expect(a.attempt).toBe(1);
      expect(a.lastError).toMatchObject({ name: "PayloadMissing", permanent: true });
      expect(a.lastError!.message).toMatch(/does not exist/);
      expect(b.lastError).toMatchObject({ name: "PayloadCorrupt", permanent: true });
      expect(b.lastError!.message).toMatch(/sha256/);
    });

    it("a reference to another object is never read or deleted: the task fails, prune spares it", async () => {
      const task = await queue.submit("big", "h".repeat(300 * 1024));
      const key = queue.keys.task(task.id);
      const record = JSON.parse(new TextDecoder().decode((await env.storage.get(key)).body));
      record.inputRef.key = "queue.json"; // written by hand, or by a hostile client
      await env.storage.put(key, JSON.stringify(record));
      await runAll(queue, ["big"], () => false);
      const failed = (await queue.read(task.id))!.task;
      expect(failed.status).toBe("failed");
      expect(failed.lastError).toMatchObject({ name: "PayloadCorrupt", permanent: true });
      expect(failed.lastError!.message).toMatch(/not one of its own payloads/);
      await pause(1100);
      await queue.prune({ retention: { failed: 0 } });
      await expect(queue.read(task.id)).resolves.toBeUndefined();
      await expect(env.storage.head(queue.keys.manifest)).resolves.toBeDefined();
    });

    it("prune deletes a task's payloads with it", async () => {
      const done = await queue.submit("big", "c".repeat(300 * 1024));
      const failed = await queue.submit("big", "fail".padEnd(300 * 1024, "!"));
      await runAll(queue, ["big"], (input) => (input as string).startsWith("fail"));
      expect(await payloadKeys()).toHaveLength(3); // two inputs, one output
      await pause(1100);
      const result = await queue.prune({ retention: { completed: 0, failed: 0 } });
      expect(result).toMatchObject({ deleted: 2, more: false });
      expect(await payloadKeys()).toEqual([]);
      await expect(queue.read(done.id)).resolves.toBeUndefined();
      await expect(queue.read(failed.id)).resolves.toBeUndefined();
    });

    it("replay deletes the output object of the run before", async () => {
      const task = await queue.submit("big", "r".repeat(300 * 1024));
      worker()
        .task("big", async (input: string, ctx) => {
          await queue.cancel(ctx.task.id);
          await until("the signal", () => ctx.signal.aborted);
          return input; // kept: the task ends cancelled with its output
        })
        .start();
      const cancelled = await queue.wait(task.id, { timeout: 20 });
      expect(cancelled.status).toBe("cancelled");
      const outputKey = cancelled.outputRef!.key;
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      const replayed = await queue.replay(task.id);
      expect(replayed.outputRef).toBeUndefined();
      expect(replayed.inputRef).toEqual(task.inputRef);
      const keys = await payloadKeys();
      expect(keys).toEqual([queue.keys.full(task.inputRef!.key)]);
      expect(keys).not.toContain(queue.keys.full(outputKey));
    });
  });
}

describe("payload options", () => {
  it("refuses byte limits that are not whole numbers, saying which option", () => {
    const storage = new MemoryStorage();
    expect(() => new Queue({ storage, maxInputBytes: -1 })).toThrow(
      /Invalid maxInputBytes -1: give a whole number of bytes, at least 1/,
    );
    expect(() => new Queue({ storage, maxOutputBytes: 1.5 })).toThrow(/maxOutputBytes/);
    expect(() => new Queue({ storage, payloadThresholdBytes: Number.NaN })).toThrow(
      ValidationError,
    );
    expect(() => new Queue({ storage, payloadThresholdBytes: 0 })).not.toThrow();
  });
});

describe("orphaned payloads", () => {
  it("prune --scan deletes payloads no task names once a day old, and keeps the others", async () => {
    let now = Date.parse("2026-11-30T12:00:00Z");
    const storage = new MemoryStorage({ now: () => now });
    const queue = new Queue({ storage, now: () => now });
    const kept = await queue.submit("big", "k".repeat(300 * 1024));
    // A submit whose task write never happened leaves its input behind.
    const orphan = queue.keys.full(queue.keys.payload("0f0f", "input.0123456789abcdef.json"));
    await storage.put(orphan, '"lost"');
    const young = queue.keys.full(queue.keys.payload("0e0e", "input.0123456789abcdef.json"));
    now += PAYLOAD_GRACE_MS + 1000;
    await storage.put(young, '"young"');
    const result = await queue.prune({ scan: true });
    expect(result.orphanedPayloads).toBe(1);
    const left = await keysUnder(storage, queue.keys.payloads);
    expect(left.sort()).toEqual([queue.keys.full(kept.inputRef!.key), young].sort());
    expect(((await queue.get(kept.id)) as TaskRecord).input).toBe("k".repeat(300 * 1024));
  });
});
