/**
 * Bun (the `bun` devDependency): the lifecycle scenario importing the TypeScript sources, on the
 * file store and on MinIO, and the example Bun.serve server with an embedded worker.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileStorage } from "../../src/runtime/file/storage.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import { removePrefix } from "../helpers/targets.ts";
import { checkEmbeddedServer } from "./embed.ts";
import {
  BUN,
  devDependency,
  expectScenario,
  FIXTURES,
  minio,
  minioEnv,
  ok,
  ROOT,
  runScenario,
  start,
  tempDir,
  uniquePrefix,
} from "./helpers.ts";

describe("Bun", () => {
  it("is the pinned version (the `bun` devDependency, as the README's runtime table says)", async () => {
    expect((await ok(BUN, ["--version"])).trim()).toBe(devDependency("bun"));
  });

  it("runs submit, claim, complete, retry and cancel on the file store", async () => {
    const { dir, remove } = tempDir("bun-file");
    try {
      const { report, exitLagMs } = await runScenario(BUN, [join(FIXTURES, "scenario-bun.ts")], {
        env: { OQ_RT_STORE: "file", OQ_RT_ROOT: dir },
      });
      expectScenario(report, /^bun 1\./, "file");
      expect(exitLagMs, "exits on its own once the worker stopped").toBeLessThan(3000);
    } finally {
      remove();
    }
  });

  if (minio !== undefined) {
    it("runs submit, claim, complete, retry and cancel on MinIO", async () => {
      const prefix = uniquePrefix("bun");
      try {
        const { report, exitLagMs } = await runScenario(BUN, [join(FIXTURES, "scenario-bun.ts")], {
          env: { OQ_RT_STORE: "s3", ...minioEnv(prefix) },
        });
        expectScenario(report, /^bun 1\./, "s3");
        expect(exitLagMs, "exits on its own once the worker stopped").toBeLessThan(3000);
        expect(report.storage).toBe(`s3://${minio!.bucket}`);
      } finally {
        await removePrefix(s3(), prefix);
      }
    });
  }

  it("embeds a worker in Bun.serve and shuts down gracefully on SIGTERM", async () => {
    const { dir, remove } = tempDir("bun-serve");
    try {
      await checkEmbeddedServer(
        (env) => start(BUN, [join(ROOT, "examples/bun/server.ts")], { env, timeoutMs: 90_000 }),
        { storage: new FileStorage({ root: dir }), prefix: "", env: { OQ_URL: `file:${dir}` } },
      );
    } finally {
      remove();
    }
  });
});

function s3(): S3Storage {
  return new S3Storage({
    endpoint: minio!.endpoint,
    bucket: minio!.bucket,
    region: minio!.region,
    accessKeyId: minio!.accessKeyId,
    secretAccessKey: minio!.secretAccessKey,
  });
}
