import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatDuration, parseDate, parseDuration } from "../src/duration.ts";
import { ValidationError } from "../src/errors.ts";
import { Keys, parseTimeKey, partOf, timeKey } from "../src/keys.ts";
import { Queue } from "../src/queue/queue.ts";
import { Scheduler } from "../src/schedule/scheduler.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { TaskRecord } from "../src/task/record.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, until } from "./helpers/wait.ts";

describe("durations and dates", () => {
  it("parses the accepted duration forms", () => {
    expect(parseDuration("90")).toBe(90_000);
    expect(parseDuration(1.5)).toBe(1500);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("2d")).toBe(172_800_000);
  });
  it("rejects bad durations naming the accepted forms", () => {
    for (const bad of ["1x", "", "h", "1h 30m", "-5", "1.2.3s"]) {
      expect(() => parseDuration(bad, "--delay")).toThrow(ValidationError);
    }
    expect(() => parseDuration("1x", "--delay")).toThrow(
      /--delay "1x": expected a number of seconds \(90\), or amounts with units/,
    );
    expect(() => parseDuration(-1)).toThrow(ValidationError);
  });
  it("parses dates only with a timezone", () => {
    expect(parseDate("2026-12-01T09:00:00Z")).toBe(Date.UTC(2026, 11, 1, 9));
    expect(parseDate("2026-12-01T10:00:00+01:00")).toBe(Date.UTC(2026, 11, 1, 9));
    expect(parseDate(1_800_000_000_000)).toBe(1_800_000_000_000);
    expect(() => parseDate("2026-12-01T09:00:00")).toThrow(/with a timezone/);
    expect(() => parseDate("next tuesday")).toThrow(ValidationError);
    expect(() => parseDate("2026-01-01")).toThrow(/with a timezone/);
  });
  it("takes numbers as epoch ms from 2000 and names epoch seconds as such (bad-input probe)", async () => {
    expect(parseDate("1798761600000")).toBe(1_798_761_600_000);
    expect(parseDate(Date.UTC(2000, 0, 1))).toBe(946_684_800_000);
    expect(() => parseDate("1798761600", "--at")).toThrow(
      /--at "1798761600": it looks like epoch seconds \(2027-01-01T00:00:00.000Z\); .*multiply by 1000: 1798761600000/,
    );
    expect(() => parseDate(1_790_000_000, "scheduleAt")).toThrow(/looks like epoch seconds/);
    expect(() => parseDate("1", "--at")).toThrow(
      /--at "1": as epoch milliseconds it is before 2000/,
    );
    for (const bad of [-1, 1.5, -1e20])
      expect(() => parseDate(bad, "scheduleAt"), String(bad)).toThrow(/before 2000/);
    // A fraction of a millisecond is kept: queue.now() has one.
    expect(parseDate(1_798_761_600_000.5)).toBe(1_798_761_600_000.5);
    const queue = new Queue({ storage: new MemoryStorage() });
    for (const scheduleAt of [1_790_000_000, -1, 1.5, "1790000000"])
      await expect(queue.submit("x", 1, { scheduleAt }), String(scheduleAt)).rejects.toThrow(
        /scheduleAt/,
      );
    await expect(queue.submit("x", 1, { expiresAt: 1_790_000_000 })).rejects.toThrow(
      /expiresAt 1790000000: it looks like epoch seconds/,
    );
  });
  it("formats durations for people", () => {
    expect(formatDuration(450)).toBe("450ms");
    expect(formatDuration(3200)).toBe("3.2s");
    expect(formatDuration(3_720_000)).toBe("1h 2m");
  });
});

