import { afterEach, describe, expect, it } from "vitest";
import { UnavailableError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { ServerTimeSample, Storage } from "../src/storage/storage.ts";
import { Worker } from "../src/worker/worker.ts";
import { fast, until } from "./helpers/wait.ts";

/** The storage calls that write. */
const WRITES = new Set(["put", "delete", "deleteMany", "deleteVersion", "deleteVersions"]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One process's view of a shared memory bucket, as over HTTP: it stamps each request's send and
 * arrival with its own local clock `local`, and sees the server's time (real time, the memory
 * store's clock) truncated to the second like a `Date` header. `blockWrites` makes its PUTs fail
 * as if storage could not be reached, and every PUT it attempts is logged with the real time.
 */
function processView(shared: MemoryStorage, local: () => number) {
  let last: ServerTimeSample | undefined;
  const view = {
    blockWrites: false,
    puts: [] as number[],
    storage: undefined as unknown as Storage,
  };
  view.storage = new Proxy(shared, {
    get(target, prop, receiver) {
      if (prop === "serverTime") return () => last;
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        if (prop === "put") view.puts.push(Date.now());
        if (view.blockWrites && WRITES.has(String(prop)))
          throw new UnavailableError(`${String(prop)}: cannot reach storage (test)`);
        const sentMs = local();
        const result = await value.apply(target, args);
        const stamped = target.serverTime()!.serverMs;
        last = {
          serverMs: Math.floor(stamped / 1000) * 1000,
          resolutionMs: 1000,
          sentMs,
          localMs: local(),
        };
        return result;
      };
    },
  }) as Storage;
  return view;
}

describe("leases under clock steps (defect 2)", () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
  });

  it("a holder whose clock steps a minute back keeps its lease through a renewal", async () => {
    const shared = new MemoryStorage(); // its clock (real time) is the server's
    const submitter = new Queue({ storage: shared });
    const t = await submitter.submit("job", null, { maxRetries: 3 });
    let step = 0;
    const holderLocal = () => Date.now() + step;
    const holderView = processView(shared, holderLocal);
    const starts: string[] = [];
    const holder = new Worker(new Queue({ storage: holderView.storage, now: holderLocal }), {
      ...fast,
      id: "holder",
      leaseSeconds: 10,
    }).task("job", async (_input, ctx) => {
      starts.push(`holder ${ctx.attempt}`);
      await until("the step", () => step !== 0);
      // The first write after the step: its lease was computed from a clock a minute slow, and
      // expired at once in server time (another worker took the task over).
      await ctx.extendLease(10);
      await sleep(1_500);
      return "holder";
    });
    workers.push(holder);
    const taker = new Worker(new Queue({ storage: shared }), { ...fast, id: "taker" }).task(
      "job",
      (_input, ctx) => {
        starts.push(`taker ${ctx.attempt}`);
        return "taker";
      },
    );
    workers.push(taker);
    await holder.start();
    await until("the holder started", () => starts.length === 1);
    await taker.start();
    await sleep(500);
    step = -60_000;
    const done = await submitter.wait(t.id, { timeout: 20 });
    expect(starts).toEqual(["holder 1"]);
    expect(done).toMatchObject({ status: "completed", output: "holder", attempt: 1 });
    expect(holder.stats.leaseLost).toBe(0);
  }, 30_000);

  it("a worker whose clock steps 3.9 s forward does not start a live lease, and the holder stops before it could (defect 2)", async () => {
    const shared = new MemoryStorage(); // its clock (real time) is the server's
    const submitter = new Queue({ storage: shared });
    const t = await submitter.submit("job", null);

    const starts: { attempt: number; at: number; worker: string }[] = [];
    let holderStoppedAt: number | undefined;
    let holderReason = "";

    // The holder: its clock is right, but it cannot write once it has started (no renewals),
    // and its handler ignores its signal for 7 s.
    const holderView = processView(shared, Date.now);
    const holder = new Worker(new Queue({ storage: holderView.storage, now: Date.now }), {
      ...fast,
      id: "holder",
      leaseSeconds: 4,
    }).task("job", async (_input, ctx) => {
      starts.push({ attempt: ctx.attempt, at: Date.now(), worker: "holder" });
      holderView.blockWrites = true;
      ctx.signal.addEventListener("abort", () => {
        holderStoppedAt = Date.now();
        holderReason = (ctx.signal.reason as Error).name;
      });
      await sleep(7_000);
      return "late";
    });
    workers.push(holder);

    // The taker: its local clock steps forward by 3.9 s while the holder's lease is live.
    let step = 0;
    const takerLocal = () => Date.now() + step;
    const takerView = processView(shared, takerLocal);
    const taker = new Worker(new Queue({ storage: takerView.storage, now: takerLocal }), {
      ...fast,
      id: "taker",
      leaseSeconds: 4,
    }).task("job", (_input, ctx) => {
      starts.push({ attempt: ctx.attempt, at: Date.now(), worker: "taker" });
      return "taken";
    });
    workers.push(taker);

    await holder.start();
    await until("the holder started", () => starts.length === 1);
    const lease = (await submitter.get(t.id)).lease!;
    expect(lease.workerId).toBe("holder");
    const expiresAt = Date.parse(lease.expiresAt);
    await taker.start();
    await sleep(1_200); // the taker polls, reads the live lease, learns the server's clock
    step = 3_900;

    const done = await submitter.wait(t.id, { timeout: 20 });
    expect(done.status).toBe("completed");
    expect(done.output).toBe("taken");
    expect(starts.map((s) => [s.worker, s.attempt])).toEqual([
      ["holder", 1],
      ["taker", 2],
    ]);
    const takenAt = starts[1]!.at;
    // No second start while attempt 1 held a live lease...
    expect(takenAt).toBeGreaterThanOrEqual(expiresAt);
    // ...and the holder was told to stop before the lease ran out, so before anyone may take it.
    expect(holderReason).toBe("LeaseLost");
    expect(holderStoppedAt).toBeDefined();
    expect(holderStoppedAt!).toBeLessThan(expiresAt);
    expect(holderStoppedAt!).toBeLessThan(takenAt);
    // Once stopped it tried no further write for attempt 1 (it never renewed).
    holderView.blockWrites = false;
    await until("the holder's handler returned", () => holder.stats.leaseLost === 1);
    await sleep(7_000 - (Date.now() - starts[0]!.at) + 300);
    expect(holderView.puts.filter((at) => at > holderStoppedAt!)).toEqual([]);
    expect((await submitter.get(t.id)).output).toBe("taken");
  }, 30_000);
});
