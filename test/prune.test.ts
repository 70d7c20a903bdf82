/**
 * Retention and pruning: the finished journal written as tasks end, `queue.prune()` deleting
 * finished tasks past their retention (and nothing else), replayed tasks left alone, replays
 * refused near the end of retention, the scan backstop, retention settings in the manifest, and
 * the monitor pruning on its own.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidStateError, MalformedObjectError, ValidationError } from "../src/errors.ts";
import { internals } from "../src/queue/internals.ts";
import { PruneRun } from "../src/queue/prune.ts";
import { Queue } from "../src/queue/queue.ts";
import { DEFAULT_RETENTION } from "../src/queue/retention.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { Worker } from "../src/worker/worker.ts";
import { runAll } from "./helpers/run.ts";
import { keysUnder, type TargetInstance, targets } from "./helpers/targets.ts";
import { fast as fastPolls, pause, until } from "./helpers/wait.ts";

const fast = { ...fastPolls, skipDoctor: true };

/**
 * Run every `job` task to an end (`fail` ones fail permanently, the others complete), then wait
 * a second: finish times have second resolution in journal keys, so a retention of 0 covers a
 * task from the next second on.
 */
async function runJobs(queue: Queue, fail: ReadonlySet<string> = new Set()): Promise<void> {
  await runAll(queue, ["job"], (_input, ctx) => fail.has(ctx.task.id));
  await pause(1100);
}

