/**
 * `queue.list()` through the indexes: pending and running tasks from the ready index, finished
 * ones from the finished journal, oldest first, pages that resume exactly from the cursor, stale
 * journal entries (a replayed failed task) left out, and a cost that never includes a LIST of
 * `tasks/` and does not grow with finished tasks of other types or before `since`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ValidationError } from "../src/errors.ts";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import type { ListTasksOptions } from "../src/queue/types.ts";
import { type CountedStorage, countRequests } from "../src/storage/count.ts";
import type { TaskRecord } from "../src/task/record.ts";
import { claimTask, renewLease } from "../src/task/transitions.ts";
import { runAll } from "./helpers/run.ts";
import { keysUnder, type TargetInstance, targets } from "./helpers/targets.ts";
import { pause } from "./helpers/wait.ts";

const ids = (tasks: readonly TaskRecord[]) => tasks.map((t) => t.id);
/** Ids by finish time; ties (the same millisecond) as the listing breaks them. */
const byFinish = (tasks: readonly TaskRecord[]) =>
  ids(
    [...tasks].sort(
      (a, b) =>
        Date.parse(a.finishedAt!) - Date.parse(b.finishedAt!) ||
        `${a.type}/${a.status}/${a.id}`.localeCompare(`${b.type}/${b.status}/${b.id}`),
    ),
  );

/** Every page of a listing with `limit`, concatenated, and the number of pages. */
async function allPages(queue: Queue, options: ListTasksOptions, limit: number) {
  const tasks: TaskRecord[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await queue.list({
      ...options,
      limit,
      ...(cursor === undefined ? {} : { cursor }),
    });
    expect(page.tasks.length).toBeLessThanOrEqual(limit);
    tasks.push(...page.tasks);
    cursor = page.cursor;
    pages++;
  } while (cursor !== undefined);
  return { tasks, pages };
}

