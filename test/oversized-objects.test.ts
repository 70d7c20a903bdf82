/**
 * Objects far larger than anything oq writes, planted in a queue's prefix (by hand, or by a broken
 * tool): a task object, and a payload object behind a valid small task. A worker must refuse them
 * without reading them whole (every worker listing one used to GET it whole at every poll, decode
 * and parse it, and could run out of memory), report the task once, never claim it, leave both
 * in place, and run every other task. On memory, file and MinIO.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MalformedObjectError, ValidationError } from "../src/errors.ts";
import type { Logger } from "../src/logger.ts";
import { Queue } from "../src/queue/queue.ts";
import { readWorkers } from "../src/queue/workers.ts";
import { MAX_DOCUMENT_BYTES } from "../src/store/bounds.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, pause, until } from "./helpers/wait.ts";
import { ignoringGetOptions } from "./support/careless-storage.ts";

const MiB = 1024 * 1024;
/** Four times the bound: a worker that read it whole would hold it several times over. */
const HUGE = 4 * MAX_DOCUMENT_BYTES;
const decoder = new TextDecoder();
const quiet: Logger = { info() {}, warn() {}, error() {} };

/**
 * Run `during` while sampling this process's memory every 10 ms; resolve how far `rss` and
 * `arrayBuffers` rose above where they were before, at their highest.
 */
async function peakGrowth(during: () => Promise<void>) {
  const base = process.memoryUsage();
  const peak = { rss: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss - base.rss);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers - base.arrayBuffers);
  };
  const timer = setInterval(sample, 10);
  try {
    await during();
  } finally {
    clearInterval(timer);
    sample();
  }
  return peak;
}

/** `size` bytes of JSON that look like a task record whose input is one long string. */
function hugeRecord(record: Record<string, unknown>, size: number): string {
  const text = JSON.stringify({ ...record, input: "@" });
  return text.replace('"@"', `"${"x".repeat(size - text.length + 1)}"`);
}

