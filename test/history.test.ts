/**
 * `queue.getHistory()` reads the event log kept in the task record: one GET, on every backend,
 * and still complete after the bucket's old versions are gone (a lifecycle rule expiring
 * non-current versions, or a bucket like R2 that keeps none). `queue.getVersions()` keeps the
 * version listing where the bucket has it.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "../src/connect.ts";
import { NotFoundError } from "../src/errors.ts";
import type { Queue } from "../src/queue/queue.ts";
import { type CountedStorage, countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";
import { encodeTask } from "../src/task/record.ts";
import { Worker } from "../src/worker/worker.ts";
import {
  removePrefix,
  s3Config,
  type TargetInstance,
  targets,
  testS3Storage,
} from "./helpers/targets.ts";
import { fast } from "./helpers/wait.ts";

/** Submit a task that fails its first attempt and completes its second, and run it. */
async function runFlaky(queue: Queue, workerId: string): Promise<string> {
  const t = await queue.submit("flaky", null, {
    maxRetries: 2,
    backoff: { initialSeconds: 0.05, maxSeconds: 0.1 },
  });
  const worker = new Worker(queue, { ...fast, id: workerId }).task("flaky", async (_i, ctx) => {
    if (ctx.attempt === 1) throw new TypeError("boom");
    return "ok";
  });
  await worker.start();
  try {
    expect((await queue.wait(t.id, { timeout: 20 })).status).toBe("completed");
  } finally {
    await worker.stop({ graceMs: 0 });
  }
  return t.id;
}

const FLAKY_LOG = [
  ["submitted", 0, null, null],
  ["claimed", 1, "w-hist", null],
  ["retry-scheduled", 1, "w-hist", "TypeError: boom"],
  ["claimed", 2, "w-hist", null],
  ["completed", 2, "w-hist", null],
];

const summary = (
  entries: { event: string; attempt: number; worker: string | null; error: string | null }[],
) => entries.map((e) => [e.event, e.attempt, e.worker, e.error]);

/** Permanently delete every version of `key` but the current one, as a lifecycle rule would. */
async function expireNoncurrentVersions(storage: Storage, key: string): Promise<number> {
  const page = await storage.listVersions({ prefix: key });
  const old = page.versions.filter((v) => v.key === key && !v.isLatest);
  for (const v of old) await storage.deleteVersion!(key, v.versionId);
  return old.length;
}

for (const target of targets) {
  describe(`task history on ${target.name}`, () => {
    let env: TargetInstance;
    let counted: CountedStorage;
    let queue: Queue;

    beforeEach(async () => {
      env = await target.create();
      counted = countRequests(env.storage);
      queue = await connect({ storage: counted, prefix: env.prefix });
    });
    afterEach(async () => {
      await env.cleanup();
    });

    it("getHistory returns the task's transitions with worker, attempt and error, in one GET", async () => {
      const id = await runFlaky(queue, "w-hist");
      counted.reset();
      const history = await queue.getHistory(id);
      expect(counted.counts).toEqual({ GET: 1, HEAD: 0, PUT: 0, POST: 0, LIST: 0, DELETE: 0 });
      expect(summary(history)).toEqual(FLAKY_LOG);
      // The times are the records' own: the last entry is the completed record's updatedAt.
      expect(history.at(-1)!.at).toBe((await queue.get(id)).updatedAt);
      // The versions tell the same story where the bucket keeps them.
      const versions = await queue.getVersions(id);
      expect(versions.map((v) => v.task?.event)).toEqual(history.map((e) => e.event));
    });

    it("getHistory still tells the whole story after every non-current version is deleted", async () => {
      const id = await runFlaky(queue, "w-hist");
      const before = await queue.getHistory(id);
      expect(await expireNoncurrentVersions(env.storage, queue.keys.task(id))).toBe(4);
      expect((await queue.getVersions(id)).map((v) => v.task?.event)).toEqual(["completed"]);
      expect(await queue.getHistory(id)).toEqual(before);
      expect(summary(before)).toEqual(FLAKY_LOG);
    });

    it("getHistory of a record written before the log existed shows its last transition, and the log grows from there", async () => {
      const t = await queue.submit("old", null);
      const { history: _, ...old } = await queue.get(t.id);
      await env.storage.put(queue.keys.task(t.id), encodeTask(old as typeof t));
      expect(await queue.getHistory(t.id)).toEqual([
        { event: "submitted", at: t.updatedAt, worker: null, attempt: 0, error: null },
      ]);
      await queue.cancel(t.id);
      expect((await queue.getHistory(t.id)).map((e) => e.event)).toEqual([
        "submitted",
        "cancelled",
      ]);
    });

    it("getHistory of a missing task throws NotFoundError", async () => {
      await expect(queue.getHistory("0123456789abcdef0123456789abcdef")).rejects.toThrow(
        NotFoundError,
      );
    });
  });
}

describe("task history without bucket versioning (as on R2)", () => {
  const unversioned: { name: string; open(): Promise<{ storage: Storage; prefix: string }> }[] = [
    {
      name: "memory",
      open: async () => ({ storage: new MemoryStorage({ versioning: "Disabled" }), prefix: "" }),
    },
    ...(s3Config?.unversionedBucket
      ? [
          {
            name: "the unversioned MinIO bucket",
            open: async () => ({
              storage: testS3Storage(s3Config!.unversionedBucket),
              prefix: `hist-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}/`,
            }),
          },
        ]
      : []),
  ];
  for (const backend of unversioned) {
    it(`getHistory keeps every transition on ${backend.name}, where getVersions has only the last`, async () => {
      const { storage, prefix } = await backend.open();
      try {
        const queue = await connect({
          storage,
          prefix,
          allowNoVersioning: true,
          logger: { info() {}, warn() {}, error() {} },
        });
        const id = await runFlaky(queue, "w-hist");
        expect(summary(await queue.getHistory(id))).toEqual(FLAKY_LOG);
        expect((await queue.getVersions(id)).map((v) => v.task?.event)).toEqual(["completed"]);
      } finally {
        await removePrefix(storage, prefix);
      }
    });
  }
});
