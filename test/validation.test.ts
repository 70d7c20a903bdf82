/**
 * Input validation at the boundary: one schema for submit, schedule and default task options,
 * worker and list options, bounded durations and dates, and bulk operations that report and
 * skip a corrupt object. Storage-facing cases run on memory, file and MinIO (when set).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "../src/connect.ts";
import { parseDate, parseDuration } from "../src/duration.ts";
import { ValidationError } from "../src/errors.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { Queue } from "../src/queue/queue.ts";
import { Scheduler } from "../src/schedule/scheduler.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { backoffMs } from "../src/task/backoff.ts";
import { encodeTask, parseTask } from "../src/task/record.ts";
import { claimTask, createTask, failAttempt } from "../src/task/transitions.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";

/** Run `fn` and return the ValidationError it throws (failing the test if it throws another). */
async function validationError(fn: () => unknown): Promise<ValidationError> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw new Error(`expected a ValidationError, got ${error}`);
  }
  throw new Error("expected a ValidationError, but nothing was thrown");
}

for (const target of targets) {
  describe(`validation on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;

    beforeEach(async () => {
      env = await target.create();
      queue = await connect({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      await env.cleanup();
    });

    it("cancelByType reports and skips a corrupt task object and cancels all the others (defect 16)", async () => {
      const warnings: string[] = [];
      const q = new Queue({
        storage: env.storage,
        prefix: env.prefix,
        logger: { info() {}, warn: (m) => warnings.push(m), error() {} },
      });
      const tasks = await q.submitMany(
        Array.from({ length: 60 }, (_, i) => ({ type: "bulk", input: i })),
      );
      const bad = tasks[20]!;
      await env.storage.put(q.keys.task(bad.id), "{not json");
      const outcomes = await q.cancelByType("bulk");
      expect(outcomes).toHaveLength(60);
      const malformed = outcomes.filter((o) => o.result === "malformed");
      expect(malformed.map((o) => o.id)).toEqual([bad.id]);
      expect(malformed[0]!.ok).toBe(false);
      expect(malformed[0]!.message).toMatch(/not JSON/);
      expect(outcomes.filter((o) => o.result === "cancelled")).toHaveLength(59);
      const pending = await q.list({ status: "pending", type: "bulk", limit: 100 });
      expect(pending.tasks).toEqual([]);
      expect(warnings.some((m) => m.includes(bad.id))).toBe(true);
    });

    it("submit rejects an infinite backoff, and defaults too, so no unreadable task is stored (defect 17)", async () => {
      for (const backoff of [
        { maxSeconds: Number.POSITIVE_INFINITY },
        { initialSeconds: Number.POSITIVE_INFINITY },
        { factor: Number.POSITIVE_INFINITY },
        { factor: Number.NaN },
      ]) {
        const error = await validationError(() => queue.submit("inf", null, { backoff }));
        expect(error.message).toMatch(/backoff\.(maxSeconds|initialSeconds|factor) must be/);
      }
      const error = await validationError(() =>
        connect({
          storage: env.storage,
          prefix: env.prefix,
          defaults: { backoff: { maxSeconds: Number.POSITIVE_INFINITY } },
        }),
      );
      expect(error.message).toMatch(/defaults: backoff\.maxSeconds must be a number of seconds/);
      // Nothing was written: the queue holds no task that list, cancel or a worker trips over.
      expect((await queue.list()).tasks).toEqual([]);
    });

    it("submit rejects timeoutSeconds: Infinity, as schedules do (defect 17)", async () => {
      const error = await validationError(() =>
        queue.submit("t", null, { timeoutSeconds: Number.POSITIVE_INFINITY }),
      );
      expect(error.message).toMatch(
        /timeoutSeconds must be a number of seconds from 0.001 \(1 ms\)/,
      );
      await expect(
        queue.submit("t", null, { ttlSeconds: Number.POSITIVE_INFINITY }),
      ).rejects.toBeInstanceOf(ValidationError);
      expect((await queue.list()).tasks).toEqual([]);
    });

    it("a backoff starts no higher than its cap", async () => {
      // initialSeconds above maxSeconds was accepted; the cap won and the first delay never ran.
      const backoff = await validationError(() =>
        queue.submit("t", null, { backoff: { initialSeconds: 100, maxSeconds: 1 } }),
      );
      expect(backoff.message).toBe(
        "Invalid submit options: backoff.maxSeconds must be at least initialSeconds (100) (was 1).",
      );
      await validationError(() =>
        connect({
          storage: env.storage,
          prefix: env.prefix,
          defaults: { backoff: { initialSeconds: "1h", maxSeconds: "1m" } },
        }),
      );
      expect((await queue.list()).tasks).toEqual([]);
      const task = await queue.submit("t", null, { backoff: { initialSeconds: 5, maxSeconds: 5 } });
      expect(task.backoff.maxSeconds).toBe(5);
    });

    it("a positive duration is at least 1 ms, in submit and worker options alike", async () => {
      // Sub-millisecond timeouts and TTLs were stored: a limit every timer reads as zero.
      for (const options of [
        { timeoutSeconds: 0.0001 },
        { ttlSeconds: 0.0009 },
        { timeoutSeconds: "0.0004" },
      ]) {
        const error = await validationError(() => queue.submit("t", null, options));
        expect(error.message).toMatch(
          /(timeoutSeconds|ttlSeconds) must be a number of seconds from 0\.001 \(1 ms\) to 100 years/,
        );
      }
      const worker = await validationError(() => new Worker(queue, { timeoutSeconds: 0.0001 }));
      expect(worker.message).toMatch(
        /worker options: timeoutSeconds must be a number of seconds from 0\.001/,
      );
      expect((await queue.list()).tasks).toEqual([]);
      // The bounds themselves pass.
      const task = await queue.submit("t", null, {
        timeoutSeconds: 0.001,
        ttlSeconds: "1ms",
      });
      expect(task.timeoutSeconds).toBe(0.001);
      expect(() => new Worker(queue, { timeoutSeconds: 0.001 })).not.toThrow();
    });

    it("submit refuses a Map, a Set and other values JSON would flatten to {}, naming the path", async () => {
      // Each was stored as {} (or {"s": {}}): the task ran with its data gone.
      for (const [input, message] of [
        [new Map([[1, 2]]), /: input is a Map, which JSON would store as \{\}/],
        [{ s: new Set([1]) }, /: input\.s is a Set, which JSON would store as \{\}/],
        [{ list: [1, { re: /x/ }] }, /: input\.list\[1\]\.re is a RegExp/],
        [[new Error("boom")], /: input\[0\] is an Error/],
        [{ n: { big: 1n } }, /: input\.n\.big is a BigInt/],
      ] as const) {
        const error = await validationError(() => queue.submit("t", input));
        expect(error.message).toMatch(/^Input of t task is not JSON-serializable: /);
        expect(error.message).toMatch(message);
      }
      expect((await queue.list()).tasks).toEqual([]);
      // A Date (toJSON gives its ISO string), any toJSON and a class instance's own fields pass.
      const at = new Date(0);
      const task = await queue.submit("t", {
        at,
        money: { toJSON: () => "1.00 EUR" },
        point: new (class {
          x = 1;
        })(),
      });
      expect(task.input).toEqual({ at: at.toISOString(), money: "1.00 EUR", point: { x: 1 } });
    });

    it("huge delays and dates are a ValidationError, not a RangeError (defect 18)", async () => {
      for (const options of [
        { delay: 1e20 },
        { delay: "99999999999999999999w" },
        { scheduleAt: -1e20 },
        { scheduleAt: 1e20 },
        { expiresAt: 1e20 },
        { scheduleAt: "2026-02-30T00:00:00Z" },
      ]) {
        const error = await validationError(() => queue.submit("t", null, options));
        expect(error.message).toMatch(/delay|scheduleAt|expiresAt/);
      }
      expect((await queue.list()).tasks).toEqual([]);
    });

    it("a misspelt option or a malformed submitMany call fails before anything is written", async () => {
      const loose = (o: unknown) => o as never;
      // An unknown key was dropped in silence: `maxRetry: 9` submitted a task with 3 retries.
      for (const [call, key] of [
        [() => queue.submit("t", null, loose({ maxRetry: 9 })), "maxRetry"],
        [() => queue.submit("t", null, loose({ backoff: { initial: 1 } })), "backoff.initial"],
        [() => queue.list(loose({ state: "failed" })), "state"],
        [() => new Worker(queue, loose({ concurency: 4 })), "concurency"],
        [() => queue.submitMany([{ type: "t", options: loose({ delayMs: 5 }) }]), "delayMs"],
      ] as const) {
        const error = await validationError(call);
        expect(error.message).toContain(`${key} must be removed (not a known key)`);
      }
      // submitMany with a concurrency below 1 wrote nothing and returned holes: `[null]`.
      for (const concurrency of [0, -1, 1.5, Number.NaN]) {
        const error = await validationError(() =>
          queue.submitMany([{ type: "t", input: 1 }], { concurrency }),
        );
        expect(error.message).toMatch(/concurrency must be a whole number from 1 to 1000/);
      }
      expect((await validationError(() => queue.submitMany(loose({ type: "t" })))).message).toMatch(
        /submitMany takes an array of \{ type, input\?, options\? \} \(was an object\)/,
      );
      expect((await validationError(() => queue.submitMany([loose(null)]))).message).toMatch(
        /Task #0: expected \{ type, input\?, options\? \} \(was null\)/,
      );
      // `inputs` for `input`: the task would have been stored with a null input.
      expect(
        (await validationError(() => queue.submitMany([loose({ type: "t", inputs: 1 })]))).message,
      ).toMatch(/Task #0: unknown key "inputs"/);
      expect((await queue.list()).tasks).toEqual([]);
      // Good calls still pass, and keys set to undefined count as not given.
      const [task] = await queue.submitMany(
        [{ type: "t", input: 2, options: { delay: undefined } }],
        {
          concurrency: 1,
        },
      );
      expect(task!.input).toBe(2);
    });

    it("a second handler for one type is refused, not swapped in silently", () => {
      const worker = new Worker(queue).task("t", () => 1);
      expect(() => worker.task("t", () => 2)).toThrow(
        /already has a handler for t: register each task type once/,
      );
    });

    it("cancel refuses a reason that is not a short string before writing, so no task turns malformed", async () => {
      const loose = (o: unknown) => o as never;
      const task = await queue.submit("email", 1);
      const bulk = await queue.submit("bulk", 1);
      // Each of these was stored as cancel.reason, and the task could never be read again.
      for (const reason of [5, { why: "x" }, ["a"], true, null, "r".repeat(1001)]) {
        for (const call of [
          () => queue.cancel(task.id, loose({ reason })),
          () => queue.cancelMany([bulk.id], loose({ reason })),
          () => queue.cancelByType("bulk", loose({ reason })),
        ]) {
          const error = await validationError(call);
          expect(error.message).toMatch(
            /Invalid cancel options: reason must be a string of at most 1000 characters/,
          );
        }
      }
      // A misspelt key or a bare string for the options: the task was cancelled without the reason.
      for (const options of [{ reasn: "x" }, "why"]) {
        await validationError(() => queue.cancel(task.id, loose(options)));
        await validationError(() => queue.cancelMany([task.id], loose(options)));
      }
      expect(
        (await validationError(() => queue.cancel(task.id, loose({ reasn: "x" })))).message,
      ).toBe("Invalid cancel options: reasn must be removed (not a known key).");
      // A string is iterable: cancelMany("abc") tried to cancel the ids "a", "b" and "c".
      expect((await validationError(() => queue.cancelMany(loose("abc")))).message).toBe(
        "cancelMany takes an array of task ids (was a string).",
      );
      expect((await queue.get(task.id)).status).toBe("pending");
      expect((await queue.get(bulk.id)).status).toBe("pending");
      // A good reason is stored and the tasks stay readable.
      const done = await queue.cancel(task.id, { reason: "r".repeat(1000) });
      expect(done.cancel?.reason).toHaveLength(1000);
      const [outcome] = await queue.cancelMany([bulk.id], { reason: "stop", onProgress: () => {} });
      expect(outcome!.result).toBe("cancelled");
      expect((await queue.get(bulk.id)).cancel?.reason).toBe("stop");
      expect((await queue.list({ status: "cancelled" })).tasks).toHaveLength(2);
    });

    it("wait and setRetention refuse a misspelt key instead of waiting forever or changing every type; an aborted signal stops a wait", async () => {
      const loose = (o: unknown) => o as never;
      const task = await queue.submit("email", 1);
      // `timout` was dropped: the wait had no limit and never returned.
      const outcome = await Promise.race([
        queue.wait(task.id, loose({ timout: "1s" })).catch((error: unknown) => error),
        new Promise((resolve) => setTimeout(() => resolve("still waiting"), 1500)),
      ]);
      expect(outcome).toBeInstanceOf(ValidationError);
      expect((outcome as Error).message).toBe(
        "Invalid wait options: timout must be removed (not a known key).",
      );
      await validationError(() => queue.wait(task.id, loose("1s")));
      await expect(queue.wait(task.id, { timeout: 0.01 })).rejects.toThrow(/still pending/);
      // An aborted signal made each sleep return at once: the wait polled the storage in a
      // tight loop, for ever, instead of stopping. The storage gives up after 20 reads, so a
      // regression fails here rather than starving the event loop.
      let reads = 0;
      const counted = new Proxy(env.storage, {
        get(target, name) {
          const value = Reflect.get(target, name);
          if (name !== "get") return typeof value === "function" ? value.bind(target) : value;
          return (...args: unknown[]) => {
            if (++reads > 20) throw new Error("polled in a loop");
            return value.apply(target, args);
          };
        },
      });
      const watcher = new Queue({ storage: counted, prefix: env.prefix });
      const signal = AbortSignal.abort(new Error("stop"));
      await expect(watcher.wait(task.id, { signal })).rejects.toThrow(/^stop$/);
      const before = (await queue.manifest()).retention;
      // `typ` was dropped: the queue-wide default changed instead of one type's.
      expect(
        (await validationError(() => queue.setRetention({ completed: "1d" }, loose({ typ: "x" }))))
          .message,
      ).toBe("Invalid retention options: typ must be removed (not a known key).");
      // null was a raw TypeError reading its `type`.
      expect(
        (await validationError(() => queue.setRetention({ completed: "1d" }, loose(null)))).message,
      ).toMatch(/Invalid retention options: expected an object/);
      expect((await queue.manifest()).retention).toEqual(before);
      const after = await queue.setRetention({ completed: "1d" }, { type: "email" });
      expect(after.retention?.types?.email?.completed).toBe(86400);
    });

    it("Scheduler.trigger checks the caller's own idempotency key, in the caller's terms", async () => {
      const loose = (o: unknown) => o as never;
      const scheduler = new Scheduler(queue);
      await scheduler.create({ id: "s15", type: "ping", cron: "0 9 * * *" });
      // Ignored before: a misspelt key, a number, an empty key and one of spaces all triggered.
      for (const [options, message] of [
        [{ idempotencykey: "x" }, /idempotencykey must be removed \(not a known key\)/],
        [{ idempotencyKey: 5 }, /idempotencyKey must be a string of 1 to 492 characters/],
        [{ idempotencyKey: "" }, /\(was ""\)/],
        [{ idempotencyKey: "   " }, /not only whitespace \(was " {3}"\)/],
        [null, /expected an object/],
      ] as const) {
        const error = await validationError(() => scheduler.trigger("s15", loose(options)));
        expect(error.message).toMatch(/^Invalid trigger options of s15: /);
        expect(error.message).toMatch(message);
      }
      // Too long: the message named "schedule:s15:manual:kkk..." and the limit of that key.
      const long = await validationError(() =>
        scheduler.trigger("s15", { idempotencyKey: "k".repeat(500) }),
      );
      expect(long.message).toMatch(
        /idempotencyKey must be a string of 1 to 492 characters \(512 less the schedule's prefix\)/,
      );
      expect(long.message).not.toContain("schedule:s15:manual");
      expect((await queue.list()).tasks).toEqual([]);
      // The longest key the schedule leaves room for still works, once.
      const key = "k".repeat(492);
      const first = await scheduler.trigger("s15", { idempotencyKey: key });
      expect((await scheduler.trigger("s15", { idempotencyKey: key })).id).toBe(first.id);
      // submit shares the rule: a key of only whitespace was accepted.
      expect(
        (await validationError(() => queue.submit("t", 1, { idempotencyKey: " \t" }))).message,
      ).toMatch(/idempotencyKey must be a string of 1 to 512 characters, not only whitespace/);
    });

    it("list rejects a bad limit, status or type instead of answering (defect 19)", async () => {
      await queue.submit("t", null);
      await expect(queue.list({ limit: -1 })).rejects.toThrow(/limit must be a whole number/);
      await expect(queue.list({ limit: 0 })).rejects.toBeInstanceOf(ValidationError);
      await expect(queue.list({ limit: 1.5 })).rejects.toBeInstanceOf(ValidationError);
      await expect(queue.list({ status: "bogus" as unknown as "pending" })).rejects.toThrow(
        /status must be one of pending/,
      );
      await expect(queue.list({ type: "../../etc" })).rejects.toThrow(/task type/);
      expect((await queue.list({ status: ["pending"], type: "t", limit: 1 })).tasks).toHaveLength(
        1,
      );
    });
  });
}

describe("options validation", () => {
  const queue = () => new Queue({ storage: new MemoryStorage() });

  it("prune, stats, bulk cancel and the scheduler refuse a misspelt key before doing anything", async () => {
    const storage = new MemoryStorage();
    const queue = new Queue({ storage });
    const loose = (o: unknown) => o as never;
    await queue.submit("t", 1);
    // `olderThan` is not an option: the prune ran with the stored retention instead.
    await expect(queue.prune(loose({ olderThan: "1d" }))).rejects.toThrow(
      /Invalid prune options: olderThan must be removed \(not a known key\)/,
    );
    await expect(queue.stats(loose({ type: "t" }))).rejects.toThrow(/type must be removed/);
    await expect(queue.cancelByType("t", loose({ reasn: "x" }))).rejects.toThrow(
      /Invalid cancel options: reasn must be removed/,
    );
    expect((await queue.list({ status: "pending" })).tasks).toHaveLength(1);
    expect(() => new Scheduler(queue, loose({ concurency: 2 }))).toThrow(
      /concurency must be removed/,
    );
    expect(() => new Scheduler(queue, { concurrency: 0 })).toThrow(
      /concurrency must be a whole number from 1 to 100/,
    );
    const scheduler = new Scheduler(queue);
    // `cronn` for `cron`: the message named an empty cron expression, not the misspelt key.
    await expect(
      scheduler.create(loose({ id: "s", type: "t", cronn: "* * * * *" })),
    ).rejects.toThrow(/Invalid schedule: cronn must be removed/);
    await expect(scheduler.list()).resolves.toEqual([]);
  });

  it("stats, Metrics and Worker report a bad argument as a ValidationError, not a raw TypeError", async () => {
    const loose = (o: unknown) => o as never;
    const q = queue();
    // Each of these threw a TypeError without a code (`options.types?.map is not a function`).
    for (const [call, message] of [
      [
        () => q.stats(loose({ types: "email" })),
        /types must be an array of task types \(was a string\)/,
      ],
      [() => q.stats(loose({ series: "yes" })), /series must be a boolean/],
      [() => new Metrics(loose(null)), /Invalid metrics options: expected an object, got null/],
      [() => new Worker(loose(null)), /Expected an oq Queue .*, got null/],
      [() => new Worker(loose({})), /Expected an oq Queue .*, got an object/],
      [() => new Scheduler(loose(undefined)), /Expected an oq Queue .*, got missing/],
      // `depthIntervalSecond` was dropped, leaving the default of 15 s in force.
      [
        () => new Metrics(loose({ depthIntervalSecond: 60 })),
        /depthIntervalSecond must be removed \(not a known key\)/,
      ],
      [
        () => new Metrics({ depthIntervalSeconds: -1 }),
        /depthIntervalSeconds must be a number of seconds/,
      ],
    ] as const) {
      const error = await validationError(call);
      expect(error.code).toBe("VALIDATION");
      expect(error.message).toMatch(message);
    }
    const [email] = (await q.stats({ types: ["email"], series: true })).types;
    expect(email!.series?.minutes).toHaveLength(60);
    expect(() => new Metrics({ depthIntervalSeconds: 0 })).not.toThrow();
  });

  it("setShards names a NaN or infinite count as given, not as null", async () => {
    const q = queue();
    for (const [shards, text] of [
      [Number.NaN, "NaN"],
      [Number.POSITIVE_INFINITY, "Infinity"],
      [1.5, "1.5"],
      ["4", '"4"'],
    ] as const) {
      expect((await validationError(() => q.setShards("t", shards as number))).message).toBe(
        `Invalid shard count ${text}: use an integer from 1 to 256.`,
      );
    }
  });

  it("queue and connect options refuse a misspelt key and a missing storage", async () => {
    const storage = new MemoryStorage();
    const loose = (o: unknown) => o as never;
    // `prefx` opened the queue at the bucket's root, beside whatever else lives there.
    expect(() => new Queue(loose({ storage, prefx: "jobs/" }))).toThrow(
      /Invalid queue options: prefx must be removed \(not a known key\)/,
    );
    await expect(connect(loose({ storage, prefx: "jobs/" }))).rejects.toThrow(
      /Invalid connect options: prefx must be removed/,
    );
    await expect(connect(loose({ buckt: "b", env: {} }))).rejects.toThrow(/buckt must be removed/);
    expect(() => new Queue(loose({}))).toThrow(/Queue options need storage/);
    expect(() => new Queue(loose(null))).toThrow(ValidationError);
    // Every key connect() knows still works, and the queue gets its own.
    const queue = await connect({ storage, prefix: "jobs/", env: {}, skipVersioningCheck: true });
    expect(queue.keys.task("x")).toBe("jobs/tasks/_/x.json");
  });

  it("rejects worker options that would spin, overload or never beat (defect 19)", async () => {
    const q = queue();
    for (const [options, option] of [
      [{ maxPollMs: 0 }, "maxPollMs"],
      [{ maxPollMs: -5 }, "maxPollMs"],
      [{ minPollMs: 0 }, "minPollMs"],
      [{ minPollMs: -1 }, "minPollMs"],
      [{ concurrency: 1e9 }, "concurrency"],
      [{ heartbeatSeconds: -1 }, "heartbeatSeconds"],
      [{ heartbeatSeconds: Number.POSITIVE_INFINITY }, "heartbeatSeconds"],
      [{ leaseSeconds: Number.POSITIVE_INFINITY }, "leaseSeconds"],
      [{ shutdownGraceMs: Number.NaN }, "shutdownGraceMs"],
      [{ listReuseMs: -1 }, "listReuseMs"],
      [{ timeoutSeconds: 0 }, "timeoutSeconds"],
      [{ minPollMs: 500, maxPollMs: 100 }, "maxPollMs"],
    ] as const) {
      const error = await validationError(() => new Worker(q, options));
      expect(error.message).toContain(`worker options: ${option} must be`);
    }
    // Defaults and ordinary settings still pass, with keys set to undefined meaning "default".
    expect(() => new Worker(q, { maxPollMs: undefined, concurrency: 4 })).not.toThrow();
    expect(
      () => new Worker(q, { heartbeatSeconds: 0, minPollMs: 20, maxPollMs: 50 }),
    ).not.toThrow();
  });

  it("schedules share the submit schema: NaN input and bad task options are rejected alike", async () => {
    const q = queue();
    const scheduler = new Scheduler(q);
    // Before, the schedule stored NaN as null while submit rejected it.
    await expect(
      scheduler.create({ id: "nan", type: "t", cron: "@hourly", input: { n: Number.NaN } }),
    ).rejects.toThrow(/not JSON-serializable/);
    await expect(q.submit("t", { n: Number.NaN })).rejects.toThrow(/not JSON-serializable/);
    for (const bad of [
      { timeoutSeconds: Number.POSITIVE_INFINITY },
      { ttlSeconds: 0 },
      { maxRetries: 1.5 },
    ]) {
      const scheduleError = await validationError(() =>
        scheduler.create({ id: "s", type: "t", cron: "@hourly", ...bad }),
      );
      const submitError = await validationError(() => q.submit("t", null, bad));
      const [option] = Object.keys(bad);
      expect(scheduleError.message).toContain(`${option} must be`);
      expect(submitError.message).toContain(`${option} must be`);
    }
  });

  it("rejects impossible calendar dates and out-of-range durations (defect 18)", () => {
    for (const bad of [
      "2026-02-30T00:00:00Z",
      "2026-04-31T09:00:00Z",
      "2025-02-29T00:00:00Z",
      "2026-01-01T24:00:00Z",
      "2026-01-01T10:60:00Z",
      -1e20,
      1e20,
      "99999999999999999999",
    ]) {
      expect(() => parseDate(bad, "at"), String(bad)).toThrow(ValidationError);
    }
    expect(parseDate("2024-02-29T00:00:00Z")).toBe(Date.UTC(2024, 1, 29));
    for (const bad of ["99999999999999999999w", 1e20, "9".repeat(400), "36526d"]) {
      expect(() => parseDuration(bad, "delay")).toThrow(ValidationError);
    }
    expect(parseDuration("36525d")).toBe(36525 * 86_400_000);
  });

  it("a zero initial backoff stays zero after the power overflows, keeping availableAt a date (defect 17)", () => {
    const backoff = { initialSeconds: 0, maxSeconds: 300, factor: 2 };
    expect(backoffMs(backoff, 2000, 0.5)).toBe(0);
    const now = Date.UTC(2026, 0, 1);
    let task = createTask(
      {
        id: "a",
        type: "t",
        input: null,
        maxRetries: 5000,
        backoff,
        timeoutSeconds: null,
        availableAt: now,
        expiresAt: null,
        idempotencyKey: null,
        marker: "m",
      },
      now,
    );
    task = { ...claimTask(task, { workerId: "w", token: "k", leaseMs: 1000, now }), attempt: 2000 };
    const next = failAttempt(task, "k", { name: "Error", message: "x" }, now, 0.5);
    expect(next.availableAt).toBe(new Date(now).toISOString());
    expect(parseTask(encodeTask(next), "k").status).toBe("pending");
  });
});
