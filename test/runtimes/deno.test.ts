/**
 * Deno 2 (the `deno` devDependency): the lifecycle scenario importing `@oq/oq` as deno.json
 * names it, with the narrowest permissions each store needs (the file store: read and write of
 * its directory; S3: the network), the portable core with no permissions at all, and the example
 * Deno.serve server with an embedded worker.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileStorage } from "../../src/runtime/file/storage.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import { removePrefix } from "../helpers/targets.ts";
import { checkEmbeddedServer, type EmbedTarget } from "./embed.ts";
import {
  DENO,
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

/** Deno without prompts (a missing permission fails instead of waiting for a terminal). */
const deno = (args: string[]) => ["run", "--no-prompt", ...args];

describe("Deno", () => {
  it("is the pinned Deno 2 (the `deno` devDependency, as the README's runtime table says)", async () => {
    expect(await ok(DENO, ["--version"])).toMatch(
      new RegExp(`^deno ${devDependency("deno").replaceAll(".", "\\.")} `),
    );
  });

  it("runs submit, claim, complete, retry and cancel on the file store (read/write of its directory only)", async () => {
    const { dir, remove } = tempDir("deno-file");
    try {
      const { report, exitLagMs } = await runScenario(
        DENO,
        deno([
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          "--allow-env",
          join(FIXTURES, "scenario-deno.ts"),
        ]),
        { env: { OQ_RT_STORE: "file", OQ_RT_ROOT: dir } },
      );
      expectScenario(report, /^deno 2\./, "file");
      expect(exitLagMs, "exits on its own once the worker stopped").toBeLessThan(3000);
    } finally {
      remove();
    }
  });

  if (minio !== undefined) {
    it("runs submit, claim, complete, retry and cancel on MinIO (network permission only)", async () => {
      const prefix = uniquePrefix("deno");
      const host = new URL(minio!.endpoint).host;
      try {
        const { report, exitLagMs } = await runScenario(
          DENO,
          deno([`--allow-net=${host}`, "--allow-env", join(FIXTURES, "scenario-deno.ts")]),
          { env: { OQ_RT_STORE: "s3", ...minioEnv(prefix) } },
        );
        expectScenario(report, /^deno 2\./, "s3");
        expect(exitLagMs, "exits on its own once the worker stopped").toBeLessThan(3000);
      } finally {
        await removePrefix(s3(), prefix);
      }
    });
  }

  it("loads and runs the portable core with no permissions at all", async () => {
    const out = await ok(DENO, deno([join(FIXTURES, "memory-deno.ts")]));
    expect(JSON.parse(out.trim())).toEqual({ status: "completed", output: { doubled: 42 } });
  });

  it("embeds a worker in Deno.serve and shuts down gracefully on SIGTERM", async () => {
    const { dir, remove } = tempDir("deno-serve");
    const prefix = uniquePrefix("deno-serve");
    // On MinIO when it is there (network only), else on the file store.
    const target: EmbedTarget =
      minio === undefined
        ? { storage: new FileStorage({ root: dir }), prefix: "", env: { OQ_URL: `file:${dir}` } }
        : { storage: s3(), prefix, env: minioEnv(prefix) };
    try {
      await checkEmbeddedServer(
        (env) =>
          start(
            DENO,
            deno([
              "--allow-net",
              "--allow-env",
              `--allow-read=${dir}`,
              `--allow-write=${dir}`,
              join(ROOT, "examples/deno/server.ts"),
            ]),
            { env, timeoutMs: 90_000 },
          ),
        target,
      );
    } finally {
      remove();
      if (minio !== undefined) await removePrefix(s3(), prefix);
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
