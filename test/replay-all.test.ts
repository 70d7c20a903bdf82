/**
 * `replayAll` (`oq replay --all-failed`, the dashboard's "replay all failed") right after the
 * failures, run by a process whose clock knows the server's time only loosely: a new CLI process
 * has one `Date` header, of one-second resolution, where the worker that stamped the failures had
 * many. The run takes the tasks that finished before it began by the upper bound of that time.
 */
import { describe, expect, it } from "vitest";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import { replayAll } from "../src/queue/replay-all.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { runAll } from "./helpers/run.ts";
import { storageView } from "./helpers/storage-view.ts";

/**
 * `storage` as seen by a process that heard from it once, over a slow round trip: its latest
 * sample says the server's time was at least 900 ms before now and at most 1 s after (true of
 * this machine's own clock, which the memory store answers with).
 */
function looselyTimed(storage: Storage): Storage {
  return storageView(storage, {
    serverTime: () => {
      const local = Date.now();
      return { serverMs: local - 900, resolutionMs: 1000, sentMs: local - 900, localMs: local };
    },
  });
}

describe("replayAll right after the failures", () => {
  it("counts and replays the tasks that failed a moment before, by a loose clock", async () => {
    const storage = new MemoryStorage();
    const queue = new Queue({ storage });
    const failed = await queue.submitMany([
      { type: "email", input: "fail" },
      { type: "email", input: "fail" },
      { type: "email", input: "fail" },
    ]);
    await runAll(queue, ["email"]);
    const loose = new Queue({ storage: looselyTimed(storage) });
    expect(loose.now()).toBeLessThan(Date.now() - 800);

    const dry = await replayAll(loose, { statuses: ["failed"], type: "email", dryRun: true });
    expect(dry).toEqual({ replayed: 3, skipped: 0, refused: [] });
    const done = await replayAll(loose, { statuses: ["failed"], type: "email" });
    expect(done).toEqual({ replayed: 3, skipped: 0, refused: [] });
    for (const t of failed) expect((await queue.get(t.id)).status).toBe("pending");
  });

  it("skips a task replayed since the run began that failed again, and replays the rest", async () => {
    const storage = new MemoryStorage();
    const queue = new Queue({ storage });
    const [again, fresh] = await queue.submitMany([
      { type: "email", input: "fail" },
      { type: "email", input: "fail" },
    ]);
    await runAll(queue, ["email"]);
    // Replayed (as another run would, at the same time) and failed again: its current end is
    // within the loose clock's uncertainty, after the run's lower bound.
    await queue.replay(again!.id);
    await runAll(queue, ["email"]);
    const loose = new Queue({ storage: looselyTimed(storage) });

    const tally = await replayAll(loose, { statuses: ["failed"], type: "email" });
    expect(tally).toEqual({ replayed: 1, skipped: 1, refused: [] });
    expect((await queue.get(fresh!.id)).status).toBe("pending");
    expect((await queue.get(again!.id)).status).toBe("failed");
  });

  it("never replays a task twice in one run, though it failed again stamped before the run began", async () => {
    let now = Date.UTC(2026, 11, 4, 10, 0, 0);
    const storage = new MemoryStorage({ now: () => now });
    // One journal per page, so the run lists journals written while it goes on.
    const paged = storageView(storage, {
      list: (options) => storage.list({ ...options, maxKeys: 1 }),
    });
    const queue = new Queue({ storage: paged, now: () => now });
    // More than a page of the listing (100) and a batch of replays (16): the run replays the
    // first batch while its listing still has journals to list.
    const tasks = await queue.submitMany(
      Array.from({ length: 120 }, (_, i) => ({ type: "email", input: i })),
    );
    for (const t of tasks) await queue.cancel(t.id);
    await internals(queue).flush();
    // The task the run lists first, so it is replayed in the first batch while the listing still
    // has journals to go. Each cancel wrote its own journal, all in one second, so the order is
    // the journals' random nonces: the smallest id was listed among the last 20 about 1 run in 6
    // (failed CI once), after the listing had ended.
    const first = (await queue.list({ status: "cancelled", type: "email", limit: 1 })).tasks[0]!;
    now += 10_000;
    const began = now;
    // Once the run has replayed the first task (in its first batch), a worker whose clock
    // is a second behind stamps it cancelled again, 500 ms before the run began.
    const rawPut = storage.put.bind(storage);
    let refailed = false;
    storage.put = async (key, body, options) => {
      const result = await rawPut(key, body, options);
      if (!refailed && key === queue.keys.task(first.id)) {
        refailed = true;
        const task = await queue.get(first.id);
        const at = new Date(began - 500).toISOString();
        const again = { ...task, status: "cancelled", finishedAt: at, updatedAt: at };
        await rawPut(key, new TextEncoder().encode(JSON.stringify(again)));
        const journal = {
          oq: "journal",
          type: "email",
          status: "cancelled",
          entries: [{ id: first.id, at }],
        };
        await rawPut(
          queue.keys.newJournal("email", "cancelled", began - 500, "ffff"),
          new TextEncoder().encode(JSON.stringify(journal)),
        );
      }
      return result;
    };

    const tally = await replayAll(queue, { statuses: ["cancelled"], type: "email" });
    expect(refailed).toBe(true);
    expect(tally).toEqual({ replayed: 120, skipped: 1, refused: [] });
    const history = (await queue.get(first.id)).history.filter((h) => h.event === "replayed");
    expect(history).toHaveLength(1);
    expect((await queue.get(first.id)).status).toBe("cancelled");
  });
});