describe("keys", () => {
  it("round-trips marker times at second resolution, readable and sortable", () => {
    const ms = Date.UTC(2026, 10, 28, 23, 59, 59, 500);
    expect(timeKey(ms)).toBe("20261128T235959Z");
    expect(parseTimeKey("20261128T235959Z")).toBe(ms - 500);
    expect(parseTimeKey("2026-11-28")).toBeUndefined();
  });
  it("parses each segment for itself when runs of one segment alternate with others", () => {
    const segments = [
      "20261128T235959Z",
      "20261128T235959Z",
      "x",
      "20261128T235959Z",
      "20261129T000000Z",
      "20261129T00000Z",
      "20261129T000000Z",
    ];
    expect(segments.map(parseTimeKey)).toEqual(
      [0, 0, undefined, 0, 1000, undefined, 1000].map((d) =>
        d === undefined ? undefined : Date.UTC(2026, 10, 28, 23, 59, 59) + d,
      ),
    );
  });
  it("builds and parses the layout under a prefix", () => {
    const k = new Keys("q1");
    expect(k.task("a1b2")).toBe("q1/tasks/a/a1b2.json");
    const m = k.newReadyMarker({ dueMs: 0, type: "email", part: 3, id: "a1b2", nonce: "n0nce" });
    expect(m).toBe("ready/email/3/19700101T000000Z/a1b2.n0nce");
    expect(k.parseReadyMarker(k.full(m))).toEqual({
      key: k.full(m),
      id: "a1b2",
      type: "email",
      part: 3,
      dueMs: 0,
      priority: 0,
      relative: m,
    });
    // A pending task's TTL rides in the key, rounded up to the second; ids may hold dots.
    const t = k.newReadyMarker({
      dueMs: 0,
      type: "email",
      part: 0,
      id: "a.20260101T000000Z",
      nonce: "0badf00d",
      expiresMs: 1500,
    });
    expect(t).toBe("ready/email/0/19700101T000000Z/a.20260101T000000Z.0badf00d.19700101T000002Z");
    expect(k.parseReadyMarker(k.full(t))).toMatchObject({
      id: "a.20260101T000000Z",
      expiresMs: 2000,
    });
    // Without a TTL, an id that ends in a time stays the id.
    const u = k.newReadyMarker({
      dueMs: 0,
      type: "e",
      part: 0,
      id: "a.20260101T000000Z",
      nonce: "ab",
    });
    expect(k.parseReadyMarker(k.full(u))).toMatchObject({ id: "a.20260101T000000Z" });
    expect(k.parseReadyMarker(k.full(u))?.expiresMs).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/x/19700101T000000Z/a.b")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/01/19700101T000000Z/a.b")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/0/19700101T000000Z/a.b/c")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/0/19700101T000000Z/ab")).toBeUndefined();
    expect(partOf("anything", 1)).toBe(0);
    const parts = new Set(Array.from({ length: 200 }, (_, i) => partOf(`id-${i}`, 8)));
    expect([...parts].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(k.parseReadyMarker("q1/ready/garbage")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/19700101T000000Z/../a1b2.x")).toBeUndefined();
    expect(k.parseTaskKey("q1/tasks/a/a1b2.json")).toBe("a1b2");
    expect(k.parseTaskKey("q1/tasks/b/a1b2.json")).toBeUndefined();
    expect(() => new Keys("../x")).toThrow(ValidationError);
  });
});

/** The lease length a claimed task was given, in seconds (its lease expiry minus its claim). */
function leaseLength(task: TaskRecord): number {
  return Math.round((Date.parse(task.lease!.expiresAt) - Date.parse(task.updatedAt)) / 1000);
}

/** The message of the error `fn` throws (or of the promise it returns). */
async function errorOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as Error).message;
  }
  throw new Error("expected a ValidationError");
}