describe.each(targets)("objects larger than oq ever writes, on $name", (target) => {
  let env: TargetInstance;
  let queue: Queue;
  let worker: Worker | undefined;
  const warnings: string[] = [];
  beforeEach(async () => {
    env = await target.create();
    warnings.length = 0;
    const logger: Logger = { ...quiet, warn: (message) => warnings.push(message) };
    queue = new Queue({
      storage: env.storage,
      prefix: env.prefix,
      logger,
      payloadThresholdBytes: 1024,
    });
  });
  afterEach(async () => {
    await worker?.stop({ graceMs: 0 });
    worker = undefined;
    await env.cleanup();
  });

  /**
   * Run a worker until `good` all completed and `failed` all failed, and some polls more; what its
   * handler was given.
   */
  async function runAll(good: string[], failed: string[] = []): Promise<unknown[]> {
    const seen: unknown[] = [];
    worker = new Worker(queue, { ...fast, skipDoctor: true }).task("job", (input) => {
      seen.push(input);
      return "ok";
    });
    await worker.start();
    for (const id of good) expect((await queue.wait(id, { timeout: 30 })).status).toBe("completed");
    for (const id of failed)
      await until(`${id} failed`, async () => (await queue.read(id))?.task.status === "failed");
    // More polls, each of which would read the planted object again.
    await pause(1000);
    await worker.stop({ graceMs: 0 });
    return seen;
  }

  it("a huge task object is reported once, never claimed, left in place, and not loaded", async () => {
    const bad = await queue.submit("job", { bad: true });
    const key = queue.keys.task(bad.id);
    const record = JSON.parse(decoder.decode((await env.storage.get(key)).body));
    const planted = await env.storage.put(key, hugeRecord(record, HUGE));
    const good = await Promise.all([1, 2, 3, 4, 5].map((n) => queue.submit("job", { n })));
    let seen: unknown[] = [];
    const growth = await peakGrowth(async () => {
      seen = await runAll(good.map((t) => t.id));
    });
    // Reading it whole even once costs its size in buffers, and its text and parse more besides.
    expect(growth.arrayBuffers).toBeLessThan(HUGE / 4);
    expect(growth.rss).toBeLessThan(HUGE / 2);
    expect(seen).toHaveLength(5);
    expect(seen).not.toContainEqual({ bad: true });
    // Reported once, naming the key, its size and the bound.
    const reports = warnings.filter((w) => w.includes(bad.id));
    expect(reports, warnings.join("\n")).toHaveLength(1);
    expect(reports[0]).toContain(key);
    expect(reports[0]).toContain(String(HUGE));
    expect(reports[0]).toContain(String(MAX_DOCUMENT_BYTES));
    // Left exactly as planted: never claimed, never rewritten.
    const head = await env.storage.head(key);
    expect(head.etag).toBe(planted.etag);
    expect(head.size).toBe(HUGE);
    const error = await queue.get(bad.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedObjectError);
    expect(error).toMatchObject({ code: "MALFORMED", key });
  });

  it("a huge payload object behind a small task fails that task as PayloadCorrupt, unread", async () => {
    const bad = await queue.submit("job", { bad: "y".repeat(2048) }, { maxRetries: 3 });
    expect(bad.inputRef).toBeDefined();
    const payloadKey = queue.keys.full(bad.inputRef!.key);
    const planted = await env.storage.put(payloadKey, `"${"z".repeat(HUGE - 2)}"`);
    const good = await Promise.all([1, 2, 3].map((n) => queue.submit("job", { n })));
    let seen: unknown[] = [];
    const growth = await peakGrowth(async () => {
      seen = await runAll(
        good.map((t) => t.id),
        [bad.id],
      );
    });
    expect(growth.arrayBuffers).toBeLessThan(HUGE / 4);
    expect(growth.rss).toBeLessThan(HUGE / 2);
    expect(seen).toHaveLength(3);
    const failed = await queue.read(bad.id);
    expect(failed?.task.status).toBe("failed");
    // Permanent, as a payload whose SHA-256 does not match: no retry can heal it.
    expect(failed?.task.attempt).toBe(1);
    expect(failed?.task.lastError?.name).toBe("PayloadCorrupt");
    expect(failed?.task.lastError?.message).toContain(payloadKey);
    expect(failed?.task.lastError?.message).toContain(`${bad.inputRef!.bytes}-byte bound`);
    expect((await env.storage.head(payloadKey)).etag).toBe(planted.etag);
  });

  it("a record naming an input over maxInputBytes fails that task as PayloadCorrupt, unread", async () => {
    // Written by hand: the task's record claims an input as large as the object planted behind it,
    // so a read bounded only by the record would download it whole before its SHA-256 failed.
    const bad = await queue.submit("job", { bad: "y".repeat(2048) }, { maxRetries: 3 });
    const key = queue.keys.task(bad.id);
    const record = JSON.parse(decoder.decode((await env.storage.get(key)).body));
    expect(HUGE).toBeGreaterThan(32 * MiB); // over the default maxInputBytes
    await env.storage.put(
      key,
      JSON.stringify({ ...record, inputRef: { ...record.inputRef, bytes: HUGE } }),
    );
    const payloadKey = queue.keys.full(bad.inputRef!.key);
    await env.storage.put(payloadKey, `"${"z".repeat(HUGE - 2)}"`);
    const good = await Promise.all([1, 2].map((n) => queue.submit("job", { n })));
    const growth = await peakGrowth(async () => {
      await runAll(
        good.map((t) => t.id),
        [bad.id],
      );
    });
    expect(growth.arrayBuffers).toBeLessThan(HUGE / 4);
    const failed = await queue.read(bad.id);
    expect(failed?.task.attempt).toBe(1);
    expect(failed?.task.lastError?.name).toBe("PayloadCorrupt");
    expect(failed?.task.lastError?.message).toContain("maxInputBytes");
    expect(failed?.task.lastError?.message).toContain(String(HUGE));
    // Reading it back for a caller is refused the same way.
    const error = await queue.get(bad.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedObjectError);
    expect(error).toMatchObject({ code: "MALFORMED", key: payloadKey });
  });

  it("a huge heartbeat is skipped with a warning by workers() and stats(); setLimits replaces a huge limit object", async () => {
    const heartbeat = queue.keys.worker("ghost");
    await env.storage.put(heartbeat, `{"pad":"${"h".repeat(MAX_DOCUMENT_BYTES)}"}`);
    expect(await readWorkers(queue)).toEqual([]);
    expect(warnings.some((w) => w.includes(heartbeat))).toBe(true);
    warnings.length = 0;
    expect((await queue.stats()).workers).toEqual([]);
    expect(warnings.some((w) => w.includes(heartbeat))).toBe(true);
    const limitKey = `${env.prefix}limits/lim.json`;
    await env.storage.put(limitKey, `{"pad":"${"l".repeat(MAX_DOCUMENT_BYTES)}"}`);
    await expect(queue.limits("lim")).rejects.toMatchObject({ code: "MALFORMED", key: limitKey });
    await queue.setLimits("lim", { concurrency: 2 });
    expect(await queue.limits("lim")).toMatchObject([{ type: "lim", concurrency: 2 }]);
  });
});

