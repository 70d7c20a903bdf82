/**
 * A submit through a worker's own queue object wakes it from an idle pause (issue 15, item 4).
 * Fake timers: time moves only when the test says, so "started at once" is exact, not timed.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { type CountedStorage, countRequests } from "../../src/storage/count.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import type { ListOptions, ListResult, PutOptions, PutResult } from "../../src/storage/storage.ts";
import { Worker } from "../../src/worker/worker.ts";

/** An idle worker backs off up to an hour here, so only a wake can start a task soon. */
const HOUR = 3_600_000;

/** Handlers run until this is released, so a finished task's freed slot wakes no poll. */
let release: () => void = () => {};
let held = new Promise<void>((r) => (release = r));

/** A worker on `queue` for type `t` that records the tasks it starts. */
function idleWorker(queue: Queue, started: string[]): Worker {
  return new Worker(queue, {
    skipDoctor: true,
    heartbeatSeconds: 0,
    minPollMs: 250,
    maxPollMs: HOUR,
  }).task("t", async (_input, ctx) => {
    started.push(ctx.task.id);
    await held;
    return null;
  });
}

/**
 * A memory store whose next listing of the ready index, once armed, is answered as it stood
 * before a submit that lands right after it: the submit's wake reaches the worker while the
 * pass that listed is still under way.
 */
class SubmitAfterListing extends MemoryStorage {
  armed: (() => Promise<unknown>) | undefined;
  override async list(options: ListOptions = {}): Promise<ListResult> {
    const result = await super.list(options);
    const submit = this.armed;
    if (submit !== undefined && options.prefix?.includes("ready/") === true) {
      this.armed = undefined;
      await submit();
    }
    return result;
  }
}

/** A memory store that holds back task writes (not markers) while `gate` is set. */
class HeldTaskWrites extends MemoryStorage {
  gate: Promise<void> | undefined;
  override async put(
    key: string,
    body: string | Uint8Array,
    options: PutOptions = {},
  ): Promise<PutResult> {
    if (this.gate !== undefined && key.startsWith("tasks/")) await this.gate;
    return super.put(key, body, options);
  }
}

/**
 * An idle worker on a queue over `store`, started and past its second listing (it found
 * nothing, and pauses 250 ms, then 500 ms, then 1 s).
 */
async function pastSecondListing(
  store: MemoryStorage,
): Promise<{ local: Queue; started: string[]; worker: Worker }> {
  const local = new Queue({ storage: store });
  const started: string[] = [];
  const worker = idleWorker(local, started);
  await worker.start();
  await vi.advanceTimersByTimeAsync(260);
  return { local, started, worker };
}

/** Let the handlers finish and stop `workers`. */
async function stopAll(workers: Worker[]): Promise<void> {
  release();
  await Promise.all(workers.map((w) => w.stop()));
  held = new Promise<void>((r) => (release = r));
}

describe("local wake", () => {
  let storage: CountedStorage;
  let queue: Queue;
  beforeEach(() => {
    vi.useFakeTimers();
    storage = countRequests(new MemoryStorage());
    queue = new Queue({ storage });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Start `workers` and let them idle for two hours: each is then in an hour-long pause. */
  async function idleFor(workers: Worker[]): Promise<void> {
    for (const w of workers) await w.start();
    await vi.advanceTimersByTimeAsync(2 * HOUR);
  }

  it("a submit through the worker's queue starts the task at once after an idle spell (first tasks after idle waited for the backed-off poll)", async () => {
    const started: string[] = [];
    const worker = idleWorker(queue, started);
    await idleFor([worker]);
    storage.reset();
    const task = await queue.submit("t", 1);
    // No time passes: only the wake can have run it (the next poll is many minutes away).
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual([task.id]);
    // The wake cost one listing of the task's partition, as the next poll would have.
    expect(storage.counts.LIST).toBe(1);
    await stopAll([worker]);
  });

  it("wakes one idle worker per submitted task, not every worker of the queue", async () => {
    const started: string[] = [];
    const workers = [idleWorker(queue, started), idleWorker(queue, started)];
    await idleFor(workers);
    storage.reset();
    await queue.submit("t", 1);
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toHaveLength(1);
    expect(storage.counts.LIST).toBe(1);
    // A burst wakes the other idle one too (the first runs its task, on its fast cadence).
    await queue.submitMany([{ type: "t", input: 2 }]);
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toHaveLength(2);
    await stopAll(workers);
  });

  it("a woken worker lists no sooner than minPollMs after its last listing", async () => {
    const started: string[] = [];
    const worker = idleWorker(queue, started);
    await worker.start();
    // Its first listing found nothing; it pauses 250 ms, then 500 ms.
    await vi.advanceTimersByTimeAsync(260);
    await queue.submit("t", 1);
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(started).toEqual([]);
    await vi.advanceTimersByTimeAsync(60);
    expect(started).toHaveLength(1);
    await stopAll([worker]);
  });

  it("does not wake for a delayed task, nor for a submit through another queue object", async () => {
    const started: string[] = [];
    const worker = idleWorker(queue, started);
    await idleFor([worker]);
    storage.reset();
    await queue.submit("t", 1, { delay: "1m" });
    await new Queue({ storage }).submit("t", 2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(started).toEqual([]);
    expect(storage.counts.LIST).toBe(0);
    await stopAll([worker]);
  });

  it("a submit that lands while a pass is under way starts its task within minPollMs (its wake was lost, and the task waited for the idle pause)", async () => {
    const store = new SubmitAfterListing();
    const { local, started, worker } = await pastSecondListing(store);
    let submitted: string | undefined;
    store.armed = async () => {
      submitted = (await local.submit("t", 1)).id;
    };
    // The third pass lists (nothing), then the submit lands before the pass ends.
    await vi.advanceTimersByTimeAsync(500);
    expect(store.armed).toBeUndefined();
    expect(submitted).toBeDefined();
    await vi.advanceTimersByTimeAsync(260);
    expect(started).toEqual([submitted]);
    await stopAll([worker]);
  });

  it("a task whose marker a listing caught before the task landed starts once its local submit ends (it was skipped for a second or more)", async () => {
    const store = new HeldTaskWrites();
    const { local, started, worker } = await pastSecondListing(store);
    let open: () => void = () => {};
    store.gate = new Promise<void>((r) => (open = r));
    const submit = local.submit("t", 1);
    // The third pass lists the marker and reads no task: the submit is between its two writes.
    await vi.advanceTimersByTimeAsync(500);
    expect(started).toEqual([]);
    store.gate = undefined;
    open();
    const task = await submit;
    await vi.advanceTimersByTimeAsync(300);
    expect(started).toEqual([task.id]);
    await stopAll([worker]);
  });
});