for (const target of targets) {
  describe(`durations as options on ${target.name} (issue 13 item 7)`, () => {
    let env: TargetInstance;
    beforeEach(async () => {
      env = await target.create();
    });
    afterEach(async () => {
      await env.cleanup();
    });
    const queueOf = (defaults?: ConstructorParameters<typeof Queue>[0]["defaults"]) =>
      new Queue({ storage: env.storage, prefix: env.prefix, ...(defaults ? { defaults } : {}) });

    it('submit, connect defaults and schedules take "30m" where they took seconds, and store seconds', async () => {
      const queue = queueOf({ timeoutSeconds: "2m", backoff: { maxSeconds: "10m" } });
      const t = await queue.submit("report", null, {
        delay: "1h",
        ttlSeconds: "30m",
        backoff: { initialSeconds: "2s" },
      });
      const stored = await queue.get(t.id);
      expect(stored.timeoutSeconds).toBe(120);
      expect(stored.backoff).toEqual({ initialSeconds: 2, maxSeconds: 600, factor: 2 });
      expect(Date.parse(stored.expiresAt!) - Date.parse(stored.availableAt)).toBe(30 * 60_000);
      const own = await queue.submit("report", null, { timeoutSeconds: "1m30s", ttlSeconds: 90 });
      expect((await queue.get(own.id)).timeoutSeconds).toBe(90);

      const schedule = await new Scheduler(queue).create({
        id: "nightly",
        type: "report",
        cron: "0 9 * * *",
        timeoutSeconds: "5m",
        ttlSeconds: "1h",
      });
      expect(schedule.task).toEqual({ timeoutSeconds: 300, maxRetries: null, ttlSeconds: 3600 });
    });

    it("a worker's and a handler's leaseSeconds and timeoutSeconds take duration strings", async () => {
      const queue = queueOf();
      const seen: Record<string, number> = {};
      const worker = new Worker(queue, { ...fast, leaseSeconds: "2m", heartbeatSeconds: "0s" })
        .task("plain", (_input, ctx) => {
          seen.plain = leaseLength(ctx.task);
        })
        .task(
          "long",
          (_input, ctx) => {
            seen.long = leaseLength(ctx.task);
          },
          { leaseSeconds: "3m" },
        )
        .task(
          "slow",
          (_input, ctx) =>
            new Promise((_resolve, reject) => {
              ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
            }),
          { timeoutSeconds: "200ms" },
        );
      const [plain, long, slow] = await Promise.all(
        ["plain", "long", "slow"].map((type) => queue.submit(type, null, { maxRetries: 0 })),
      );
      await worker.start();
      try {
        await until("all three finished", async () => {
          for (const t of [plain!, long!, slow!]) {
            const { status } = await queue.get(t.id);
            if (status !== "completed" && status !== "failed") return false;
          }
          return true;
        });
      } finally {
        await worker.stop({ graceMs: 0 });
      }
      // Within 2 s: on S3 the server clock corrects the times, at one-second resolution.
      expect(Math.abs(seen.plain! - 120)).toBeLessThanOrEqual(2);
      expect(Math.abs(seen.long! - 180)).toBeLessThanOrEqual(2);
      const timedOut = await queue.get(slow!.id);
      expect(timedOut.status).toBe("failed");
      expect(timedOut.lastError?.name).toBe("Timeout");
    });

    it("a bad duration is a ValidationError that says what to fix", async () => {
      const queue = queueOf();
      expect(await errorOf(() => queue.submit("t", null, { ttlSeconds: "10x" }))).toBe(
        'Invalid submit options: ttlSeconds: "10x" is not a duration; use seconds or e.g. "30m".',
      );
      expect(await errorOf(() => queue.submit("t", null, { timeoutSeconds: "0s" }))).toBe(
        'Invalid submit options: timeoutSeconds must be a number of seconds from 0.001 (1 ms) to 100 years, or a duration like "30m" (was "0s").',
      );
      expect(
        await errorOf(() => queue.submit("t", null, { backoff: { maxSeconds: "200000w" } })),
      ).toMatch(/backoff\.maxSeconds must be a number of seconds from 0 to 100 years/);
      expect(await errorOf(() => queueOf({ timeoutSeconds: "soon" }))).toMatch(
        /defaults: timeoutSeconds: "soon" is not a duration/,
      );
      expect(await errorOf(() => new Worker(queue, { leaseSeconds: "500ms" }))).toMatch(
        /leaseSeconds must be a number of seconds from 1 to 604800 \(7 days\), or a duration like "30m" \(was "500ms"\)/,
      );
      expect(
        await errorOf(() => new Worker(queue).task("t", () => null, { timeoutSeconds: "1 h" })),
      ).toBe(
        'Invalid handler options of t: timeoutSeconds: "1 h" is not a duration; use seconds or e.g. "30m".',
      );
      expect(
        await errorOf(() =>
          new Scheduler(queue).create({ id: "s", type: "t", cron: "* * * * *", ttlSeconds: "-1m" }),
        ),
      ).toMatch(/ttlSeconds: "-1m" is not a duration/);
    });
  });
}
