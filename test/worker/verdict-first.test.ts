/**
 * A worker reads doctor's verdict and the manifest at once when it starts, to save a round trip:
 * that must never let a claim go out before the verdict is in. Here the verdict's GET is held
 * open while a due task waits; no conditional write may reach `tasks/` until it answers, and an
 * unsafe verdict must then stop the worker before any claim.
 */
import { afterEach, describe, expect, it } from "vitest";
import { verdictKey } from "../../src/doctor/verdict.ts";
import { Queue } from "../../src/queue/queue.ts";
import type {
  GetOptions,
  GetResult,
  PutOptions,
  PutResult,
  Storage,
  StorageLocation,
} from "../../src/storage/storage.ts";
import { Worker, type WorkerOptions } from "../../src/worker/worker.ts";
import { memoryTarget, s3Target, type Target } from "../helpers/targets.ts";
import { storeVerdict } from "../helpers/verdict.ts";
import { until } from "../helpers/wait.ts";

const fast: WorkerOptions = { minPollMs: 10, maxPollMs: 50, heartbeatSeconds: 0, listReuseMs: 20 };

/**
 * A storage that looks remote (so a worker asks for doctor's verdict), whose GET of one key can
 * be held until the test releases it, and which records every write.
 */
class HeldVerdict implements Storage {
  readonly name: string;
  readonly location: StorageLocation;
  /** Writes as `put key` / `put-if-match key` / `delete key`, in order. */
  readonly writes: string[] = [];
  #heldKey: string | undefined;
  #release: (() => void) | undefined;
  #gate: Promise<void> | undefined;
  #reached: (() => void) | undefined;
  /** Resolves once the held GET was sent. */
  reached: Promise<void> = Promise.resolve();

  readonly inner: Storage;

  constructor(inner: Storage) {
    this.inner = inner;
    this.name = `remote(${inner.name})`;
    this.location = inner.location?.local
      ? { driver: "s3", endpoint: "https://remote.example/jobs", bucket: "jobs" }
      : inner.location!;
  }

  /** Hold every GET of `key` from now until {@link HeldVerdict.release}. */
  hold(key: string): void {
    this.#heldKey = key;
    this.#gate = new Promise((resolve) => {
      this.#release = resolve;
    });
    this.reached = new Promise((resolve) => {
      this.#reached = resolve;
    });
  }

  /** Let the held GETs through (they read what is stored by then). */
  release(): void {
    this.#heldKey = undefined;
    this.#release?.();
  }

  async get(key: string, options?: GetOptions): Promise<GetResult> {
    if (key === this.#heldKey) {
      this.#reached?.();
      await this.#gate;
    }
    return this.inner.get(key, options);
  }
  head: Storage["head"] = (k) => this.inner.head(k);
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult> {
    this.writes.push(`${options?.ifMatch === undefined ? "put" : "put-if-match"} ${key}`);
    return this.inner.put(key, body, options);
  }
  delete(key: string): Promise<void> {
    this.writes.push(`delete ${key}`);
    return this.inner.delete(key);
  }
  list: Storage["list"] = (o) => this.inner.list(o);
  listVersions: Storage["listVersions"] = (o) => this.inner.listVersions(o);
  versioning: Storage["versioning"] = () => this.inner.versioning();
  serverTime: Storage["serverTime"] = () => this.inner.serverTime();
}

const cleanups: (() => Promise<void>)[] = [];
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/** A queue with one due task and the given stored verdict, the verdict's GET held. */
async function heldQueue(target: Target, verdict: "safe" | "unsafe") {
  const instance = await target.create();
  cleanups.push(() => instance.cleanup());
  const storage = new HeldVerdict(instance.storage);
  const queue = new Queue({ storage, prefix: instance.prefix });
  await storeVerdict(queue, verdict);
  const task = await queue.submit("t", 1);
  storage.writes.length = 0;
  storage.hold(verdictKey(queue));
  const tasksPrefix = queue.keys.tasks;
  const taskWrites = () => storage.writes.filter((w) => w.includes(tasksPrefix));
  return { storage, queue, task, taskWrites };
}

/**
 * Give a worker that claims without waiting for the verdict every chance to do so: wait until a
 * write reaches `tasks/` or, failing that, a good many of its poll intervals.
 */
async function whileHeld(writes: () => string[]): Promise<void> {
  const end = Date.now() + 500;
  while (writes().length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

const entries = {
  start: async (w: Worker) => {
    await w.start();
  },
  drain: async (w: Worker) => {
    await w.drain({ budgetMs: 5_000 });
  },
};

const shown = [memoryTarget, ...(s3Target ? [s3Target] : [])];

/**
 * A worker started by `begin` on a queue whose verdict GET is held (answering `verdict` once
 * released), checked to have written no task while it is held.
 */
async function startHeld(
  target: Target,
  verdict: "safe" | "unsafe",
  begin: (w: Worker) => Promise<unknown>,
) {
  const held = await heldQueue(target, verdict);
  let ran = 0;
  const w = new Worker(held.queue, fast).task("t", () => void ran++);
  workers.push(w);
  const started = begin(w);
  started.catch(() => {});
  await held.storage.reached;
  await whileHeld(held.taskWrites);
  expect(held.taskWrites()).toEqual([]);
  return { ...held, started, runs: () => ran };
}

describe.each(shown)("no claim before doctor's verdict is in, on $name", (target) => {
  for (const [entry, begin] of Object.entries(entries)) {
    it(`${entry}() claims nothing while the verdict's GET is unanswered, and nothing at all when it says unsafe`, async () => {
      const { storage, queue, task, taskWrites, started, runs } = await startHeld(
        target,
        "unsafe",
        begin,
      );
      storage.release();
      await expect(started).rejects.toMatchObject({ code: "UNSAFE_BACKEND" });
      await whileHeld(taskWrites);
      expect(taskWrites()).toEqual([]);
      expect(runs()).toBe(0);
      expect((await queue.get(task.id)).status).toBe("pending");
    });

    it(`${entry}() claims the due task once the held verdict answers safe`, async () => {
      const { storage, queue, task, taskWrites, started, runs } = await startHeld(
        target,
        "safe",
        begin,
      );
      storage.release();
      await started;
      await until(
        "the task completed",
        async () => (await queue.get(task.id)).status === "completed",
        10_000,
      );
      expect(runs()).toBe(1);
      expect(taskWrites()[0]).toMatch(/^put-if-match /);
    });
  }
});