for (const target of targets) {
  describe(`listing through the indexes on ${target.name}`, () => {
    let env: TargetInstance;
    let counted: CountedStorage;
    /** The prefixes of every LIST since the last reset. */
    const listed: string[] = [];
    let queue: Queue;
    const t: Record<string, TaskRecord> = {};

    beforeAll(async () => {
      env = await target.create();
      counted = countRequests(env.storage);
      const list = counted.list;
      counted.list = (options) => {
        listed.push(options?.prefix ?? "");
        return list(options);
      };
      queue = new Queue({ storage: counted, prefix: env.prefix });
      const names = ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"];
      const failing = new Set(["a3", "a4", "b2"]);
      const submitted = await queue.submitMany(
        names.map((n) => ({ type: n[0]!, input: failing.has(n) ? "fail" : n })),
      );
      await runAll(queue, ["a", "b"]);
      for (const [i, n] of names.entries()) t[n] = await queue.get(submitted[i]!.id);
      await pause(1100);
      t.ac = await queue.cancel((await queue.submit("a", "ac", { delay: 3600 })).id);
      t.bc = await queue.cancel((await queue.submit("b", "bc")).id);
      t.ap1 = await queue.submit("a", "ap1");
      t.ap2 = await queue.submit("a", "ap2");
      t.bd = await queue.submit("b", "bd", { delay: 3600 });
      // Two running tasks of a worker frozen mid-run: one just claimed (its marker is still the
      // pending one), one whose lease was renewed (its marker moved to a `.lease` marker).
      const inner = internals(queue);
      const claim = (task: TaskRecord) =>
        claimTask(task, { workerId: "w", token: "k", leaseMs: 3_600_000, now: queue.now() });
      const br = await queue.submit("b", "br");
      t.br = (await inner.update(br.id, claim)).task;
      const bl = await queue.submit("b", "bl");
      await inner.update(bl.id, claim);
      t.bl = (await inner.update(bl.id, (x) => renewLease(x, "k", 3_600_000, queue.now()))).task;
      expect(queue.keys.parseReadyMarker(queue.keys.full(t.bl.marker!))?.lease).toBe(true);
    }, 120_000);

    afterAll(() => env?.cleanup());

    it("lists each status and type exactly, oldest first", async () => {
      const list = async (options: ListTasksOptions) => ids((await queue.list(options)).tasks);
      const pick = (...names: string[]) => names.map((n) => t[n]!);
      expect(await list({ status: "completed", type: "a" })).toEqual(
        byFinish(pick("a0", "a1", "a2")),
      );
      expect(await list({ status: "completed", type: "b" })).toEqual(byFinish(pick("b0", "b1")));
      expect(await list({ status: "failed", type: "a" })).toEqual(byFinish(pick("a3", "a4")));
      expect(await list({ status: "failed" })).toEqual(byFinish(pick("a3", "a4", "b2")));
      expect(await list({ status: "cancelled" })).toEqual(byFinish(pick("ac", "bc")));
      expect(await list({ status: "completed" })).toEqual(
        byFinish(pick("a0", "a1", "a2", "b0", "b1")),
      );
      expect(await list({ status: ["completed", "failed"], type: "b" })).toEqual(
        byFinish(pick("b0", "b1", "b2")),
      );
      expect(await list({ status: "expired" })).toEqual([]);
      expect((await list({ status: "pending", type: "a" })).sort()).toEqual(
        ids(pick("ap1", "ap2")).sort(),
      );
      // The delayed task is due last.
      expect((await list({ status: "pending" })).at(-1)).toBe(t.bd!.id);
      expect(new Set(await list({ status: "pending" }))).toEqual(
        new Set(ids(pick("ap1", "ap2", "bd"))),
      );
      expect(new Set(await list({ status: "running" }))).toEqual(new Set(ids(pick("br", "bl"))));
      expect(await list({ status: "running", type: "a" })).toEqual([]);
      const everything = await list({ limit: 1000 });
      expect(everything).toHaveLength(Object.keys(t).length);
      expect(new Set(everything)).toEqual(new Set(ids(Object.values(t))));
      const ofB = await list({ type: "b" });
      expect(new Set(ofB)).toEqual(new Set(ids(pick("b0", "b1", "b2", "bc", "bd", "br", "bl"))));
    });

    it("pages with the cursor add up to the whole listing, in the same order", async () => {
      const filters: ListTasksOptions[] = [
        {},
        { status: "completed" },
        { status: ["pending", "running"] },
        { type: "b" },
        { status: ["failed", "cancelled"] },
      ];
      for (const filter of filters) {
        const whole = ids((await queue.list({ ...filter, limit: 1000 })).tasks);
        for (const limit of [1, 2, 3]) {
          const { tasks, pages } = await allPages(queue, filter, limit);
          expect(ids(tasks), `${JSON.stringify(filter)} by ${limit}`).toEqual(whole);
          expect(pages).toBeGreaterThanOrEqual(Math.ceil(whole.length / limit));
        }
      }
      await expect(queue.list({ cursor: "not a cursor" })).rejects.toBeInstanceOf(ValidationError);
    });

    it("never lists tasks/, and reads only the journals and tasks it lists", async () => {
      const journalsOf = async (type: string, status: string) =>
        (await keysUnder(env.storage, `${queue.keys.done}${type}/${status}/`)).length;
      const cost = async (options: ListTasksOptions) => {
        counted.reset();
        listed.length = 0;
        const page = await queue.list(options);
        expect(listed.filter((p) => p.startsWith(queue.keys.tasks))).toEqual([]);
        return { tasks: page.tasks.length, GET: counted.counts.GET, LIST: counted.counts.LIST };
      };
      const deadLetters = { status: "failed", type: "a" } as const;
      const before = await cost(deadLetters);
      expect(before).toEqual({ tasks: 2, GET: (await journalsOf("a", "failed")) + 2, LIST: 1 });
      const pending = await cost({ status: "pending", type: "a" });
      // The type's partitions (a delimiter LIST), one partition, and the two tasks.
      expect(pending).toEqual({ tasks: 2, GET: 2, LIST: 2 });

      // Many more finished tasks of another type, all after `since`. Journal keys carry their
      // latest finish time rounded up to the second: `since` is taken a second after type a's.
      await pause(1100);
      const since = queue.now();
      await pause(1100);
      await queue.submitMany(Array.from({ length: 30 }, (_, i) => ({ type: "c", input: i })));
      await runAll(queue, ["c"]);
      expect(await cost(deadLetters)).toEqual(before);
      // Type a's completed tasks all finished before `since`: not one journal of them is read.
      expect(await cost({ status: "completed", type: "a", since })).toEqual({
        tasks: 0,
        GET: 0,
        LIST: 1,
      });
      const recent = await cost({ status: "completed", since, limit: 1000 });
      expect(recent.tasks).toBe(30);
      // The types with journals, a journal listing per type, then only type c's journals and tasks.
      expect(recent.LIST).toBe(1 + 3);
      expect(recent.GET).toBe((await journalsOf("c", "completed")) + 30);
    });

    it("does not list a failed task replayed since as failed (a stale journal entry)", async () => {
      await queue.replay(t.a3!.id);
      expect(ids((await queue.list({ status: "failed", type: "a" })).tasks)).toEqual([t.a4!.id]);
      const pending = ids((await queue.list({ status: "pending", type: "a" })).tasks);
      expect(pending).toContain(t.a3!.id);
      const failed: string[] = [];
      for await (const task of queue.listAll({ status: "failed" })) failed.push(task.id);
      expect(failed.sort()).toEqual([t.a4!.id, t.b2!.id].sort());
    });
  });
}
