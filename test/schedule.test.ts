/**
 * Recurring schedules: croner semantics (validation, timezones, DST), catch-up policies, and
 * exactly-once firing per slot with several schedulers and crashes, on memory, file and MinIO
 * (when OQ_TEST_S3_* is set).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NotFoundError, ValidationError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { FileStorage } from "../src/runtime/file/storage.ts";
import type { ScheduleRecord } from "../src/schedule/record.ts";
import { startScheduler } from "../src/schedule/runner.ts";
import { Scheduler, type TickResult } from "../src/schedule/scheduler.ts";
import { cronFor, nextSlots, planSlots, slotIdempotencyKey } from "../src/schedule/slots.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type {
  ListOptions,
  ListVersionsOptions,
  PutOptions,
  Storage,
} from "../src/storage/storage.ts";
import type { TaskRecord } from "../src/task/record.ts";
import { s3Config, testS3Storage } from "./helpers/targets.ts";
import { ERROR_FAULT_KINDS, FaultyStorage } from "./support/faulty.ts";

const iso = (ms: number) => new Date(ms).toISOString();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A settable clock shared by the storage and every queue of a test. */
class FakeClock {
  t: number;
  constructor(start: string) {
    this.t = Date.parse(start);
  }
  now = () => this.t;
  advance(ms: number) {
    this.t += ms;
  }
}

interface Env {
  storage: Storage;
  prefix: string;
  root?: string;
  cleanup(): Promise<void>;
}

interface Backend {
  name: string;
  /** True when the storage's clock can be injected (memory, file): not S3, whose Date headers win. */
  fakeTime: boolean;
  open(now?: () => number): Env;
}

async function wipe(storage: Storage, prefix: string): Promise<void> {
  for (;;) {
    const page = await storage.listVersions({ prefix });
    if (page.versions.length === 0) return;
    await Promise.all(page.versions.map((v) => storage.deleteVersion!(v.key, v.versionId)));
  }
}

