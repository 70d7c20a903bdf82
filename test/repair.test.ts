/**
 * `queue.repair()`: missing markers put back under the exact key their task names, tasks naming
 * no marker given one through the write path, stale markers swept only past the grace, malformed
 * objects reported and untouched, a dry run that writes nothing, and a cursor to resume from.
 * The whole-index-lost scenario with workers is in `repair-index-lost.test.ts`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProtocolMismatchError, ValidationError } from "../src/errors.ts";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import { MARKER_GRACE_MS } from "../src/queue/ready-index.ts";
import type { RepairProgress, RepairResult } from "../src/queue/repair.ts";
import { FileStorage } from "../src/runtime/file/storage.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { encodeTask, type TaskRecord } from "../src/task/record.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";

/** Every key under the queue's prefix with its ETag: what a dry run must leave unchanged. */
async function snapshot(storage: Storage, prefix: string): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  let token: string | undefined;
  do {
    const page = await storage.list({
      prefix,
      ...(token === undefined ? {} : { continuationToken: token }),
    });
    for (const o of page.objects) all.set(o.key, o.etag);
    token = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (token !== undefined);
  return all;
}

async function exists(storage: Storage, key: string): Promise<boolean> {
  return storage.head(key).then(
    () => true,
    () => false,
  );
}

async function readyKeys(queue: Queue): Promise<string[]> {
  return [...(await snapshot(queue.storage, queue.keys.ready)).keys()];
}

/** Overwrite a task's stored record as a hand-written edit would (no marker bookkeeping). */
async function handEdit(queue: Queue, id: string, change: Partial<TaskRecord>): Promise<void> {
  const task = await queue.get(id);
  await queue.storage.put(queue.keys.task(id), encodeTask({ ...task, ...change }));
}

/** Delete every key under `ready/`. */
async function deleteIndex(queue: Queue): Promise<void> {
  for (const key of await readyKeys(queue)) await queue.storage.delete(key);
}

/** The counts of a result, without its action list. */
function counts(r: RepairResult) {
  const { actions: _a, actionsOmitted: _o, cursor: _c, dryRun: _d, ...rest } = r;
  return rest;
}

