/**
 * Workers on unsafe backends: the library Worker consults doctor's verdict as the CLI does, and a
 * backend that refuses every valid If-Match stops the worker instead of livelocking it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { CliError } from "../src/cli/errors.ts";
import { runUntilSignal } from "../src/cli/run-worker.ts";
import { readVerdict, runDoctor } from "../src/doctor/mod.ts";
import { PreconditionFailedError, UnsafeBackendError } from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { PutOptions, PutResult, Storage, StorageLocation } from "../src/storage/storage.ts";
import { liveWorkers, Worker, type WorkerEvent, type WorkerOptions } from "../src/worker/worker.ts";
import { removePrefix, s3Config, testS3Storage } from "./helpers/targets.ts";

const fast: WorkerOptions = { minPollMs: 10, maxPollMs: 50, heartbeatSeconds: 0, listReuseMs: 20 };

const until = async (what: string, check: () => boolean, timeoutMs = 10_000) => {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A remote-looking storage over another one, with `put` overridable. */
class Remote implements Storage {
  readonly inner: Storage;
  readonly name: string;
  readonly location: StorageLocation;
  constructor(inner: Storage, name = "s3://remote") {
    this.inner = inner;
    this.name = name;
    this.location = inner.location?.local
      ? { driver: "s3", endpoint: "https://remote.example/jobs", bucket: "jobs" }
      : inner.location!;
  }
  get: Storage["get"] = (k, o) => this.inner.get(k, o);
  head: Storage["head"] = (k) => this.inner.head(k);
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult> {
    return this.inner.put(key, body, options);
  }
  delete: Storage["delete"] = (k) => this.inner.delete(k);
  list: Storage["list"] = (o) => this.inner.list(o);
  listVersions: Storage["listVersions"] = (o) => this.inner.listVersions(o);
  versioning: Storage["versioning"] = () => this.inner.versioning();
  serverTime: Storage["serverTime"] = () => this.inner.serverTime();
}

/** Accepts If-Match and ignores it: doctor finds it unsafe. */
class IgnoresIfMatch extends Remote {
  override put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
    const { ifMatch: _ignored, ...rest } = options;
    return this.inner.put(key, body, rest);
  }
}

/** Refuses every If-Match with 412, held or not (nothing is written). */
class RefusesIfMatch extends Remote {
  override put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
    if (options.ifMatch !== undefined) {
      return Promise.reject(
        new PreconditionFailedError(`PUT ${key}: 412 PreconditionFailed`, { status: 412, key }),
      );
    }
    return this.inner.put(key, body, options);
  }
}

/**
 * On a real server: sends every If-Match with an ETag no object has, so the server itself answers
 * 412 to every claim (a gateway that mangles the header).
 */
class MangledIfMatch extends Remote {
  override put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
    if (options.ifMatch === undefined) return this.inner.put(key, body, options);
    return this.inner.put(key, body, { ...options, ifMatch: '"0123456789abcdef0123456789abcdef"' });
  }
}

const workers: Worker[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
  await Promise.all(cleanups.splice(0).map((c) => c()));
});
const worker = (queue: Queue, options: WorkerOptions = {}) => {
  const w = new Worker(queue, { ...fast, ...options });
  workers.push(w);
  return w;
};

describe("Worker and doctor's verdict", () => {
  it("Worker.start() refuses a backend whose cached verdict is unsafe, unless skipDoctor (defect 11)", async () => {
    const queue = new Queue({ storage: new IgnoresIfMatch(new MemoryStorage()) });
    expect((await runDoctor(queue)).verdict).toBe("unsafe");
    const ran: string[] = [];
    await queue.submit("t", 1);
    const w = worker(queue).task("t", (x) => void ran.push(String(x)));
    await expect(w.start()).rejects.toThrow(UnsafeBackendError);
    await expect(w.start()).rejects.toMatchObject({ code: "INVALID_STATE" });
    expect(liveWorkers()).not.toContain(w);
    await expect(
      worker(queue)
        .task("t", () => {})
        .drain(),
    ).rejects.toMatchObject({
      code: "UNSAFE_BACKEND",
    });
    // The same override as the CLI's --skip-doctor.
    const forced = worker(queue, { skipDoctor: true }).task("t", (x) => void ran.push(String(x)));
    await forced.start();
    await until("the forced worker ran the task", () => ran.length === 1);
    await forced.stop();
  });

  it("Worker.start() probes a backend with no verdict before its first claim and refuses it when unsafe (defect 11)", async () => {
    const queue = new Queue({ storage: new IgnoresIfMatch(new MemoryStorage()) });
    const task = await queue.submit("t", 1);
    let ran = 0;
    const w = worker(queue).task("t", () => void ran++);
    await expect(w.start()).rejects.toThrow(/not safe for oq.*oq doctor/);
    expect(ran).toBe(0);
    expect((await queue.get(task.id)).status).toBe("pending");
    expect((await readVerdict(queue))?.verdict).toBe("unsafe");
  });

  it("a worker on a safe backend probes once, then starts on the cached verdict", async () => {
    const storage = new Remote(new MemoryStorage());
    const queue = new Queue({ storage });
    const first = worker(queue).task("t", () => {});
    await first.start();
    expect((await readVerdict(queue))?.verdict).toBe("safe");
    await first.stop();
    let puts = 0;
    const put = storage.put.bind(storage);
    storage.put = (k, b, o) => {
      puts++;
      return put(k, b, o);
    };
    const second = worker(queue).task("t", () => {});
    await second.start();
    await second.stop();
    expect(puts).toBe(0);
  });

  it("workers on memory and file storages start without a probe", async () => {
    const storage = new MemoryStorage();
    const w = worker(new Queue({ storage })).task("t", () => {});
    await w.start();
    await w.stop();
    expect((await storage.listVersions({ prefix: "_doctor/" })).versions).toEqual([]);
  });
});

