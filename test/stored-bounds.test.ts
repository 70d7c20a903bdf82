/**
 * Values in stored objects that oq would never write, planted by hand (as anyone with access to
 * the bucket can): numbers JSON reads as Infinity (`1e999`), dates past the year 9999, durations
 * far past what submit accepts, and heartbeat counts near `Number.MAX_VALUE`. Each is reported as
 * malformed (or ignored, for heartbeat counts), naming the key, instead of getting a task stuck:
 * claimed, then unwritable ("Invalid time value") or re-indexed under a marker nobody parses.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MalformedObjectError, ValidationError } from "../src/errors.ts";
import { parseTimeKey, timeKey } from "../src/keys.ts";
import type { Logger } from "../src/logger.ts";
import { Queue } from "../src/queue/queue.ts";
import type { Storage } from "../src/storage/storage.ts";
import { Worker } from "../src/worker/worker.ts";
import { rejection } from "./helpers/rejection.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast } from "./helpers/wait.ts";

const quiet: Logger = { info() {}, warn() {}, error() {} };
const decoder = new TextDecoder();

/**
 * Rewrite the stored object at `key`: `change` the parsed record, then `raw` its JSON text (to
 * write what `JSON.stringify` cannot, such as `1e999`). Returns the text written.
 */
async function plant(
  storage: Storage,
  key: string,
  change: (record: Record<string, unknown>) => Record<string, unknown>,
  raw: (text: string) => string = (text) => text,
): Promise<string> {
  const record = JSON.parse(decoder.decode((await storage.get(key)).body));
  const text = raw(JSON.stringify(change(record)));
  await storage.put(key, text);
  return text;
}