for (const target of targets) {
  describe(`queue.repair() on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    beforeEach(async () => {
      env = await target.create();
      queue = new Queue({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(() => env.cleanup());

    it("re-indexes tasks whose markers lie in shards the manifest no longer lists (a lost manifest)", async () => {
      await queue.setShards("job", 8);
      const submitted = await queue.submitMany(
        Array.from({ length: 16 }, (_, i) => ({ type: "job", input: i })),
      );
      const parts = submitted.map((t) => queue.keys.parseReadyMarker(queue.keys.full(t.marker!))!);
      expect(parts.some((m) => m.part > 0)).toBe(true);
      // The manifest is gone (deleted as an old message advised): a new queue makes a new one
      // with one shard per type, and workers list only shard 0.
      await env.storage.delete(queue.keys.manifest);
      const fresh = new Queue({ storage: env.storage, prefix: env.prefix });
      const result = await fresh.repair();
      // Before: nothing to repair (every task named an existing marker of its own).
      expect(result.tasksReindexed).toBe(parts.filter((m) => m.part > 0).length);
      const ran: number[] = [];
      const worker = new Worker(fresh, { minPollMs: 20, maxPollMs: 100, heartbeatSeconds: 0 }).task(
        "job",
        (input: number) => void ran.push(input),
      );
      await worker.start();
      try {
        for (const t of submitted)
          expect((await fresh.wait(t.id, { timeout: 20 })).status).toBe("completed");
      } finally {
        await worker.stop();
      }
      expect(ran.sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    });

    it("puts back a missing marker under the key its task names and gives a marker to tasks naming none or a foreign key", async () => {
      const [lost, unnamed, foreign, done] = await queue.submitMany(
        ["lost", "unnamed", "foreign", "done"].map((input) => ({ type: "job", input })),
      );
      await queue.cancel(done!.id);
      await queue.storage.delete(queue.keys.full(lost!.marker!));
      await handEdit(queue, unnamed!.id, { marker: null });
      // A hand-written task naming another object: repair must neither put nor delete that key.
      const other = `${queue.keys.prefix}keep/this.json`;
      await queue.storage.put(other, "keep me");
      await handEdit(queue, foreign!.id, { marker: "keep/this.json" });
      await queue.storage.delete(queue.keys.full(foreign!.marker!));
      await queue.storage.delete(queue.keys.full(unnamed!.marker!));

      const result = await queue.repair();
      expect(counts(result)).toMatchObject({
        tasksScanned: 4,
        markersRestored: 1,
        tasksReindexed: 2,
        markersChecked: 3,
        staleMarkersDeleted: 0,
        unreadable: 0,
      });
      expect(await exists(queue.storage, queue.keys.full(lost!.marker!))).toBe(true);
      for (const id of [unnamed!.id, foreign!.id]) {
        const task = await queue.get(id);
        const parsed = queue.keys.parseReadyMarker(queue.keys.full(task.marker!));
        expect(parsed, id).toMatchObject({ id, type: "job" });
        expect(await exists(queue.storage, queue.keys.full(task.marker!)), id).toBe(true);
      }
      expect((await queue.storage.get(other)).body).toEqual(new TextEncoder().encode("keep me"));
      expect((await queue.get(done!.id)).marker).toBeNull();
      expect(await readyKeys(queue)).toHaveLength(3);
      // A second run finds nothing to do.
      expect(counts(await queue.repair())).toMatchObject({
        markersRestored: 0,
        tasksReindexed: 0,
        staleMarkersDeleted: 0,
      });
    });

    it("cancelling a hand-written task whose marker names another object leaves that object alone (it was deleted as the old marker)", async () => {
      const task = await queue.submit("job", null);
      const other = `${queue.keys.prefix}keep/this.json`;
      await queue.storage.put(other, "keep me");
      await handEdit(queue, task.id, { marker: "keep/this.json" });
      await queue.cancel(task.id);
      expect(await exists(queue.storage, other)).toBe(true);
    });

    it("reports malformed task objects and leaves them untouched", async () => {
      await queue.submit("job", null);
      const notJson = queue.keys.task("Bad-1");
      const wrongShard = `${queue.keys.tasks}0/zzz.json`;
      await queue.storage.put(notJson, "not json");
      await queue.storage.put(wrongShard, "{}");
      const before = await snapshot(queue.storage, queue.keys.prefix);
      const result = await queue.repair();
      expect(result.unreadable).toBe(2);
      expect(result.actions.filter((a) => a.action === "unreadable").map((a) => a.key)).toEqual(
        expect.arrayContaining([notJson, wrongShard]),
      );
      expect(await snapshot(queue.storage, queue.keys.prefix)).toEqual(before);
    });

    it("a dry run reports what it would do and writes nothing", async () => {
      const [lost, unnamed] = await queue.submitMany([
        { type: "job", input: 1 },
        { type: "job", input: 2 },
      ]);
      await queue.storage.delete(queue.keys.full(lost!.marker!));
      await handEdit(queue, unnamed!.id, { marker: null });
      await queue.storage.delete(queue.keys.full(unnamed!.marker!));
      const before = await snapshot(queue.storage, queue.keys.prefix);
      const result = await queue.repair({ dryRun: true });
      expect(result.dryRun).toBe(true);
      expect(counts(result)).toMatchObject({ markersRestored: 1, tasksReindexed: 1 });
      expect(await snapshot(queue.storage, queue.keys.prefix)).toEqual(before);
    });

    it("stops at the limit with a cursor, and runs resumed from it add up to one whole run", async () => {
      const tasks = await queue.submitMany(
        Array.from({ length: 7 }, (_, i) => ({ type: "job", input: i })),
      );
      await deleteIndex(queue);
      const progress: RepairProgress[] = [];
      let result = await queue.repair({
        limit: 3,
        pageSize: 2,
        onProgress: (p) => progress.push(p),
      });
      expect(result.cursor?.startsWith(queue.keys.tasks)).toBe(true);
      expect(result.tasksScanned).toBe(3);
      expect(progress.map((p) => p.tasksScanned)).toEqual([2, 3]);
      const total = counts(result);
      const cursors = [result.cursor];
      while (result.cursor !== undefined) {
        result = await queue.repair({ startAfter: result.cursor, limit: 3, pageSize: 2 });
        cursors.push(result.cursor);
        for (const [k, v] of Object.entries(counts(result))) total[k as keyof typeof total] += v;
      }
      // Task objects, then markers: the cursor moves from tasks/ to ready/.
      expect(cursors.some((c) => c?.startsWith(queue.keys.ready))).toBe(true);
      expect(total).toMatchObject({ tasksScanned: 7, markersRestored: 7, markersChecked: 7 });
      for (const t of tasks)
        expect(await exists(queue.storage, queue.keys.full(t.marker!))).toBe(true);
      expect(await readyKeys(queue)).toHaveLength(7);
    });

    it("leaves a stale marker younger than the grace and reports it", async () => {
      const task = await queue.submit("job", null);
      const extra = internals(queue).newMarker(task, queue.now());
      await queue.storage.put(queue.keys.full(extra), new Uint8Array(0));
      const result = await queue.repair();
      expect(counts(result)).toMatchObject({ youngMarkersLeft: 1, staleMarkersDeleted: 0 });
      expect(await exists(queue.storage, queue.keys.full(extra))).toBe(true);
    });

    it("refuses a queue of another protocol before touching anything, dry run or not", async () => {
      const task = await queue.submit("job", null);
      await queue.storage.delete(queue.keys.full(task.marker!));
      const manifest = JSON.parse(
        new TextDecoder().decode((await queue.storage.get(queue.keys.manifest)).body),
      );
      await queue.storage.put(queue.keys.manifest, JSON.stringify({ ...manifest, protocol: 3 }));
      const before = await snapshot(queue.storage, queue.keys.prefix);
      // A fresh client: the one above has the manifest cached.
      const other = new Queue({ storage: env.storage, prefix: env.prefix });
      for (const dryRun of [true, false])
        await expect(other.repair({ dryRun })).rejects.toThrow(ProtocolMismatchError);
      expect(await snapshot(queue.storage, queue.keys.prefix)).toEqual(before);
    });

    it("rejects a cursor that is not one", async () => {
      await expect(queue.repair({ startAfter: "elsewhere/x" })).rejects.toThrow(ValidationError);
      await expect(queue.repair({ limit: 0 })).rejects.toThrow(/limit/);
    });
  });
}

/** Storages whose clock a test can move: memory, and a file store in a temporary directory. */
const clocked: { name: string; create(now: () => number): { storage: Storage; done(): void } }[] = [
  { name: "memory", create: (now) => ({ storage: new MemoryStorage({ now }), done() {} }) },
  {
    name: "file",
    create(now) {
      const root = mkdtempSync(join(tmpdir(), "oq-repair-"));
      return {
        storage: new FileStorage({ root, now }),
        done: () => rmSync(root, { recursive: true, force: true }),
      };
    },
  },
];

for (const kind of clocked) {
  describe(`queue.repair() past the grace on ${kind.name} (a clock the test moves)`, () => {
    const clock = { offset: 0, now: () => Date.now() + clock.offset };
    let made: { storage: Storage; done(): void };
    let queue: Queue;
    beforeEach(() => {
      clock.offset = 0;
      made = kind.create(clock.now);
      queue = new Queue({ storage: made.storage, now: clock.now });
    });
    afterEach(() => made.done());

    it("deletes markers no task names, and keys under ready/ that are not markers, only once older than the grace", async () => {
      const [named, finished] = await queue.submitMany([
        { type: "job", input: 1 },
        { type: "job", input: 2 },
      ]);
      const extra = internals(queue).newMarker(named!, queue.now());
      await queue.storage.put(queue.keys.full(extra), new Uint8Array(0));
      const orphan = internals(queue).newMarker({ ...named!, id: "f00-gone" }, queue.now());
      await queue.storage.put(queue.keys.full(orphan), new Uint8Array(0));
      // A terminal task that still names its marker (finished by an older oq).
      await handEdit(queue, finished!.id, { status: "completed" });
      // Keys under ready/ that are not markers: one directly under it, one inside a partition.
      const junk = [`${queue.keys.ready}notes.txt`, `${queue.keys.ready}job/0/x/y/z`];
      for (const key of junk) await queue.storage.put(key, "junk");

      clock.offset = MARKER_GRACE_MS - 5000;
      const early = await queue.repair();
      expect(counts(early)).toMatchObject({ youngMarkersLeft: 5, staleMarkersDeleted: 0 });

      clock.offset = MARKER_GRACE_MS + 1000;
      const late = await queue.repair();
      expect(counts(late)).toMatchObject({ youngMarkersLeft: 0, staleMarkersDeleted: 5 });
      expect(await readyKeys(queue)).toEqual([queue.keys.full(named!.marker!)]);
    });

    it("keeps the only marker of a task written under the wrong shard, and says so", async () => {
      const task = await queue.submit("job", null, { idempotencyKey: "k" });
      const misplaced = `${queue.keys.tasks}_/${task.id}.json`;
      const body = (await queue.storage.get(queue.keys.task(task.id))).body;
      await queue.storage.put(misplaced, body);
      await queue.storage.delete(queue.keys.task(task.id));
      clock.offset = MARKER_GRACE_MS + 1000;
      const result = await queue.repair();
      expect(counts(result)).toMatchObject({ strandedMarkersKept: 1, staleMarkersDeleted: 0 });
      expect(result.actions.find((a) => a.action === "stranded-marker-kept")?.message).toContain(
        misplaced,
      );
      expect(await exists(queue.storage, queue.keys.full(task.marker!))).toBe(true);
    });
  });
}

describe("Worker logScan option", () => {
  it("is checked like every other worker option", () => {
    const queue = new Queue({ storage: new MemoryStorage() });
    expect(() => new Worker(queue, { logScan: { pageSize: 0 } })).toThrow(/logScan.pageSize/);
    expect(() => new Worker(queue, { logScan: { intervalMs: 1 } })).toThrow(/logScan.intervalMs/);
  });
});
