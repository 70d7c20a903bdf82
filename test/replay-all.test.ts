/**
 * `replayAll` (`oq replay --all-failed`, the dashboard's "replay all failed") right after the
 * failures, run by a process whose clock knows the server's time only loosely: a new CLI process
 * has one `Date` header, of one-second resolution, where the worker that stamped the failures had
 * many. The run takes the tasks that finished before it began by the upper bound of that time.
 */
import { describe, expect, it } from "vitest";
import { Queue } from "../src/queue/queue.ts";
import { replayAll } from "../src/queue/replay-all.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { runAll } from "./helpers/run.ts";

/**
 * `storage` as seen by a process that heard from it once, over a slow round trip: its latest
 * sample says the server's time was at least 900 ms before now and at most 1 s after (true of
 * this machine's own clock, which the memory store answers with).
 */
function looselyTimed(storage: Storage): Storage {
  return new Proxy(storage, {
    get(target, name, receiver) {
      if (name === "serverTime")
        return () => {
          const local = Date.now();
          return { serverMs: local - 900, resolutionMs: 1000, sentMs: local - 900, localMs: local };
        };
      const value = Reflect.get(target, name, receiver);
      return typeof value === "function" ? value.bind(target) : value;
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
});
