/**
 * Cloudflare Workers: the example Worker (examples/cloudflare/worker.ts), bundled like wrangler
 * bundles it and run in workerd by miniflare 4. `fetch` submits tasks; the cron trigger
 * (`scheduled`) drains them with `Worker.drain`. Once against an R2 binding (miniflare's R2), and,
 * when `OQ_TEST_S3_*` is set, against MinIO over signed fetch, where Node then reads the same
 * tasks back with its own S3 driver.
 */
import { join } from "node:path";
import { Miniflare, type MiniflareOptions } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import type { TaskRecord } from "../../src/task/record.ts";
import { removePrefix } from "../helpers/targets.ts";
import {
  bundleWorker,
  COMPATIBILITY_DATE,
  minio,
  minioEnv,
  ROOT,
  uniquePrefix,
} from "./helpers.ts";

const EXAMPLE = join(ROOT, "examples/cloudflare");

let script: string;

beforeAll(async () => {
  script = await bundleWorker(join(EXAMPLE, "worker.ts"), join(EXAMPLE, "tsconfig.json"));
});

/** Start the example Worker with these bindings; `call` talks to it. */
async function startExample(bindings: Partial<MiniflareOptions>) {
  const mf = new Miniflare({
    modules: true,
    script,
    compatibilityDate: COMPATIBILITY_DATE,
    ...bindings,
  } as MiniflareOptions);
  await mf.ready;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await mf.dispatchFetch(`http://example${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    const text = await res.text();
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
  };
  const submit = async (type: string, input: unknown, options: Record<string, unknown> = {}) => {
    const r = await call("POST", "/tasks", { type, input, options });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.id as string;
  };
  const task = async (id: string) => {
    const r = await call("GET", `/tasks/${id}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as unknown as TaskRecord;
  };
  const cron = async () => {
    // miniflare's types come from @cloudflare/workers-types, which this project does not install.
    const worker = (await mf.getWorker()) as unknown as {
      scheduled(options: { cron: string }): Promise<{ outcome: string }>;
    };
    const result = await worker.scheduled({ cron: "* * * * *" });
    expect(result.outcome).toBe("ok");
  };
  return { mf, call, submit, task, cron };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Submit a few tasks, drain twice. The flaky task's retry is due after a backoff of 1.5-3 s,
 * beyond the clock's uncertainty (about a second), so the first drain leaves it to the next.
 */
async function submitAndDrain(w: Awaited<ReturnType<typeof startExample>>) {
  const ids = await Promise.all(
    ["a.png", "b.jpg", "c.webp"].map((image, i) =>
      w.submit("thumbnail", { image, width: 64 * (i + 1) }),
    ),
  );
  const flaky = await w.submit(
    "flaky",
    { n: 1 },
    // A backoff well past how long the first drain can take on a slow machine: a drain also
    // runs a retry that became due (or nearly: the server clock is known to 1 s) while it ran.
    { maxRetries: 2, backoff: { initialSeconds: 8, maxSeconds: 8, factor: 1 } },
  );
  const later = await w.submit("thumbnail", { image: "later.png" }, { delay: "1h" });
  expect((await w.task(ids[0]!)).status).toBe("pending");

  // Due times are judged by the server clock, known from one-second Date headers only as a low
  // estimate (up to 1 s behind): a task submitted this instant may not count as due yet.
  await sleep(1100);
  await w.cron();
  for (const id of ids) expect((await w.task(id)).status).toBe("completed");
  expect((await w.task(ids[1]!)).output).toEqual({ thumbnail: "b-128w.jpg", width: 128 });
  const afterFirst = await w.task(flaky);
  expect(afterFirst.status).toBe("pending");
  expect(afterFirst.attempt).toBe(1);
  expect(afterFirst.lastError?.message).toContain("upstream busy");
  expect((await w.task(later)).status).toBe("pending");

  // The next cron tick after the backoff runs the retry, which succeeds.
  await sleep(Math.max(0, Date.parse(afterFirst.availableAt) - Date.now()) + 1100);
  await w.cron();
  const done = await w.task(flaky);
  expect(done.status).toBe("completed");
  expect(done.attempt).toBe(2);
  expect(done.output).toEqual({ input: { n: 1 }, attempt: 2 });
  // The event log in the record tells the story on R2 too, which keeps no versions.
  expect(done.history.map((e) => [e.event, e.attempt])).toEqual([
    ["submitted", 0],
    ["claimed", 1],
    ["retry-scheduled", 1],
    ["claimed", 2],
    ["completed", 2],
  ]);
  expect(done.history[2]!.error).toContain("upstream busy");
  expect((await w.task(later)).status).toBe("pending");
  return { ids, flaky, later };
}

describe("Cloudflare Workers example (workerd via miniflare)", () => {
  it("R2 binding: fetch submits, the cron trigger drains, a retry runs on the next tick", async () => {
    const w = await startExample({ r2Buckets: ["QUEUE_R2"] });
    try {
      await submitAndDrain(w);
      const bad = await w.call("POST", "/tasks", { type: "no spaces allowed", input: 1 });
      expect(bad.status).toBe(400);
      // The tasks are plain objects in the bucket, under the queue's key layout.
      const bucket = (await w.mf.getR2Bucket("QUEUE_R2")) as unknown as {
        list(options: { prefix: string }): Promise<{ objects: unknown[] }>;
      };
      const listed = await bucket.list({ prefix: "" });
      expect(listed.objects.length).toBeGreaterThanOrEqual(5);
    } finally {
      await w.mf.dispose();
    }
  });

  if (minio !== undefined) {
    describe("MinIO over signed fetch", () => {
      const prefix = uniquePrefix("workers");
      const storage = () =>
        new S3Storage({
          endpoint: minio!.endpoint,
          bucket: minio!.bucket,
          region: minio!.region,
          accessKeyId: minio!.accessKeyId,
          secretAccessKey: minio!.secretAccessKey,
        });
      afterAll(() => removePrefix(storage(), prefix));

      it("submits from workerd, drains on cron, and Node reads the same tasks", async () => {
        const w = await startExample({ bindings: minioEnv(prefix) });
        try {
          const { ids, flaky, later } = await submitAndDrain(w);
          const queue = new Queue({ storage: storage(), prefix });
          for (const id of [...ids, flaky]) expect((await queue.get(id)).status).toBe("completed");
          // History is kept on a versioned bucket: submitted, claimed, completed at least.
          expect((await queue.getVersions(ids[0]!)).length).toBeGreaterThanOrEqual(3);
          const cancelled = await queue.cancel(later);
          expect(cancelled.status).toBe("cancelled");
          expect((await w.task(later)).status).toBe("cancelled");
        } finally {
          await w.mf.dispose();
        }
      });
    });
  }
});