describe("bounds on what oq writes, so that it can always read it back (memory)", () => {
  it("payloadThresholdBytes above MAX_PAYLOAD_THRESHOLD_BYTES is refused, naming the option and the limit", async () => {
    const { MAX_PAYLOAD_THRESHOLD_BYTES } = await import("../src/store/bounds.ts");
    const { MemoryStorage } = await import("../src/storage/memory.ts");
    const storage = new MemoryStorage();
    expect(MAX_PAYLOAD_THRESHOLD_BYTES).toBe(4 * MiB);
    const make = (payloadThresholdBytes: number) => new Queue({ storage, payloadThresholdBytes });
    expect(make(MAX_PAYLOAD_THRESHOLD_BYTES)).toBeInstanceOf(Queue);
    let error: unknown;
    try {
      make(MAX_PAYLOAD_THRESHOLD_BYTES + 1);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe("VALIDATION");
    expect((error as Error).message).toContain("payloadThresholdBytes");
    expect((error as Error).message).toContain(String(MAX_PAYLOAD_THRESHOLD_BYTES));
    expect((error as Error).message).toContain("MAX_PAYLOAD_THRESHOLD_BYTES");
  });

  it("a handler's error message of 1 MB is cut to MAX_TASK_ERROR_CHARS in lastError", async () => {
    const { MAX_TASK_ERROR_CHARS } = await import("../src/task/event-log.ts");
    const { MemoryStorage } = await import("../src/storage/memory.ts");
    const queue = new Queue({ storage: new MemoryStorage() });
    const task = await queue.submit("boom", null, { maxRetries: 0 });
    const worker = new Worker(queue, { ...fast, skipDoctor: true }).task("boom", () => {
      throw new Error("e".repeat(MiB));
    });
    await worker.start();
    try {
      const done = await queue.wait(task.id, { timeout: 10 });
      expect(done.status).toBe("failed");
      expect(done.lastError?.message).toHaveLength(MAX_TASK_ERROR_CHARS);
      expect(done.lastError?.message.endsWith("…")).toBe(true);
    } finally {
      await worker.stop();
    }
  });

  it("a schedule's input is held to MAX_PAYLOAD_THRESHOLD_BYTES: it is kept inside the schedule object", async () => {
    const { MAX_PAYLOAD_THRESHOLD_BYTES } = await import("../src/store/bounds.ts");
    const { MemoryStorage } = await import("../src/storage/memory.ts");
    const { Scheduler } = await import("../src/schedule/scheduler.ts");
    const queue = new Queue({ storage: new MemoryStorage() });
    const scheduler = new Scheduler(queue);
    const spec = { type: "job", cron: "* * * * *" };
    const big = "s".repeat(MAX_PAYLOAD_THRESHOLD_BYTES);
    const error = await scheduler
      .create({ ...spec, id: "big", input: big })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toContain("MAX_PAYLOAD_THRESHOLD_BYTES");
    const fits = "s".repeat(MAX_PAYLOAD_THRESHOLD_BYTES - 2);
    await scheduler.create({ ...spec, id: "fits", input: fits });
    expect((await scheduler.get("fits"))?.input).toBe(fits);
  });

  it("a storage of one's own that ignores maxBytes: the body is still refused after the fact", async () => {
    const { MemoryStorage } = await import("../src/storage/memory.ts");
    const inner = new MemoryStorage();
    const careless = ignoringGetOptions(inner);
    const queue = new Queue({ storage: careless });
    const task = await queue.submit("job", null);
    const key = queue.keys.task(task.id);
    const record = JSON.parse(decoder.decode((await inner.get(key)).body));
    await inner.put(key, hugeRecord(record, MAX_DOCUMENT_BYTES + 1));
    const error = await queue.get(task.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedObjectError);
    expect(error).toMatchObject({ code: "MALFORMED", key });
    expect((error as Error).message).toContain(String(MAX_DOCUMENT_BYTES + 1));
  });
});
