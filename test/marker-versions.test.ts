/**
 * Markers are deleted by the version their writer got back (src/queue/marker-deletes.ts): on a
 * versioned bucket a plain delete leaves a delete marker under `ready/`, which every listing of
 * the partition walks until a lifecycle rule expires it, so a busy queue's LISTs (idle polls
 * included) grew with the tasks it finished.
 */
import { afterEach, describe, expect, it } from "vitest";
import { AccessDeniedError, StorageError } from "../src/errors.ts";
import type { Logger } from "../src/logger.ts";
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage, VersionInfo } from "../src/storage/storage.ts";
import { versionsUnder } from "../src/storage/versions.ts";
import { Worker } from "../src/worker/worker.ts";
import {
  memoryTarget,
  s3Config,
  s3Target,
  type TargetInstance,
  testS3Storage,
} from "./helpers/targets.ts";
import { fast } from "./helpers/wait.ts";

/** Every version and delete marker under `prefix`, all pages. */
async function versionsLeft(storage: Storage, prefix: string): Promise<VersionInfo[]> {
  const found: VersionInfo[] = [];
  for await (const v of versionsUnder(storage, prefix)) found.push(v);
  return found;
}

/** Run every due task of `queue` (`t`: ok; `flaky`: fails its first attempt) and flush. */
async function drainAll(queue: Queue): Promise<void> {
  const worker = new Worker(queue, { ...fast, skipDoctor: true, concurrency: 4 })
    .task("t", () => "ok")
    .task("flaky", (_input, ctx) => {
      if (ctx.attempt === 1) throw new Error("first attempt fails");
      return "ok";
    });
  await worker.drain({ budgetMs: 20_000 });
}

const logged = () => {
  const warnings: string[] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (message) => warnings.push(message),
    error: (message) => warnings.push(message),
  };
  return { warnings, logger };
};

for (const target of [memoryTarget, ...(s3Target ? [s3Target] : [])]) {
  describe(`markers leave nothing behind on a versioned ${target.name}`, () => {
    let env: TargetInstance;
    afterEach(async () => env?.cleanup());

    it("a task names its marker's version, and finished tasks leave no version nor delete marker under ready/", async () => {
      env = await target.create();
      const queue = new Queue({ storage: env.storage, prefix: env.prefix });
      const ready = `${env.prefix}ready/`;
      const submitted = await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => queue.submit("t", i)),
        queue.submit("flaky", null, {
          maxRetries: 2,
          backoff: { initialSeconds: 0, maxSeconds: 0 },
        }),
      ]);
      const before = await versionsLeft(env.storage, ready);
      for (const task of submitted) {
        const markerKey = `${env.prefix}${task.marker}`;
        const versions = before.filter((v) => v.key === markerKey);
        expect(versions).toHaveLength(1);
        expect(task.markerVersion).toBe(versions[0]!.versionId);
        expect((await queue.read(task.id))?.task.markerVersion).toBe(versions[0]!.versionId);
      }

      await drainAll(queue);

      for (const task of submitted) {
        const done = (await queue.read(task.id))!.task;
        expect(done.status).toBe("completed");
        expect(done.marker).toBeNull();
        expect(done.markerVersion).toBeUndefined();
      }
      // The retry moved the flaky task to a new marker; the old one went by its version too.
      expect(await versionsLeft(env.storage, ready)).toEqual([]);
    });
  });
}

describe("a marker retired alone", () => {
  it("goes as one DELETE ?versionId= (free on AWS), not a DeleteObjects POST", async () => {
    const storage = countRequests(new MemoryStorage());
    const queue = new Queue({ storage });
    await queue.submit("t", null);
    storage.reset();
    await drainAll(queue);
    expect(storage.counts.POST).toBe(0);
    expect(await versionsLeft(storage, "ready/")).toEqual([]);
  });
});

describe("a storage that refuses version deletes", () => {
  it("gets plain deletes, with one warning, and no version delete after the first refusal", async () => {
    let refused = 0;
    const refuse = async (): Promise<void> => {
      refused++;
      throw new AccessDeniedError("AccessDenied: s3:DeleteObjectVersion", { status: 403 });
    };
    class RefusingVersionDeletes extends MemoryStorage {
      override deleteVersions = refuse;
      override deleteVersion = refuse;
    }
    const inner = new RefusingVersionDeletes();
    const { warnings, logger } = logged();
    const queue = new Queue({ storage: inner, logger });
    for (let round = 0; round < 2; round++) {
      await Promise.all(Array.from({ length: 3 }, (_, i) => queue.submit("t", i)));
      await drainAll(queue);
    }
    expect(refused).toBe(1);
    expect(warnings.filter((w) => w.includes("s3:DeleteObjectVersion"))).toHaveLength(1);
    // The markers are gone all the same (a delete marker each, as before).
    expect((await inner.list({ prefix: "ready/" })).objects).toEqual([]);
    const left = await versionsLeft(inner, "ready/");
    expect(left.filter((v) => v.isDeleteMarker)).toHaveLength(6);
  });
});

describe("a batch of version deletes that fails otherwise", () => {
  it("is retried one version at a time, never as plain deletes that would leave delete markers", async () => {
    let batches = 0;
    class FailingBatches extends MemoryStorage {
      override async deleteVersions(): Promise<void> {
        batches++;
        throw new StorageError("InvalidArgument: Invalid version id specified", { status: 400 });
      }
    }
    const storage = new FailingBatches();
    const { warnings, logger } = logged();
    const queue = new Queue({ storage, logger });
    await Promise.all(Array.from({ length: 4 }, (_, i) => queue.submit("t", i)));
    await drainAll(queue);
    expect(batches).toBeGreaterThan(0);
    expect(warnings.some((w) => w.includes("deleting one by one"))).toBe(true);
    expect(await versionsLeft(storage, "ready/")).toEqual([]);
  });
});

describe.skipIf(s3Config?.unversionedBucket === undefined)("an unversioned MinIO bucket", () => {
  it("gives no version: tasks name none, and markers are deleted as before", async () => {
    const storage = countRequests(testS3Storage(s3Config!.unversionedBucket));
    const prefix = `mv${Date.now().toString(36)}/`;
    const queue = new Queue({ storage, prefix });
    const task = await queue.submit("t", null);
    expect(task.markerVersion).toBeUndefined();
    expect((await queue.read(task.id))?.task.markerVersion).toBeUndefined();
    await drainAll(queue);
    expect((await storage.list({ prefix: `${prefix}ready/` })).objects).toEqual([]);
    for (const o of (await storage.list({ prefix })).objects) await storage.delete(o.key);
  });
});
