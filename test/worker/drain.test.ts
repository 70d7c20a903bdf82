/**
 * `drain()` and server time known only to the second: a task that may be due by the server's
 * clock, but not yet by the worker's lower bound of it, is waited for within the budget.
 */
import { describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { Worker } from "../../src/worker/worker.ts";
import { secondResolution } from "../helpers/storage-view.ts";
import { fast } from "../helpers/wait.ts";

describe("drain() with server time known to the second", () => {
  it("runs tasks a precise clock stamped a moment before our lower bound reached them", async () => {
    // Time runs at 100 ms into a second: the worker's lower bound of server time trails the
    // truth by about that much, and the submitter (exact clock) stamps tasks with the truth.
    // Their markers (second resolution) list as due, their records read as not due yet for
    // about 100 ms, and the skip list holds them for 200 ms. Before the fix the drain waited
    // out the 100 ms, found them skipped, and returned 0.
    const real = Date.now();
    const offset = Math.ceil(real / 1000) * 1000 + 100 - real;
    const now = () => Date.now() + offset;
    const memory = new MemoryStorage({ now });
    const submitter = new Queue({ storage: memory, now });
    await submitter.submitMany([1, 2, 3].map((n) => ({ type: "quick", input: n })));
    const queue = new Queue({ storage: secondResolution(memory), now });
    const worker = new Worker(queue, { ...fast, skipDoctor: true }).task("quick", async () => {});
    expect(await worker.drain({ budgetMs: 5000 })).toBe(3);
  });

  it("remembers a task read before it was due after a pass that claimed another", async () => {
    // As above, with one task the worker's own queue stamped (due by its lower bound): the
    // first pass claims it and reads the other too early. Before the fix the next pass, with
    // that marker in the skip list, forgot it and the drain returned 1.
    const real = Date.now();
    const offset = Math.ceil(real / 1000) * 1000 + 100 - real;
    const now = () => Date.now() + offset;
    const memory = new MemoryStorage({ now });
    const submitter = new Queue({ storage: memory, now });
    const queue = new Queue({ storage: secondResolution(memory), now });
    await submitter.submit("quick", "stamped by the exact clock");
    await queue.submit("quick", "stamped by the worker's lower bound");
    // Two slots: the first pass reads both tasks whichever it takes first.
    const worker = new Worker(queue, { ...fast, concurrency: 2, skipDoctor: true }).task(
      "quick",
      async () => {},
    );
    expect(await worker.drain({ budgetMs: 5000 })).toBe(2);
  });
});