for (const target of targets) {
  describe(`retention and prune on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    beforeEach(async () => {
      env = await target.create();
      queue = new Queue({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(() => env.cleanup());

    /**
     * Run a worker that only monitors (its handler's type has no tasks, so nothing but the
     * monitor ends or prunes anything) until `left` task objects remain.
     */
    async function monitorUntilTasksLeft(left: number): Promise<void> {
      const monitor = new Worker(queue, { ...fast, monitorRoundSeconds: 1 }).task(
        "other",
        () => {},
      );
      monitor.start();
      try {
        await until(
          "the unjournaled tasks pruned",
          async () => (await keysUnder(env.storage, queue.keys.tasks)).length === left,
        );
      } finally {
        await monitor.stop();
      }
    }

    it("journals finished tasks and prunes only those past retention, leaving live ones", async () => {
      const tasks = await queue.submitMany(
        Array.from({ length: 6 }, (_, i) => ({ type: "job", input: i })),
      );
      const failing = new Set([tasks[0]!.id]);
      await runJobs(queue, failing);
      const live = await queue.submit("job", "later", { delay: 3600 });
      const cancelled = await queue.submit("other", null);
      await queue.cancel(cancelled.id);
      await pause(1100);

      const journals = await keysUnder(env.storage, queue.keys.done);
      expect(journals.map((k) => queue.keys.parseJournal(k)?.status).sort()).toEqual([
        "cancelled",
        "completed",
        "failed",
      ]);
      // Nothing is past the default retention yet.
      expect(await queue.prune()).toMatchObject({ deleted: 0, journals: 0, more: false });

      const dry = await queue.prune({ retention: { completed: 0 }, dryRun: true });
      expect(dry).toMatchObject({ deleted: 5, journals: 1 });
      expect(await keysUnder(env.storage, queue.keys.tasks)).toHaveLength(8);

      const pruned = await queue.prune({ retention: { completed: 0 } });
      expect(pruned).toMatchObject({ deleted: 5, journals: 1, skipped: 0, more: false });
      const left = await keysUnder(env.storage, queue.keys.tasks);
      expect(left.sort()).toEqual(
        [tasks[0]!.id, live.id, cancelled.id].map((id) => queue.keys.task(id)).sort(),
      );
      expect((await queue.get(live.id)).status).toBe("pending");
      expect(await keysUnder(env.storage, queue.keys.journals("job", "completed"))).toEqual([]);

      // Every status at 0: the failed and cancelled ones go too, the pending one stays.
      expect(
        await queue.prune({ retention: { failed: 0, cancelled: 0, completed: 0 } }),
      ).toMatchObject({
        deleted: 2,
        journals: 2,
      });
      expect(await keysUnder(env.storage, queue.keys.tasks)).toEqual([queue.keys.task(live.id)]);
      expect(await keysUnder(env.storage, queue.keys.done)).toEqual([]);
    });

    it("leaves a failed task that was replayed since its journal entry", async () => {
      const task = await queue.submit("job", "x");
      await runJobs(queue, new Set([task.id]));
      expect((await queue.get(task.id)).status).toBe("failed");
      await queue.replay(task.id);
      const result = await queue.prune({ retention: { failed: 0 } });
      expect(result).toMatchObject({ deleted: 0, skipped: 1, journals: 1 });
      expect((await queue.get(task.id)).status).toBe("pending");
      // It completes this time and is journaled as completed.
      await runJobs(queue);
      expect(await queue.prune({ retention: { completed: 0 } })).toMatchObject({ deleted: 1 });
      expect(await queue.read(task.id)).toBeUndefined();
    });

    it("refuses to replay a task whose retention is about to end, and says what to do", async () => {
      const task = await queue.submit("job", "x");
      await runJobs(queue, new Set([task.id]));
      await queue.setRetention({ failed: 0 });
      const error = await queue.replay(task.id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidStateError);
      expect((error as Error).message).toMatch(
        /retention ends at once.*Raise the failed retention/,
      );
      // Raised: held back while a prune that read the earlier setting may still be deleting it
      // (test/replay-retention.test.ts lets the hold pass).
      await queue.setRetention({ failed: "30d" });
      const held = await queue.replay(task.id).catch((e: unknown) => e);
      expect(held).toBeInstanceOf(InvalidStateError);
      expect((held as Error).message).toMatch(/raised less than 2 minutes ago.*again after/);
      expect((await queue.get(task.id)).status).toBe("failed");
    });

    it("a prune working from settings read before a raise leaves what the new ones keep", async () => {
      await queue.setRetention({ failed: 0 });
      const [kept, other] = await queue.submitMany([
        { type: "job", input: "kept" },
        { type: "else", input: "gone" },
      ]);
      await runAll(queue, ["job", "else"], () => true);
      await pause(1100);
      // A monitor's copy of the settings, read before an operator raised the job retention.
      const q = internals(queue);
      const stale = (await q.manifest.load()).retention ?? {};
      await new Queue({ storage: env.storage, prefix: env.prefix }).setRetention(
        { failed: "30d" },
        { type: "job" },
      );
      const journals = await keysUnder(env.storage, q.keys.journals("job", "failed"));
      expect(journals).toHaveLength(1);
      const run = new PruneRun(q, stale);
      for (const type of ["job", "else"]) await run.partition(type, "failed", 10);
      expect(run.result()).toMatchObject({ deleted: 1, journals: 1 });
      expect((await queue.get(kept!.id)).status).toBe("failed");
      expect(await queue.read(other!.id)).toBeUndefined();
      // The journal naming the kept task stays, for the prune past its new retention.
      expect(await keysUnder(env.storage, q.keys.journals("job", "failed"))).toEqual(journals);
    });

    it("limit stops early with more, and a second run finishes", async () => {
      await queue.submitMany(Array.from({ length: 5 }, (_, i) => ({ type: "job", input: i })));
      await runJobs(queue);
      const first = await queue.prune({ retention: { completed: 0 }, limit: 3 });
      expect(first).toMatchObject({ deleted: 3, more: true, journals: 0 });
      const second = await queue.prune({ retention: { completed: 0 } });
      expect(second.more).toBe(false);
      expect(await keysUnder(env.storage, queue.keys.tasks)).toEqual([]);
      expect(await keysUnder(env.storage, queue.keys.done)).toEqual([]);
    });

    it("the scan finds finished tasks the journal does not name", async () => {
      await queue.submitMany(Array.from({ length: 3 }, (_, i) => ({ type: "job", input: i })));
      await runJobs(queue);
      const live = await queue.submit("job", "live");
      // As if the worker was killed before its journal flush.
      for (const key of await keysUnder(env.storage, queue.keys.done))
        await env.storage.delete(key);
      expect(await queue.prune({ retention: { completed: 0 } })).toMatchObject({ deleted: 0 });
      const scanned = await queue.prune({ retention: { completed: 0 }, scan: true });
      expect(scanned).toMatchObject({ deleted: 3, scanned: 4 });
      expect(await keysUnder(env.storage, queue.keys.tasks)).toEqual([queue.keys.task(live.id)]);
    });

    it("workers prune on their own in the monitor's rounds", async () => {
      await queue.setRetention({ completed: 0 });
      await queue.submitMany(Array.from({ length: 4 }, (_, i) => ({ type: "job", input: i })));
      const worker = new Worker(queue, { ...fast, monitorRoundSeconds: 1 }).task("job", (x) => x);
      worker.start();
      try {
        await until(
          "the completed tasks pruned",
          async () => (await keysUnder(env.storage, queue.keys.tasks)).length === 0,
        );
        await until(
          "their journals pruned",
          async () => (await keysUnder(env.storage, queue.keys.done)).length === 0,
        );
      } finally {
        await worker.stop();
      }
    });

    it("workers prune on their own the finished tasks no journal names (a killed worker's)", async () => {
      await queue.setRetention({ completed: 0, failed: 0 });
      const done = await queue.submitMany(
        Array.from({ length: 3 }, (_, i) => ({ type: "job", input: i })),
      );
      await runJobs(queue, new Set([done[0]!.id]));
      // As if the worker was killed before its journal flush.
      for (const key of await keysUnder(env.storage, queue.keys.done))
        await env.storage.delete(key);
      const later = await queue.submit("job", "later", { delay: 3600 });
      await monitorUntilTasksLeft(1);
      expect(await keysUnder(env.storage, queue.keys.tasks)).toEqual([queue.keys.task(later.id)]);
      expect((await queue.get(later.id)).status).toBe("pending");
    });

    it("the monitor's pruning keeps at most 4 reads in flight (the work keeps its sockets)", async () => {
      await queue.setRetention({ failed: 0 });
      const done = await queue.submitMany(
        Array.from({ length: 24 }, (_, i) => ({ type: "job", input: i })),
      );
      await runJobs(queue, new Set(done.map((t) => t.id)));
      for (const key of await keysUnder(env.storage, queue.keys.done))
        await env.storage.delete(key);
      let inFlight = 0;
      let most = 0;
      const get = env.storage.get.bind(env.storage);
      env.storage.get = async (key, options) => {
        inFlight++;
        most = Math.max(most, inFlight);
        try {
          await pause(20);
          return await get(key, options);
        } finally {
          inFlight--;
        }
      };
      try {
        await monitorUntilTasksLeft(0);
      } finally {
        env.storage.get = get;
      }
      expect(most).toBeGreaterThan(1);
      expect(most).toBeLessThanOrEqual(4);
    });

    it("a monitor with every retention forever does not walk tasks/", async () => {
      const forever = Number.POSITIVE_INFINITY;
      await queue.setRetention({
        completed: forever,
        failed: forever,
        cancelled: forever,
        expired: forever,
      });
      const listed: string[] = [];
      const list = env.storage.list.bind(env.storage);
      env.storage.list = (options) => {
        listed.push(options?.prefix ?? "");
        return list(options);
      };
      const monitor = new Worker(queue, { ...fast, monitorRoundSeconds: 1 }).task(
        "other",
        () => {},
      );
      monitor.start();
      try {
        await pause(2500);
      } finally {
        await monitor.stop();
        env.storage.list = list;
      }
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.filter((prefix) => prefix === queue.keys.tasks)).toEqual([]);
    });

    /** The key of a journal written by hand in `done/{type}/{status}/`, at `time/hex.json`. */
    const handJournal = (type: string, status: string, time: string) =>
      `${queue.keys.journals(type, status as never)}${time}/abcd.json`;
    const putJournal = (key: string, type: string, status: string, entries: unknown[]) =>
      env.storage.put(key, JSON.stringify({ oq: "journal", type, status, entries }));
    const OLD = "2000-01-01T00:00:00.000Z";

    it("a completed journal naming live tasks deletes none of them, nor their payloads: the record decides", async () => {
      // Pending (with a large input stored apart), pending of another type, running.
      const pending = await queue.submit("job", { big: "x".repeat(300 * 1024) }, { delay: 3600 });
      const video = await queue.submit("video", 1);
      const slow = await queue.submit("slow", 2);
      let release = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const worker = new Worker(queue, { ...fast, monitor: false }).task("slow", () => gate);
      worker.start();
      try {
        await until("the slow task running", async () => {
          return (await queue.get(slow.id)).status === "running";
        });
        const key = handJournal("job", "completed", "20000101T000000Z");
        await putJournal(key, "job", "completed", [
          { id: pending.id, at: OLD, payloads: [pending.inputRef!.key] },
          { id: video.id, at: OLD },
          { id: slow.id, at: OLD },
        ]);
        const payloads = await keysUnder(env.storage, queue.keys.payloads);
        expect(payloads).toHaveLength(1);

        // The default retention: the journal's time is long past it.
        const result = await queue.prune();
        expect(result).toMatchObject({ deleted: 0, skipped: 3, journals: 1 });
        expect((await queue.get(pending.id)).status).toBe("pending");
        expect((await queue.get(video.id)).status).toBe("pending");
        expect((await queue.get(slow.id)).status).toBe("running");
        expect(await keysUnder(env.storage, queue.keys.payloads)).toEqual(payloads);
        // Every entry was read and left: nothing in the journal is left to do.
        expect(await keysUnder(env.storage, queue.keys.done)).toEqual([]);
      } finally {
        release();
        await worker.stop();
      }
      expect((await queue.get(slow.id)).status).toBe("completed");
    });

    it("a worker's own pruning leaves the live tasks a completed journal names", async () => {
      const pending = await queue.submit("job", 1, { delay: 3600 });
      const video = await queue.submit("video", 2, { delay: 3600 });
      const key = handJournal("job", "completed", "20000101T000000Z");
      await putJournal(key, "job", "completed", [
        { id: pending.id, at: OLD },
        { id: video.id, at: OLD },
      ]);
      const monitor = new Worker(queue, { ...fast, monitorRoundSeconds: 1 }).task("job", () => 1);
      monitor.start();
      try {
        await until(
          "the journal handled",
          async () => (await keysUnder(env.storage, queue.keys.done)).length === 0,
        );
      } finally {
        await monitor.stop();
      }
      expect((await queue.get(pending.id)).status).toBe("pending");
      expect((await queue.get(video.id)).status).toBe("pending");
    });

    it("a journal entry whose id is no task id is skipped with a typed warning naming the journal, which stays; the rest is pruned", async () => {
      const warnings: string[] = [];
      const logged = new Queue({
        storage: env.storage,
        prefix: env.prefix,
        logger: { info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
      });
      const [good, other] = await queue.submitMany([
        { type: "job", input: 1 },
        { type: "job", input: 2 },
      ]);
      await runJobs(queue);
      // Only the journals below name them.
      for (const k of await keysUnder(env.storage, queue.keys.done)) await env.storage.delete(k);
      const at = async (id: string) => (await queue.get(id)).finishedAt;
      const bad = handJournal("job", "completed", "20000101T000000Z");
      await putJournal(bad, "job", "completed", [
        { id: "", at: OLD },
        { id: "x/../../queue", at: OLD },
        { id: "é", at: OLD },
        { id: good!.id, at: await at(good!.id) },
      ]);
      const fine = handJournal("job", "completed", "20000102T000000Z");
      await putJournal(fine, "job", "completed", [{ id: other!.id, at: await at(other!.id) }]);

      const result = await logged.prune({ retention: { completed: 0 } });
      expect(result).toMatchObject({ deleted: 2, journals: 1, more: false });
      expect(await queue.read(good!.id)).toBeUndefined();
      expect(await queue.read(other!.id)).toBeUndefined();
      expect(await keysUnder(env.storage, queue.keys.done)).toEqual([bad]);
      expect(await env.storage.head(queue.keys.manifest)).toBeDefined();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(bad);
      expect(warnings[0]).toMatch(/left for an operator/);

      // Again: no error, no second warning, the journal still there for an operator.
      expect(await logged.prune({ retention: { completed: 0 } })).toMatchObject({ deleted: 0 });
      expect(warnings).toHaveLength(1);
      expect(await keysUnder(env.storage, queue.keys.done)).toEqual([bad]);
      // Listing finished tasks skips those entries too, with a warning, and does not fail.
      expect((await logged.list({ type: "job", status: "completed" })).tasks).toEqual([]);
      expect(warnings.at(-1)).toMatch(/those entries are skipped/);

      // The warning comes from a typed error: code MALFORMED, the journal's key.
      const read = await internals(logged).journal.read(bad);
      expect(read.entries.map((e) => e.id)).toEqual([good!.id]);
      expect(read.invalid).toBeInstanceOf(MalformedObjectError);
      expect(read.invalid).toMatchObject({ code: "MALFORMED", key: bad });
      expect(read.invalid!.message).toMatch(/3 entries whose id is not a task id/);
    });

    it("stores retention in the manifest, per type over the queue's, and checks it", async () => {
      await queue.setRetention({ completed: "1d", failed: Number.POSITIVE_INFINITY });
      const manifest = await queue.setRetention({ completed: "2h" }, { type: "video" });
      expect(manifest.retention).toEqual({
        default: { completed: 86_400, failed: null },
        types: { video: { completed: 7200 } },
      });
      const dropped = await queue.setRetention({ completed: null }, { type: "video" });
      expect(dropped.retention?.types?.video).toEqual({});
      for (const bad of [
        { completed: -1 },
        { completed: "soon" },
        { finished: "1d" },
        { failed: Number.NaN },
      ]) {
        await expect(queue.setRetention(bad as never)).rejects.toBeInstanceOf(ValidationError);
      }
      await expect(queue.prune({ status: "running" as never })).rejects.toBeInstanceOf(
        ValidationError,
      );
    });
  });
}

describe("the finished journal", () => {
  it("keeps entries whose journal could not be written and writes them at the next flush", async () => {
    const storage = new MemoryStorage();
    let failing = true;
    const flaky = new Proxy(storage, {
      get(target, prop, receiver) {
        if (prop === "put")
          return (key: string, ...rest: unknown[]) => {
            if (failing && key.startsWith("done/")) return Promise.reject(new Error("boom"));
            return (target.put as (...a: unknown[]) => Promise<unknown>).call(target, key, ...rest);
          };
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as Storage;
    const queue = new Queue({ storage: flaky });
    const task = await queue.submit("job", null);
    await queue.cancel(task.id);
    expect(internals(queue).journal.buffered).toBe(1);
    failing = false;
    await internals(queue).flush();
    expect(internals(queue).journal.buffered).toBe(0);
    const keys = await keysUnder(storage, "done/");
    expect(keys).toHaveLength(1);
    expect((await internals(queue).journal.read(keys[0]!)).entries).toEqual([
      { id: task.id, at: (await queue.get(task.id)).finishedAt },
    ]);
  });

  it("defaults: completed 7 days, the others 30", () => {
    expect(DEFAULT_RETENTION).toEqual({
      completed: 604_800,
      failed: 2_592_000,
      cancelled: 2_592_000,
      expired: 2_592_000,
    });
  });

  it("prunes by server time: a task finished 7 days ago goes, one finished 6 days ago stays", async () => {
    let now = Date.parse("2026-11-01T00:00:00Z");
    const storage = new MemoryStorage({ now: () => now });
    const queue = new Queue({ storage, now: () => now });
    const [old, recent] = await queue.submitMany([
      { type: "job", input: 1 },
      { type: "job", input: 2 },
    ]);
    await queue.cancel(old!.id);
    now += 86_400_000;
    await queue.cancel(recent!.id);
    now += 29 * 86_400_000 + 1000;
    expect(await queue.prune()).toMatchObject({ deleted: 1, journals: 1 });
    expect(await queue.read(old!.id)).toBeUndefined();
    expect((await queue.get(recent!.id)).status).toBe("cancelled");
  });
});
