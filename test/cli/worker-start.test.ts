/**
 * How `oq worker` starts on MinIO: it reads doctor's verdict and the manifest while the bucket's
 * versioning check is still out (one round trip before its first listing, not three), and it
 * still claims nothing before the verdict is in, and nothing at all when that verdict is unsafe.
 * A proxy in front of MinIO holds the versioning answer and records when each request arrived.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import { cleanEnv, runOq, startOq } from "../helpers/cli.ts";
import { removePrefix, type S3Config, s3Config, testS3Storage } from "../helpers/targets.ts";
import { storeVerdict } from "../helpers/verdict.ts";
import { until } from "../helpers/wait.ts";

/** How long the proxy holds the answer to the versioning check. */
const HOLD_MS = 800;

interface Seen {
  method: string;
  url: string;
  ifMatch: boolean;
  arrivedAt: number;
  answeredAt?: number;
}

/**
 * A proxy to MinIO that records every request and holds the answer to the first `?versioning`
 * request (the worker's check) {@link HOLD_MS}.
 */
async function recordingProxy(
  target: string,
): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const to = new URL(target);
  const seen: Seen[] = [];
  let held = false;
  const server: Server = createServer((req: IncomingMessage, res) => {
    const entry: Seen = {
      method: req.method ?? "",
      url: decodeURIComponent(req.url ?? ""),
      ifMatch: req.headers["if-match"] !== undefined,
      arrivedAt: Date.now(),
    };
    seen.push(entry);
    // Only the first: doctor checks versioning too, and its probes must be free to run.
    const hold = entry.url.includes("?versioning") && !held ? HOLD_MS : 0;
    if (hold > 0) held = true;
    const upstream = request(
      {
        host: to.hostname,
        port: to.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        setTimeout(() => {
          entry.answeredAt = Date.now();
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        }, hold);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function queueAt(c: S3Config, endpoint: string, prefix: string, bucket = c.bucket): Queue {
  const storage = new S3Storage({
    endpoint,
    bucket,
    region: c.region,
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
  });
  return new Queue({ storage, prefix });
}

/** Wait for task `id` to complete (a spawned worker's start takes a second or two). */
function completed(queue: Queue, id: string): Promise<void> {
  return until(
    "the task completed",
    async () => (await queue.read(id))?.task.status === "completed",
    30_000,
  );
}

function workerEnv(
  c: S3Config,
  endpoint: string,
  prefix: string,
  bucket = c.bucket,
): Record<string, string> {
  return cleanEnv({
    NO_COLOR: "1",
    OQ_ENDPOINT: endpoint,
    OQ_BUCKET: bucket,
    OQ_REGION: c.region,
    OQ_PREFIX: prefix,
    AWS_ACCESS_KEY_ID: c.accessKeyId,
    AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
  });
}

describe.runIf(s3Config !== undefined)("oq worker's start on MinIO", () => {
  const c = s3Config!;
  const prefixes: string[] = [];
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "oq-worker-start-"));
    writeFileSync(join(dir, "tasks.mjs"), "export default { t: () => 'done' };\n");
  });
  afterAll(async () => {
    for (const prefix of prefixes) await removePrefix(testS3Storage(), prefix);
    rmSync(dir, { recursive: true, force: true });
  });
  const fresh = (name: string) => {
    const prefix = `${name}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/`;
    prefixes.push(prefix);
    return prefix;
  };

  it("reads the verdict and the manifest while the versioning check is out, and claims only after the verdict", async () => {
    const proxy = await recordingProxy(c.endpoint);
    try {
      const prefix = fresh("start-overlap");
      const queue = queueAt(c, proxy.url, prefix);
      await storeVerdict(queue, "safe");
      const task = await queue.submit("t", 1);
      proxy.seen.length = 0;
      const worker = startOq(["worker", "tasks.mjs", "--summary-interval", "0"], {
        cwd: dir,
        env: workerEnv(c, proxy.url, prefix),
      });
      try {
        await completed(queue, task.id);
      } finally {
        worker.child.kill("SIGTERM");
        await worker.exited;
      }
      const first = (test: (s: Seen) => boolean, what: string): Seen => {
        const found = proxy.seen.find(test);
        if (found === undefined)
          throw new Error(`no ${what} among ${proxy.seen.map((s) => s.url).join(", ")}`);
        return found;
      };
      const versioning = first((s) => s.url.includes("?versioning"), "versioning check");
      const verdictRead = first(
        (s) => s.method === "GET" && s.url.includes("/_doctor/verdict-"),
        "verdict read",
      );
      const manifestRead = first(
        (s) => s.method === "GET" && s.url.endsWith(`/${prefix}queue.json`),
        "manifest read",
      );
      const claim = first(
        (s) => s.method === "PUT" && s.ifMatch && s.url.includes(`/${prefix}tasks/`),
        "claim",
      );
      // Both reads went out before the versioning answer was let through.
      expect(verdictRead.arrivedAt).toBeLessThan(versioning.answeredAt!);
      expect(manifestRead.arrivedAt).toBeLessThan(versioning.answeredAt!);
      // And no claim before the verdict was in.
      expect(claim.arrivedAt).toBeGreaterThanOrEqual(verdictRead.answeredAt!);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it.runIf(c?.unversionedBucket !== undefined)(
    "probes nothing on a bucket it refuses (versioning off), though no verdict is cached",
    async () => {
      const bucket = c.unversionedBucket!;
      const proxy = await recordingProxy(c.endpoint);
      try {
        const prefix = fresh("start-refused");
        const run = await runOq(["worker", "tasks.mjs", "--summary-interval", "0"], {
          cwd: dir,
          env: workerEnv(c, proxy.url, prefix, bucket),
        });
        expect(run.code, run.stderr).not.toBe(0);
        expect(run.stderr).toMatch(/versioning is/i);
        // The verdict was looked for while the versioning answer was held; doctor's probes,
        // which write under _doctor/, waited for that answer and never ran.
        expect(proxy.seen.some((s) => s.url.includes("/_doctor/verdict-"))).toBe(true);
        expect(proxy.seen.filter((s) => s.method !== "GET").map((s) => s.url)).toEqual([]);
        const storage = queueAt(c, c.endpoint, prefix, bucket).storage;
        expect((await storage.list({ prefix })).objects).toEqual([]);
      } finally {
        await proxy.close();
      }
    },
    60_000,
  );

  it("creates the manifest of a new queue once the check passed, and runs a task submitted then", async () => {
    const prefix = fresh("start-new");
    const queue = queueAt(c, c.endpoint, prefix);
    await storeVerdict(queue, "safe");
    const worker = startOq(["worker", "tasks.mjs", "--summary-interval", "0"], {
      cwd: dir,
      env: workerEnv(c, c.endpoint, prefix),
    });
    try {
      await worker.waitFor(/Worker w-/, 30_000);
      const manifest = await queue.storage.get(queue.keys.manifest);
      expect(JSON.parse(new TextDecoder().decode(manifest.body))).toMatchObject({ oq: "queue" });
      const task = await queue.submit("t", 1);
      await completed(queue, task.id);
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
  }, 60_000);

  it("claims nothing, and exits 1, when the cached verdict is unsafe", async () => {
    const prefix = fresh("start-unsafe");
    const queue = queueAt(c, c.endpoint, prefix);
    await storeVerdict(queue, "unsafe");
    const task = await queue.submit("t", 1);
    const run = await runOq(["worker", "tasks.mjs", "--summary-interval", "0"], {
      cwd: dir,
      env: workerEnv(c, c.endpoint, prefix),
    });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/oq doctor/);
    const after = await queue.read(task.id);
    expect(after?.task.status).toBe("pending");
    expect(after?.task.attempt).toBe(0);
  }, 60_000);
});