/** Start a worker (doctor skipped, as when the livelock was measured) and wait for it to stop. */
async function livelock(queue: Queue) {
  for (let i = 0; i < 3; i++) await queue.submit("t", i);
  const events: WorkerEvent[] = [];
  let ran = 0;
  const w = worker(queue, { skipDoctor: true, onEvent: (e) => events.push(e) }).task(
    "t",
    () => void ran++,
  );
  await w.start();
  await until("the worker to stop itself", () => !liveWorkers().includes(w));
  return { w, events, ran };
}

describe("a backend that refuses every valid If-Match", () => {
  it("stops the worker with UNSAFE_BACKEND instead of livelocking silently (defect 12)", async () => {
    const errors: string[] = [];
    const queue = new Queue({
      storage: new RefusesIfMatch(new MemoryStorage()),
      logger: { info() {}, warn() {}, error: (m) => errors.push(m) },
    });
    const { w, events, ran } = await livelock(queue);
    expect(ran).toBe(0);
    expect(w.unsafeBackend).toBeInstanceOf(UnsafeBackendError);
    expect(w.unsafeBackend?.code).toBe("UNSAFE_BACKEND");
    expect(w.unsafeBackend?.message).toMatch(/oq doctor/);
    expect(events.filter((e) => e.kind === "unsafe-backend")).toHaveLength(1);
    expect(errors.join("\n")).toMatch(/oq doctor/);
  });

  it("does not stop a worker that loses claims to other writers", async () => {
    // Every claim loses to a real writer: the task's ETag changed under it.
    const inner = new MemoryStorage();
    let lost = 0;
    class LosesToOthers extends Remote {
      override async put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
        if (options.ifMatch !== undefined && key.includes("tasks/")) {
          lost++;
          const current = await this.inner.get(key);
          await this.inner.put(key, current.body, { contentType: "application/json" });
        }
        return this.inner.put(key, body, options);
      }
    }
    const queue = new Queue({ storage: new LosesToOthers(inner) });
    await queue.submit("t", 1);
    let ran = 0;
    const w = worker(queue, { skipDoctor: true }).task("t", () => void ran++);
    await w.start();
    await until("several lost claims", () => lost >= 6);
    expect(ran).toBe(0);
    expect(liveWorkers()).toContain(w);
    expect(w.unsafeBackend).toBeUndefined();
  });

  it("oq worker exits 1 when its worker stops on such a backend, instead of idling until a signal (defect 12)", async () => {
    const queue = new Queue({ storage: new RefusesIfMatch(new MemoryStorage()) });
    for (let i = 0; i < 3; i++) await queue.submit("t", i);
    const w = worker(queue, { skipDoctor: true }).task("t", () => {});
    const run = runUntilSignal(w, { graceMs: 0, summaryMs: 0, concurrency: 1 });
    await expect(run).rejects.toBeInstanceOf(CliError);
    await expect(run).rejects.toMatchObject({ exitCode: 1, message: /oq doctor/ });
  });

  it.runIf(s3Config !== undefined)(
    "stops the worker on MinIO when every claim's If-Match is refused (defect 12)",
    async () => {
      const s3 = testS3Storage();
      const prefix = `unsafe-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/`;
      cleanups.push(() => removePrefix(s3, prefix));
      const queue = new Queue({ storage: new MangledIfMatch(s3), prefix });
      const { w, ran } = await livelock(queue);
      expect(ran).toBe(0);
      expect(w.unsafeBackend?.code).toBe("UNSAFE_BACKEND");
      expect(w.unsafeBackend?.status).toBe(412);
    },
  );
});
