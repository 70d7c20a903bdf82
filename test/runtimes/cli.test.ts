/**
 * The CLI from the TypeScript sources on the other runtimes: `deno run -A cli.ts submit ...`
 * submits, `bun cli.ts worker ...` runs the task and stops cleanly on SIGTERM, and
 * `deno run -A cli.ts status` sees the result. On the file store, and on MinIO when it is there.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { FileStorage } from "../../src/runtime/file/storage.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { removePrefix } from "../helpers/targets.ts";
import {
  BUN,
  DENO,
  FIXTURES,
  minio,
  ok,
  ROOT,
  show,
  start,
  tempDir,
  uniquePrefix,
} from "./helpers.ts";

const CLI = join(ROOT, "cli.ts");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface CliTarget {
  name: string;
  open(): {
    storage: Storage;
    prefix: string;
    url: string;
    env: Record<string, string>;
    remove?: () => void;
  };
  cleanup(t: { storage: Storage; prefix: string; remove?: () => void }): Promise<void>;
}

const targets: CliTarget[] = [
  {
    name: "file store",
    open() {
      const { dir, remove } = tempDir("cli-rt");
      const storage = new FileStorage({ root: dir });
      return { storage, prefix: "", url: `file:${dir}`, env: {}, remove };
    },
    cleanup: async (t) => t.remove?.(),
  },
];
if (minio !== undefined) {
  const m = minio;
  targets.push({
    name: "MinIO",
    open() {
      const prefix = uniquePrefix("cli");
      const storage = new S3Storage({
        endpoint: m.endpoint,
        bucket: m.bucket,
        region: m.region,
        accessKeyId: m.accessKeyId,
        secretAccessKey: m.secretAccessKey,
      });
      const url = `s3://${m.bucket}/${prefix}?endpoint=${encodeURIComponent(m.endpoint)}&region=${m.region}`;
      return {
        storage,
        prefix,
        url,
        env: { AWS_ACCESS_KEY_ID: m.accessKeyId, AWS_SECRET_ACCESS_KEY: m.secretAccessKey },
      };
    },
    cleanup: (t) => removePrefix(t.storage, t.prefix),
  });
}

describe.each(targets)("the CLI on Deno and Bun ($name)", (target) => {
  it("deno run -A cli.ts submit, bun cli.ts worker, deno run -A cli.ts status", async () => {
    const t = target.open();
    try {
      const env = { ...t.env, OQ_URL: t.url };
      const ids: string[] = [];
      for (const n of [1, 2]) {
        const out = await ok(
          DENO,
          ["run", "-A", CLI, "submit", "-t", "echo", "-i", JSON.stringify({ n, from: "deno" })],
          { env },
        );
        ids.push(out.trim());
      }
      const queue = new Queue({ storage: t.storage, prefix: t.prefix });
      for (const id of ids) expect((await queue.get(id)).status).toBe("pending");

      const worker = start(
        BUN,
        [CLI, "worker", join(FIXTURES, "tasks.ts"), "--concurrency", "2", "--grace", "2s"],
        { env, timeoutMs: 60_000 },
      );
      try {
        for (const id of ids) {
          for (let i = 0; i < 200 && (await queue.get(id)).status !== "completed"; i++) {
            await sleep(100);
          }
        }
        worker.child.kill("SIGTERM");
        const result = await worker.done;
        expect(result.code, show(result)).toBe(0);
      } finally {
        worker.child.kill("SIGKILL");
      }

      const status = JSON.parse(
        await ok(DENO, ["run", "-A", CLI, "status", ids[1]!, "--json"], { env }),
      ) as { status: string; output: unknown };
      expect(status).toMatchObject({
        status: "completed",
        output: { echoed: { n: 2, from: "deno" }, attempt: 1 },
      });
    } finally {
      await target.cleanup(t);
    }
  });
});