const backends: Backend[] = [
  {
    name: "memory",
    fakeTime: true,
    open: (now) => ({
      storage: new MemoryStorage(now === undefined ? {} : { now }),
      prefix: "",
      cleanup: async () => {},
    }),
  },
  {
    name: "file",
    fakeTime: true,
    open: (now) => {
      const root = mkdtempSync(join(tmpdir(), "oq-schedule-"));
      return {
        storage: new FileStorage(now === undefined ? { root } : { root, now }),
        prefix: "q/",
        root,
        cleanup: async () => rmSync(root, { recursive: true, force: true }),
      };
    },
  },
  ...(s3Config === undefined
    ? []
    : [
        {
          name: "s3 (MinIO)",
          fakeTime: false,
          open: (): Env => {
            const storage = testS3Storage();
            const prefix = `sched-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/`;
            return { storage, prefix, cleanup: () => wipe(storage, prefix) };
          },
        },
      ]),
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

function open(backend: Backend, clock?: FakeClock): Env {
  const env = backend.open(clock?.now);
  cleanups.push(env.cleanup);
  return env;
}

function queueOf(env: Env, clock?: FakeClock, storage: Storage = env.storage): Queue {
  return new Queue({
    storage,
    prefix: env.prefix,
    ...(clock === undefined ? {} : { now: clock.now }),
  });
}

/** Every task of the queue. */
async function allTasks(queue: Queue): Promise<TaskRecord[]> {
  const out: TaskRecord[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await queue.list({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    out.push(...page.tasks);
    if (page.cursor === undefined) return out;
    cursor = page.cursor;
  }
}

/** The slots of a schedule in (after, through], per croner. */
function slotsBetween(schedule: ScheduleRecord, after: number, through: number): number[] {
  const out: number[] = [];
  let t = after;
  for (;;) {
    const [next] = nextSlots(schedule, t, 1);
    if (next === undefined || next > through) return out;
    out.push(next);
    t = next;
  }
}

/** Exactly one task per expected slot, with the slot's idempotency key, and nothing else. */
async function expectOneTaskPerSlot(queue: Queue, schedule: ScheduleRecord, slots: number[]) {
  const tasks = (await allTasks(queue)).filter((t) =>
    t.idempotencyKey?.startsWith(`schedule:${schedule.id}:20`),
  );
  const keys = tasks.map((t) => t.idempotencyKey).sort();
  expect(keys).toEqual(slots.map((s) => slotIdempotencyKey(schedule.id, s)).sort());
  expect(new Set(tasks.map((t) => t.id)).size).toBe(tasks.length);
  for (const t of tasks) {
    expect(t.type).toBe(schedule.type);
    expect(t.input).toEqual(schedule.input);
  }
}

/** A storage that forwards to another, with a random pause before each call (shuffles races). */
function jittered(inner: Storage, maxMs = 3): Storage {
  const paused =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      await sleep(Math.floor(Math.random() * (maxMs + 1)));
      return fn(...args);
    };
  return {
    name: inner.name,
    get: paused((k: string, o?: { versionId?: string }) => inner.get(k, o)),
    head: paused((k: string) => inner.head(k)),
    put: paused((k: string, b: Uint8Array | string, o?: PutOptions) => inner.put(k, b, o)),
    delete: paused((k: string) => inner.delete(k)),
    list: paused((o?: ListOptions) => inner.list(o)),
    listVersions: paused((o: ListVersionsOptions) => inner.listVersions(o)),
    versioning: () => inner.versioning(),
    serverTime: () => inner.serverTime(),
  };
}

// ---- croner: validation, timezones, DST ------------------------------------------------------

describe("cron expressions and timezones (croner)", () => {
  it("rejects invalid expressions and timezones with croner's reason", () => {
    expect(() => cronFor("61 * * * *")).toThrow(
      /Invalid cron expression "61 \* \* \* \*".*minute: 61/,
    );
    expect(() => cronFor("hello")).toThrow(/five, six, or seven space separated parts/);
    // croner's reason ends in a period; the message reads as two sentences, not "required.. Use".
    expect(() => cronFor("* * * *")).toThrow(/parts are required\. Use 5 to 7 fields/);
    expect(() => cronFor("")).toThrow(ValidationError);
    expect(() => cronFor("0 9 * * *", "Nowhere/Foo")).toThrow(
      /Invalid timezone "Nowhere\/Foo".*Invalid time zone specified/,
    );
    expect(() => cronFor("0 9 * * *", "")).toThrow(/Invalid timezone ""/);
    expect(() => cronFor("2030-01-01T00:00:00")).toThrow(/one-off date/);
    expect(() => cronFor("0 0 30 2 *")).toThrow(/never fires/);
    expect(cronFor("@hourly").getPattern()).toBe("0 * * * *");
  });

  it("follows croner across the Europe/Paris spring-forward gap and fall-back repeat", () => {
    const at = (cron: string, from: string, n: number) =>
      nextSlots({ cron, timezone: "Europe/Paris" }, Date.parse(from), n).map(iso);
    // 02:30 does not exist on 2026-03-29: a fixed-time job runs at 03:00 CEST (01:00Z).
    expect(at("30 2 * * *", "2026-03-28T00:00:00Z", 3)).toEqual([
      "2026-03-28T01:30:00.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-30T00:30:00.000Z",
    ]);
    // 02:30 happens twice on 2026-10-25: a fixed-time job runs once, at the first (CEST).
    expect(at("30 2 * * *", "2026-10-24T00:00:00Z", 3)).toEqual([
      "2026-10-24T00:30:00.000Z",
      "2026-10-25T00:30:00.000Z",
      "2026-10-26T01:30:00.000Z",
    ]);
    // An interval job runs on both occurrences of the repeated hour.
    expect(at("*/30 * * * *", "2026-10-25T00:00:00Z", 4)).toEqual([
      "2026-10-25T00:30:00.000Z",
      "2026-10-25T01:00:00.000Z",
      "2026-10-25T01:30:00.000Z",
      "2026-10-25T02:00:00.000Z",
    ]);
  });

  it("keeps 09:00 local in America/New_York across the DST start", () => {
    const slots = nextSlots(
      { cron: "0 9 * * *", timezone: "America/New_York" },
      Date.parse("2026-03-07T00:00:00Z"),
      3,
    ).map(iso);
    expect(slots).toEqual([
      "2026-03-07T14:00:00.000Z", // EST, UTC-5
      "2026-03-08T13:00:00.000Z", // EDT, UTC-4
      "2026-03-09T13:00:00.000Z",
    ]);
  });

  it("fires the DST-shifted slot from a tick (Europe/Paris, 02:30 on the spring-forward day)", () => {
    const schedule = {
      cron: "30 2 * * *",
      timezone: "Europe/Paris",
      catchUp: "latest" as const,
      enabled: true,
      doneThrough: "2026-03-28T12:00:00.000Z",
    };
    expect(planSlots(schedule, Date.parse("2026-03-29T00:59:59Z")).fire).toEqual([]);
    expect(planSlots(schedule, Date.parse("2026-03-29T01:00:00Z")).fire.map(iso)).toEqual([
      "2026-03-29T01:00:00.000Z",
    ]);
  });
});

// ---- catch-up policies and the creation rule (pure) ------------------------------------------

describe("planSlots: catch-up policies and the creation rule", () => {
  const created = Date.parse("2026-05-01T12:00:00.000Z");
  const base = {
    cron: "* * * * *", // every minute
    timezone: "UTC",
    enabled: true,
    doneThrough: iso(created),
  };
  const late = created + 10 * 60_000 + 30_000; // 10 slots due, the latest 30 s late

  it("latest (default): runs only the latest missed slot, once", () => {
    const plan = planSlots({ ...base, catchUp: "latest" }, late);
    expect(plan.fire.map(iso)).toEqual(["2026-05-01T12:10:00.000Z"]);
    expect(plan.skipped).toBeGreaterThanOrEqual(1);
    expect(plan.doneThrough).toBe(Date.parse("2026-05-01T12:10:00Z"));
  });

  it("all: runs every missed slot, oldest first, bounded", () => {
    const plan = planSlots({ ...base, catchUp: "all" }, late);
    expect(plan.fire.map(iso)).toEqual(
      Array.from({ length: 10 }, (_, i) => iso(created + (i + 1) * 60_000)),
    );
    expect(plan.skipped).toBe(0);
    const bounded = planSlots({ ...base, catchUp: "all" }, late, { maxCatchUp: 4 });
    expect(bounded.fire.map(iso)).toEqual([
      "2026-05-01T12:07:00.000Z",
      "2026-05-01T12:08:00.000Z",
      "2026-05-01T12:09:00.000Z",
      "2026-05-01T12:10:00.000Z",
    ]);
    expect(bounded.skipped).toBeGreaterThanOrEqual(1);
    expect(bounded.doneThrough).toBe(Date.parse("2026-05-01T12:10:00Z"));
    // The default bound is 100, even after a long outage of a per-second schedule.
    const flood = planSlots({ ...base, cron: "* * * * * *", catchUp: "all" }, created + 3600_000);
    expect(flood.fire).toHaveLength(100);
    expect(iso(flood.fire[99]!)).toBe("2026-05-01T13:00:00.000Z");
  });

  it("none: skips missed slots and runs only one that is on time", () => {
    // The latest slot is 30 s late: on time by the default (60 s), missed with a 10 s bound.
    const onTime = planSlots({ ...base, catchUp: "none" }, late);
    expect(onTime.fire.map(iso)).toEqual(["2026-05-01T12:10:00.000Z"]);
    expect(onTime.skipped).toBeGreaterThanOrEqual(1);
    const missed = planSlots({ ...base, catchUp: "none" }, late, { missedAfterMs: 10_000 });
    expect(missed.fire).toEqual([]);
    expect(missed.doneThrough).toBe(Date.parse("2026-05-01T12:10:00Z"));
    const daily = planSlots(
      { ...base, cron: "0 12 * * *", catchUp: "none" },
      created + 3 * 86_400_000 + 3600_000,
    );
    expect(daily.fire).toEqual([]);
    expect(iso(daily.doneThrough!)).toBe("2026-05-04T12:00:00.000Z");
  });

  it("never fires a slot at or before creation, and nothing when disabled", () => {
    const daily = { ...base, cron: "0 12 * * *", catchUp: "all" as const };
    expect(planSlots(daily, created + 5_000).fire).toEqual([]); // created exactly at 12:00:00.000
    expect(
      planSlots({ ...daily, doneThrough: iso(created - 1) }, created + 5_000).fire.map(iso),
    ).toEqual(["2026-05-01T12:00:00.000Z"]);
    const perSecond = { ...base, cron: "* * * * * *", catchUp: "all" as const };
    const mid = { ...perSecond, doneThrough: iso(created + 500) };
    expect(planSlots(mid, created + 900).fire).toEqual([]);
    expect(planSlots(mid, created + 1000).fire.map(iso)).toEqual(["2026-05-01T12:00:01.000Z"]);
    expect(planSlots({ ...perSecond, enabled: false }, created + 60_000).fire).toEqual([]);
  });
});

// ---- against storages -------------------------------------------------------------------------

for (const backend of backends) {
  describe(`schedules on ${backend.name}`, () => {
    it("create, get, list, disable, enable, delete; rejects a taken id and bad input", async () => {
      const env = open(backend);
      const queue = queueOf(env);
      const s = new Scheduler(queue);
      const created = await s.create({
        id: "nightly",
        type: "report",
        input: { kind: "daily" },
        cron: "0 9 * * *",
        timezone: "Europe/Paris",
        catchUp: "all",
        timeoutSeconds: 30,
        maxRetries: 2,
        ttlSeconds: 3600,
      });
      expect(created).toMatchObject({
        id: "nightly",
        enabled: true,
        catchUp: "all",
        timezone: "Europe/Paris",
        task: { timeoutSeconds: 30, maxRetries: 2, ttlSeconds: 3600 },
        lastSlot: null,
      });
      expect(created.doneThrough).toBe(created.createdAt);
      expect(await s.get("nightly")).toEqual(created);
      await expect(s.create({ id: "nightly", type: "other", cron: "* * * * *" })).rejects.toThrow(
        /Schedule nightly already exists/,
      );
      expect((await s.get("nightly")).type).toBe("report"); // not overwritten
      await expect(s.create({ id: "bad", type: "t", cron: "61 * * * *" })).rejects.toThrow(
        /Invalid value for minute: 61/,
      );
      await expect(
        s.create({ id: "bad", type: "t", cron: "* * * * *", timezone: "Mars/Base" }),
      ).rejects.toThrow(/Invalid timezone "Mars\/Base"/);
      await expect(s.create({ id: "a/b", type: "t", cron: "* * * * *" })).rejects.toThrow(
        /Invalid schedule id/,
      );
      await expect(
        s.create({ id: "bad", type: "t", cron: "* * * * *", catchUp: "some" as "all" }),
      ).rejects.toThrow(/catch-up policy "some"/);
      await expect(s.read("bad")).resolves.toBeUndefined();

      await s.create({ id: "second", type: "t", cron: "*/5 * * * * *" });
      const listed = await s.list();
      expect(listed.map((l) => l.id)).toEqual(["nightly", "second"]);
      const nightly = listed[0]!;
      expect(nightly.nextRunAt).toBe(
        iso(nextSlots(nightly, Math.max(queue.now(), Date.parse(nightly.doneThrough)))[0]!),
      );
      // 09:00 in Paris is 07:00 or 08:00 UTC.
      expect(nightly.nextRunAt).toMatch(/T0[78]:00:00\.000Z$/);
      expect(s.upcoming(nightly, 3)).toHaveLength(3);

      const disabled = await s.disable("second");
      expect(disabled.enabled).toBe(false);
      expect((await s.list())[1]!.nextRunAt).toBeNull();
      expect((await s.disable("second")).enabled).toBe(false);
      const enabled = await s.enable("second");
      expect(enabled.enabled).toBe(true);
      expect(Date.parse(enabled.doneThrough)).toBeGreaterThanOrEqual(
        Date.parse(disabled.updatedAt),
      );

      await s.delete("second");
      await expect(s.get("second")).rejects.toThrow(NotFoundError);
      await expect(s.delete("second")).rejects.toThrow(/Schedule second not found/);
      await expect(s.enable("second")).rejects.toThrow(NotFoundError);
      expect((await s.list()).map((l) => l.id)).toEqual(["nightly"]);
    });

    it("trigger submits now with its own idempotency key, also when disabled", async () => {
      const env = open(backend);
      const queue = queueOf(env);
      const s = new Scheduler(queue);
      await s.create({
        id: "manual",
        type: "cleanup",
        input: [1, 2],
        cron: "0 0 1 1 *",
        maxRetries: 0,
        timeoutSeconds: 5,
      });
      const a = await s.trigger("manual");
      const b = await s.trigger("manual");
      expect(a.id).not.toBe(b.id);
      expect(a).toMatchObject({ type: "cleanup", input: [1, 2], maxRetries: 0, timeoutSeconds: 5 });
      expect(a.idempotencyKey).toMatch(/^schedule:manual:manual:\d{4}-.*Z:[0-9a-f]{8}$/);
      expect(() => startScheduler(queue, { intervalMs: 0 })).toThrow(ValidationError);
      const k1 = await s.trigger("manual", { idempotencyKey: "deploy-42" });
      const k2 = await s.trigger("manual", { idempotencyKey: "deploy-42" });
      expect(k2.id).toBe(k1.id);
      expect(k1.idempotencyKey).toBe("schedule:manual:manual:deploy-42");
      await s.disable("manual");
      await s.trigger("manual");
      expect(await allTasks(queue)).toHaveLength(4);
      // A trigger does not touch the schedule's slots.
      expect((await s.get("manual")).lastSlot).toBeNull();
      await expect(s.trigger("nope")).rejects.toThrow(NotFoundError);
    });

    if (backend.fakeTime) {
      it("3 schedulers racing over 12 per-second slots make exactly one task per slot", async () => {
        const clock = new FakeClock("2026-05-01T12:00:00.250Z");
        const env = open(backend, clock);
        const admin = new Scheduler(queueOf(env, clock));
        const schedule = await admin.create({
          id: "every-second",
          type: "tick",
          input: { n: 1 },
          cron: "* * * * * *",
          catchUp: "all",
        });
        const created = clock.now();
        const end = created + 12_000;
        const schedulers = [0, 1, 2].map(
          () => new Scheduler(queueOf(env, clock, jittered(env.storage))),
        );
        const results: TickResult[] = [];
        let running = true;
        const loops = schedulers.map(async (s) => {
          while (running) {
            results.push(await s.tick());
            await sleep(Math.random() * 4);
          }
        });
        while (clock.now() < end) {
          clock.advance(100);
          await sleep(2 + Math.random() * 3);
        }
        running = false;
        await Promise.all(loops);
        results.push(await schedulers[0]!.tick());
        const expected = slotsBetween(schedule, created, end);
        expect(expected).toHaveLength(12);
        await expectOneTaskPerSlot(admin.queue, schedule, expected);
        // Each slot was recorded by exactly one scheduler.
        const recorded = results.flatMap((r) => r.fired.map((f) => f.slot)).sort();
        expect(recorded).toEqual(expected.map(iso));
        expect(results.flatMap((r) => r.errors)).toEqual([]);
        const after = await admin.get("every-second");
        expect(after.lastSlot).toBe(iso(expected.at(-1)!));
        expect(after.doneThrough).toBe(iso(expected.at(-1)!));
      });

      it("a scheduler killed between submit and the CAS loses no slot and duplicates none", async () => {
        const clock = new FakeClock("2026-05-01T12:00:00.500Z");
        const env = open(backend, clock);
        const admin = new Scheduler(queueOf(env, clock));
        const schedule = await admin.create({
          id: "crashy",
          type: "t",
          cron: "*/2 * * * * *",
          catchUp: "all",
        });
        // Dies exactly after the task is submitted, before the slot is recorded.
        let armed = true;
        const dying: Storage = {
          ...jittered(env.storage, 0),
          put: async (key: string, body: Uint8Array | string, options?: PutOptions) => {
            if (armed && key.endsWith("schedules/crashy.json") && options?.ifMatch) {
              armed = false;
              throw new Error("SIGKILL (simulated)");
            }
            return env.storage.put(key, body, options);
          },
        };
        const victim = new Scheduler(queueOf(env, clock, dying));
        clock.advance(1_600); // slot 12:00:02 due
        const r1 = await victim.tick();
        expect(r1.errors.map((x) => String(x.error))).toEqual(["Error: SIGKILL (simulated)"]);
        expect(r1.fired).toEqual([]);
        const tasks = await allTasks(admin.queue);
        expect(tasks.map((t) => t.idempotencyKey)).toEqual([
          "schedule:crashy:2026-05-01T12:00:02.000Z",
        ]);
        expect((await admin.get("crashy")).lastSlot).toBeNull(); // not recorded
        // The next scheduler (or the restarted one) submits the same key again: same task.
        const survivor = new Scheduler(queueOf(env, clock));
        const r2 = await survivor.tick();
        expect(r2.fired).toEqual([
          { scheduleId: "crashy", slot: "2026-05-01T12:00:02.000Z", taskId: tasks[0]!.id },
        ]);
        const after = await admin.get("crashy");
        expect(after.lastSlot).toBe("2026-05-01T12:00:02.000Z");
        expect(after.lastTaskId).toBe(tasks[0]!.id);
        clock.advance(4_000);
        await victim.tick();
        await expectOneTaskPerSlot(
          admin.queue,
          schedule,
          slotsBetween(schedule, Date.parse(schedule.createdAt), clock.now()),
        );
      });

      it("crashes at random points of many ticks (chaos) still give exactly one task per slot", async () => {
        const clock = new FakeClock("2026-05-01T12:00:00.100Z");
        const env = open(backend, clock);
        const admin = new Scheduler(queueOf(env, clock));
        const schedule = await admin.create({
          id: "chaos",
          type: "t",
          cron: "* * * * * *",
          catchUp: "all",
        });
        const created = clock.now();
        // Every write may die before it happens or after it committed (the answer is lost).
        const chaotic = (): Storage => {
          const inner = jittered(env.storage, 0);
          return {
            ...inner,
            put: async (key, body, options) => {
              const roll = Math.random();
              if (roll < 0.1) throw new Error("killed before the write");
              const out = await inner.put(key, body, options);
              if (roll < 0.2) throw new Error("killed after the write committed");
              return out;
            },
          };
        };
        const schedulers = [0, 1, 2].map(() => new Scheduler(queueOf(env, clock, chaotic())));
        let crashes = 0;
        for (let step = 0; step < 40; step++) {
          clock.advance(250 + Math.floor(Math.random() * 300));
          const results = await Promise.all(schedulers.map((s) => s.tick().catch(() => undefined)));
          crashes += results.reduce((n, r) => n + (r === undefined ? 1 : r.errors.length), 0);
        }
        expect(crashes).toBeGreaterThan(5);
        // One clean tick settles what the crashes left behind.
        await new Scheduler(queueOf(env, clock)).tick();
        const expected = slotsBetween(schedule, created, clock.now());
        expect(expected.length).toBeGreaterThanOrEqual(10);
        await expectOneTaskPerSlot(admin.queue, schedule, expected);
      });

      it("applies the catch-up policies after downtime", async () => {
        const clock = new FakeClock("2026-05-01T12:00:00.000Z");
        const env = open(backend, clock);
        const s = new Scheduler(queueOf(env, clock), { missedAfterMs: 10_000 });
        for (const catchUp of ["latest", "all", "none"] as const) {
          await s.create({ id: `p-${catchUp}`, type: catchUp, cron: "* * * * *", catchUp });
        }
        clock.advance(5 * 60_000 + 30_000); // 5 slots missed; the last one 30 s ago
        const r = await s.tick();
        const fired = (id: string) => r.fired.filter((f) => f.scheduleId === id).map((f) => f.slot);
        expect(fired("p-latest")).toEqual(["2026-05-01T12:05:00.000Z"]);
        expect(fired("p-all")).toEqual([1, 2, 3, 4, 5].map((m) => `2026-05-01T12:0${m}:00.000Z`));
        expect(fired("p-none")).toEqual([]);
        expect(r.skipped.map((k) => [k.scheduleId, k.reason]).sort()).toEqual([
          ["p-latest", "catch-up"],
          ["p-none", "missed"],
        ]);
        // Skipped slots are settled: they never fire later.
        expect((await s.get("p-none")).doneThrough).toBe("2026-05-01T12:05:00.000Z");
        clock.advance(31_000); // 12:06:00 is due, 1 s late: on time
        const r2 = await s.tick();
        expect(r2.fired.map((f) => [f.scheduleId, f.slot]).sort()).toEqual([
          ["p-all", "2026-05-01T12:06:00.000Z"],
          ["p-latest", "2026-05-01T12:06:00.000Z"],
          ["p-none", "2026-05-01T12:06:00.000Z"],
        ]);
        expect((await allTasks(s.queue)).length).toBe(1 + 5 + 3);
        expect(r2.nextDueMs).toBe(Date.parse("2026-05-01T12:07:00Z"));
      });

      it("a disabled schedule fires nothing, and slots missed while disabled never fire", async () => {
        const clock = new FakeClock("2026-05-01T12:00:00.000Z");
        const env = open(backend, clock);
        const s = new Scheduler(queueOf(env, clock));
        await s.create({ id: "d", type: "t", cron: "* * * * *", catchUp: "all" });
        clock.advance(61_000);
        expect((await s.tick()).fired).toHaveLength(1);
        await s.disable("d");
        clock.advance(5 * 60_000);
        expect((await s.tick()).fired).toEqual([]);
        await s.enable("d");
        expect((await s.tick()).fired).toEqual([]);
        clock.advance(60_000);
        expect((await s.tick()).fired.map((f) => f.slot)).toEqual(["2026-05-01T12:07:00.000Z"]);
        expect(await allTasks(s.queue)).toHaveLength(2);
      });

      it("skips malformed schedule objects with a warning", async () => {
        const clock = new FakeClock("2026-05-01T12:00:00.000Z");
        const env = open(backend, clock);
        const warnings: string[] = [];
        const queue = queueOf(env, clock);
        const s = new Scheduler(queue, {
          logger: { info() {}, warn: (m) => warnings.push(m), error() {} },
        });
        await env.storage.put(queue.keys.schedule("junk"), "{not json");
        await s.create({ id: "ok", type: "t", cron: "* * * * *" });
        clock.advance(60_000);
        const r = await s.tick();
        expect(r.fired).toHaveLength(1);
        expect(warnings.join("\n")).toMatch(/schedules\/junk\.json.*not JSON/);
        expect((await s.list()).map((l) => l.id)).toEqual(["ok"]);
      });
    } else {
      it("3 schedulers running concurrently over 10+ real seconds make exactly one task per slot", async () => {
        const env = open(backend);
        const admin = new Scheduler(queueOf(env));
        const schedule = await admin.create({
          id: "every-second",
          type: "tick",
          cron: "* * * * * *",
          catchUp: "all",
        });
        const handles = [0, 1, 2].map(() => startScheduler(queueOf(env), { intervalMs: 1_000 }));
        await sleep(11_500);
        await Promise.all(handles.map((h) => h.stop()));
        await admin.tick();
        const done = await admin.get("every-second");
        const expected = slotsBetween(
          schedule,
          Date.parse(schedule.createdAt),
          Date.parse(done.doneThrough),
        );
        expect(expected.length).toBeGreaterThanOrEqual(10);
        await expectOneTaskPerSlot(admin.queue, schedule, expected);
      });
    }

    it("startScheduler runs the loop in the background and stops cleanly", async () => {
      const env = open(backend);
      const queue = queueOf(env);
      const admin = new Scheduler(queue);
      const schedule = await admin.create({
        id: "bg",
        type: "t",
        cron: "* * * * * *",
        catchUp: "all",
      });
      const handle = startScheduler(queueOf(env), { intervalMs: 5_000 });
      const deadline = Date.now() + 10_000;
      while ((await allTasks(queue)).length < 2 && Date.now() < deadline) await sleep(100);
      await handle.stop();
      const after = await admin.get("bg");
      const expected = slotsBetween(
        schedule,
        Date.parse(schedule.createdAt),
        Date.parse(after.doneThrough),
      );
      expect(expected.length).toBeGreaterThanOrEqual(2);
      await expectOneTaskPerSlot(queue, schedule, expected);
      // Stopped: nothing more is recorded.
      await sleep(1_300);
      expect((await admin.get("bg")).doneThrough).toBe(after.doneThrough);
    });
  });
}

// ---- real processes killed with SIGKILL --------------------------------------------------------

describe("scheduler processes killed with SIGKILL (file storage)", () => {
  it("lose no slot and duplicate none", async () => {
    const root = mkdtempSync(join(tmpdir(), "oq-schedule-kill-"));
    cleanups.push(async () => rmSync(root, { recursive: true, force: true }));
    const src = resolve("src");
    const child = join(root, "scheduler-child.mts"); // .mts: ESM (top-level await) outside the package
    writeFileSync(
      child,
      `import { FileStorage } from ${JSON.stringify(join(src, "runtime/file/storage.ts"))};
import { Queue } from ${JSON.stringify(join(src, "queue/queue.ts"))};
import { Scheduler } from ${JSON.stringify(join(src, "schedule/scheduler.ts"))};
const queue = new Queue({ storage: new FileStorage({ root: process.argv[2] }) });
process.stdout.write("ready\\n");
await new Scheduler(queue).run({ intervalMs: 300 });
`,
    );
    const data = join(root, "data");
    const queue = new Queue({ storage: new FileStorage({ root: data }) });
    const admin = new Scheduler(queue);
    const schedule = await admin.create({
      id: "killed",
      type: "t",
      cron: "* * * * * *",
      catchUp: "all",
    });
    const spawnOne = async () => {
      const proc = spawn(process.execPath, ["--import", "tsx", child, data], {
        cwd: process.cwd(),
        stdio: ["ignore", "pipe", "inherit"],
      });
      await new Promise<void>((ok, fail) => {
        proc.stdout.once("data", () => ok());
        proc.once("exit", (code) => fail(new Error(`child exited early (${code})`)));
      });
      return proc;
    };
    let kills = 0;
    const started = Date.now();
    // Rounds of two schedulers at once, each killed a random while after it started (so some
    // kills land mid-tick), until at least 10 s of slots have passed.
    while (kills < 6 || Date.now() - started < 10_000) {
      const procs = await Promise.all([spawnOne(), spawnOne()]);
      await sleep(500 + Math.random() * 1000);
      for (const p of procs) {
        p.kill("SIGKILL");
        kills++;
      }
      await Promise.all(
        procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once("exit", r)))),
      );
    }
    await admin.tick();
    const done = await admin.get("killed");
    const expected = slotsBetween(
      schedule,
      Date.parse(schedule.createdAt),
      Date.parse(done.doneThrough),
    );
    expect(kills).toBeGreaterThanOrEqual(6);
    expect(expected.length).toBeGreaterThanOrEqual(10);
    await expectOneTaskPerSlot(queue, schedule, expected);
  }, 60_000);
});