describe.each(targets)("stored values oq would never write, on $name", (target) => {
  let env: TargetInstance;
  let queue: Queue;
  let worker: Worker | undefined;
  beforeEach(async () => {
    env = await target.create();
    queue = new Queue({ storage: env.storage, prefix: env.prefix, logger: quiet });
  });
  afterEach(async () => {
    await worker?.stop({ graceMs: 0 });
    worker = undefined;
    await env.cleanup();
  });

  /**
   * Plant a broken task beside a good one, run a worker until the good one completes, and return
   * the broken task's id, its key and what the handler was given.
   */
  async function runBeside(
    change: (record: Record<string, unknown>) => Record<string, unknown>,
    raw?: (text: string) => string,
  ) {
    const bad = await queue.submit("job", { bad: true }, { maxRetries: 2 });
    const key = queue.keys.task(bad.id);
    const written = await plant(env.storage, key, change, raw);
    const good = await queue.submit("job", { bad: false });
    const seen: unknown[] = [];
    worker = new Worker(queue, fast).task("job", (input: { bad: boolean }) => {
      seen.push(input);
      if (input.bad) throw new Error("boom");
      return "ok";
    });
    await worker.start();
    expect((await queue.wait(good.id, { timeout: 20 })).status).toBe("completed");
    await worker.stop({ graceMs: 0 });
    return { id: bad.id, key, written, seen };
  }

  it("a task with a number JSON reads as Infinity (1e999) is malformed, never run, and left as written", async () => {
    const bad = await runBeside(
      (r) => ({ ...r, backoff: { initialSeconds: 12345, maxSeconds: 12345, factor: 2 } }),
      (text) => text.replaceAll("12345", "1e999"),
    );
    // It used to be claimed, fail to record its outcome ("Invalid time value"), then be written
    // back with `null` in place of Infinity: a record nobody could read any more.
    expect(bad.seen).toEqual([{ bad: false }]);
    const error = await rejection(queue.get(bad.id));
    expect(error).toBeInstanceOf(MalformedObjectError);
    expect(error).toMatchObject({ code: "MALFORMED", key: bad.key });
    expect(error.message).toBe(
      `Object ${bad.key} is not a valid task: backoff.initialSeconds must be a finite number (was Infinity); backoff.maxSeconds must be a finite number (was Infinity)`,
    );
    expect(decoder.decode((await env.storage.get(bad.key)).body)).toBe(bad.written);
  });

  it("a limit object whose rate reads as Infinity is malformed, not a rate limit silently dropped", async () => {
    await queue.setLimits("lim", { ratePerSecond: 5 });
    const key = `${env.prefix}limits/lim.json`;
    await plant(
      env.storage,
      key,
      (r) => ({ ...r, ratePerSecond: 12345 }),
      (text) => text.replace("12345", "1e999"),
    );
    const error = await rejection(queue.limits("lim"));
    expect(error).toMatchObject({ code: "MALFORMED", key });
    expect(error.message).toContain("ratePerSecond must be a finite number (was Infinity)");
  });

  it("a task whose input nests 5,000 levels deep is malformed: reported once, never claimed", async () => {
    const nested = `${"[".repeat(5000)}1${"]".repeat(5000)}`;
    const warnings: string[] = [];
    queue = new Queue({
      storage: env.storage,
      prefix: env.prefix,
      logger: { ...quiet, warn: (message) => warnings.push(message) },
    });
    const bad = await runBeside(
      (r) => ({ ...r, input: "@nested@" }),
      (text) => text.replace('"@nested@"', nested),
    );
    // It used to be read fine, then every claim threw "Maximum call stack size exceeded" writing
    // it back: pending for ever, read again and warned about at every poll of every worker.
    expect(bad.seen).toEqual([{ bad: false }]);
    const error = await rejection(queue.get(bad.id));
    expect(error).toMatchObject({ code: "MALFORMED", key: bad.key });
    expect(error.message).toBe(
      `Object ${bad.key} is not a valid task: input must be arrays and objects nested at most 128 levels deep (was an array)`,
    );
    expect(warnings.filter((w) => w.includes(bad.id))).toHaveLength(1);
    expect(decoder.decode((await env.storage.get(bad.key)).body)).toBe(bad.written);
  });

  it("a task with a date past the year 9999 is malformed and never run", async () => {
    const bad = await runBeside((r) => ({ ...r, expiresAt: "+010000-01-01T00:00:00.000Z" }));
    // It used to run, fail, and get a marker ending `.+100000101T000000Z` that no reader parses:
    // gone from list() and never run again.
    expect(bad.seen).toEqual([{ bad: false }]);
    const error = await rejection(queue.get(bad.id));
    expect(error).toMatchObject({ code: "MALFORMED", key: bad.key });
    expect(error.message).toBe(
      `Object ${bad.key} is not a valid task: expiresAt must be a date in the years 0000 to 9999 (was "+010000-01-01T00:00:00.000Z")`,
    );
  });

  it("a task expiring in the last second of 9999 keeps a marker that parses when retried, and runs again", async () => {
    const task = await queue.submit("job", {}, { maxRetries: 3, backoff: { initialSeconds: 0 } });
    const key = queue.keys.task(task.id);
    await plant(env.storage, key, (r) => ({ ...r, expiresAt: "9999-12-31T23:59:59.999Z" }));
    let calls = 0;
    worker = new Worker(queue, fast).task("job", () => {
      calls++;
      if (calls === 1) throw new Error("first fails");
      return "ok";
    });
    await worker.start();
    // The retry's marker carries the expiry rounded up to the second: 10000-01-01, once.
    expect((await queue.wait(task.id, { timeout: 20 })).status).toBe("completed");
    expect(calls).toBe(2);
  });

  it("a task whose backoff is far past 100 years is malformed, never run", async () => {
    const bad = await runBeside((r) => ({
      ...r,
      backoff: { initialSeconds: 1e20, maxSeconds: 1e20, factor: 2 },
    }));
    // It used to run and then fail to record its outcome: now + 1e20 s is no date.
    expect(bad.seen).toEqual([{ bad: false }]);
    const error = await rejection(queue.get(bad.id));
    expect(error).toMatchObject({ code: "MALFORMED", key: bad.key });
    expect(error.message).toBe(
      `Object ${bad.key} is not a valid task: backoff.initialSeconds must be at most 3155760000 seconds (100 years) (was 100000000000000000000); backoff.maxSeconds must be at most 3155760000 seconds (100 years) (was 100000000000000000000)`,
    );
  });

  it("submit refuses a TTL that would end after the year 9999, and writes nothing", async () => {
    const error = await rejection(
      queue.submit("job", {}, { scheduleAt: "9999-06-01T00:00:00Z", ttlSeconds: "36500d" }),
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/^Invalid ttlSeconds 3153600000: the task would expire after/);
    expect((await queue.list({ type: "job" })).tasks).toEqual([]);
  });

  it("heartbeat counts that are not safe integers are ignored, and sums stop at MAX_SAFE_INTEGER", async () => {
    const now = queue.now();
    const minute = new Date(Math.floor(now / 60_000) * 60_000 - 60_000).toISOString();
    const hour = new Date(Math.floor(now / 3_600_000) * 3_600_000).toISOString();
    const heartbeat = (id: string, completed: string) =>
      `{"id":"${id}","seenAt":"${new Date(now).toISOString()}","types":["job"],"heartbeatSeconds":1e999,"concurrency":1e999,"stats":{"started":1e999,"completed":3},` +
      `"finished":{"minutes":{"${minute}":{"job":{"completed":${completed},"failed":2}}},"hours":{"${hour}":{"job":{"completed":${completed},"failed":2}}}}}`;
    await env.storage.put(queue.keys.worker("w1"), heartbeat("w1", "1e308"));
    await env.storage.put(queue.keys.worker("w2"), heartbeat("w2", "1e308"));
    await env.storage.put(queue.keys.worker("w3"), heartbeat("w3", `${Number.MAX_SAFE_INTEGER}`));
    await env.storage.put(queue.keys.worker("w4"), heartbeat("w4", `${Number.MAX_SAFE_INTEGER}`));
    const stats = await queue.stats();
    const job = stats.types.find((t) => t.type === "job")!;
    expect(job.finished.lastHour).toEqual({
      completed: Number.MAX_SAFE_INTEGER,
      failed: 8,
      cancelled: 0,
      expired: 0,
    });
    expect(job.finished.lastDay.completed).toBe(Number.MAX_SAFE_INTEGER);
    expect(job.throughputPerMinute).toBe(Number.MAX_SAFE_INTEGER / 10);
    // A worker whose interval reads as Infinity is judged by the default one (60 s), not never
    // stale; Infinity is no concurrency or counter.
    expect(stats.workers.map((w) => [w.id, w.heartbeatSeconds, w.concurrency, w.stats])).toEqual(
      ["w1", "w2", "w3", "w4"].map((id) => [id, 60, null, { completed: 3 }]),
    );
    expect(JSON.stringify(job.finished)).not.toContain("null");
  });
});

describe("the ready index's time segment", () => {
  it("reads back every time in the years 0000 to 9999, and writes a later one as 9999's last second", () => {
    for (const at of ["0000-01-01T00:00:00Z", "0050-06-15T12:34:56Z", "1969-12-31T23:59:59Z"]) {
      expect(parseTimeKey(timeKey(Date.parse(at)))).toBe(Date.parse(at));
    }
    // A lease expiring in the last minute of 9999, plus the takeover margin and the slack.
    expect(timeKey(Date.parse("9999-12-31T23:59:30Z") + 61_000)).toBe("99991231T235959Z");
  });
});