describe("malformed schedule objects", () => {
  it("are read and reported once per version, not on every tick", async () => {
    const storage = countRequests(new MemoryStorage());
    const warnings: string[] = [];
    const queue = new Queue({
      storage,
      logger: { info() {}, warn: (m) => warnings.push(m), error() {} },
    });
    await storage.put(queue.keys.schedule("broken"), "{not json");
    const s = new Scheduler(queue);
    await s.tick();
    storage.reset();
    await s.tick();
    await s.tick();
    expect(storage.counts.GET).toBe(0);
    expect(warnings.filter((w) => w.includes("broken")).length).toBe(1);
    await storage.put(queue.keys.schedule("broken"), "still not a schedule");
    await s.tick();
    expect(warnings.filter((w) => w.includes("broken")).length).toBe(2);
  });
});

describe("schedule writes whose answer was lost (ambiguous), settled by the document store", () => {
  /** Conditional PUTs of schedule objects commit, then lose their answer; all else passes. */
  function lossy(inner: Storage, queue: Queue): FaultyStorage {
    return new FaultyStorage(inner, {
      faultRate: 1,
      mix: Object.fromEntries(
        ERROR_FAULT_KINDS.map((k) => [k, k === "dropped-after-commit" ? 1 : 0]),
      ),
      filter: (call) =>
        call.op === "put" &&
        call.conditional &&
        call.key?.startsWith(queue.keys.schedules) === true,
    });
  }

  it("create, disable and a tick's slot record each land once and are recognised", async () => {
    const clock = new FakeClock("2026-05-01T12:00:00.250Z");
    const inner = new MemoryStorage({ now: clock.now });
    const plain = new Queue({ storage: inner, now: clock.now });
    const faulty = lossy(inner, plain);
    const s = new Scheduler(new Queue({ storage: faulty, now: clock.now }));
    const schedule = await s.create({ id: "lossy", type: "tick", cron: "* * * * * *" });
    expect(faulty.faults["dropped-after-commit"]).toBe(1);
    clock.advance(1_000);
    const tick = await s.tick();
    expect(faulty.faults["dropped-after-commit"]).toBe(2);
    expect(tick.errors).toEqual([]);
    expect(tick.fired).toHaveLength(1);
    expect(tick.fired[0]!.slot).toBe(iso(Date.parse("2026-05-01T12:00:01.000Z")));
    expect((await s.tick()).fired).toEqual([]);
    expect((await s.disable("lossy")).enabled).toBe(false);
    expect(faulty.faults["dropped-after-commit"]).toBe(3);
    await expectOneTaskPerSlot(plain, schedule, [Date.parse("2026-05-01T12:00:01.000Z")]);
  });

  it("create reads a lost answer back through a brief outage instead of failing (read-back retry)", async () => {
    const inner = new MemoryStorage();
    const plain = new Queue({ storage: inner });
    let reads = 0;
    // The first GET (the read-back) finds storage unreachable; the ones after succeed.
    const flaky = new FaultyStorage(inner, {
      faultRate: 1,
      mix: Object.fromEntries(ERROR_FAULT_KINDS.map((k) => [k, k === "dropped" ? 1 : 0])),
      filter: (call) => call.op === "get" && reads++ === 0,
    });
    const s = new Scheduler(new Queue({ storage: lossy(flaky, plain) }));
    const created = await s.create({ id: "outage", type: "tick", cron: "0 9 * * *" });
    expect(flaky.faults.dropped).toBe(1);
    expect(await new Scheduler(plain).get("outage")).toEqual(created);
  });
});
