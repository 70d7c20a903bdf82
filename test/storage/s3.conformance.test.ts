/**
 * The S3 driver against a real S3 server (MinIO in CI): the shared conformance suite plus the
 * failures only a real network can produce. Needs the `OQ_TEST_S3_*` variables that
 * `scripts/minio.sh start` writes to `.minio/env`; `npm run test:s3` does all of it.
 *
 * Without the variables no server test is registered; the unreachable and silent endpoint cases
 * need no S3 server and always run (vitest also fails a file that registers no test at all).
 */
import { createServer, type Socket } from "node:net";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { AccessDeniedError, AmbiguousWriteError, UnavailableError } from "../../src/errors.ts";
import { nodeFetch } from "../../src/runtime/node-fetch.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import type { S3Fetch, S3StorageOptions } from "../../src/storage/s3/options.ts";
import { rejection } from "../helpers/rejection.ts";
import { describeConformance } from "./conformance.ts";

const env = process.env;
const config =
  env.OQ_TEST_S3_ENDPOINT &&
  env.OQ_TEST_S3_BUCKET &&
  env.OQ_TEST_S3_ACCESS_KEY_ID &&
  env.OQ_TEST_S3_SECRET_ACCESS_KEY
    ? {
        endpoint: env.OQ_TEST_S3_ENDPOINT,
        bucket: env.OQ_TEST_S3_BUCKET,
        unversionedBucket: env.OQ_TEST_S3_UNVERSIONED_BUCKET || undefined,
        region: env.OQ_TEST_S3_REGION || "us-east-1",
        accessKeyId: env.OQ_TEST_S3_ACCESS_KEY_ID,
        secretAccessKey: env.OQ_TEST_S3_SECRET_ACCESS_KEY,
      }
    : undefined;

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A driver on the test MinIO of `c`, with `overrides`. */
function minioStorage(
  c: NonNullable<typeof config>,
  overrides: Partial<S3StorageOptions> = {},
): S3Storage {
  return new S3Storage({
    endpoint: c.endpoint,
    bucket: c.bucket,
    region: c.region,
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    ...overrides,
  });
}

/**
 * The HTTP clients the driver runs on: the global `fetch` (every runtime) and `node:http`
 * (`nodeFetch`, which the CLI and `oq/file` use on Node). Both must behave the same.
 */
const clients: { name: string; options: { fetch?: S3Fetch } }[] = [
  { name: "fetch", options: {} },
  { name: "node:http", options: { fetch: nodeFetch() } },
];

for (const client of clients) {
  describe(`s3 driver through ${client.name}, unreachable endpoint`, () => {
    it("connection refused is UnavailableError naming the host, after the retries", async () => {
      const port = await closedPort();
      const storage = new S3Storage({
        ...client.options,
        endpoint: `http://127.0.0.1:${port}`,
        bucket: "oq-nowhere",
        accessKeyId: "oq-test-key",
        secretAccessKey: "oq-test-secret-value",
        retries: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      });
      // Thunks, not promises: a promise created early would reject before anyone awaits it.
      for (const call of [
        () => storage.get("k"),
        () => storage.list(),
        () => storage.put("k", "x", { ifNoneMatch: "*" }),
      ]) {
        const e = await rejection(call());
        expect(e).toBeInstanceOf(UnavailableError);
        expect(e.message).toContain(`127.0.0.1:${port}`);
        expect(e.message).toContain("connection refused");
        expect(e.message).toContain("OQ_ENDPOINT");
        expect(e.message).not.toContain("oq-test-secret-value");
      }
      expect(storage.serverTime()).toBeUndefined();
    });
  });

  describe(`s3 driver through ${client.name}, silent endpoint`, () => {
    it("a server that accepts but never answers times out: Unavailable, or ambiguous for a CAS", async () => {
      // Accepts connections and reads requests, never responds: a hung proxy or overloaded server.
      const sockets = new Set<Socket>();
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.on("data", () => {});
        socket.on("close", () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      try {
        const storage = new S3Storage({
          ...client.options,
          endpoint: `http://127.0.0.1:${port}`,
          bucket: "oq-silent",
          accessKeyId: "oq-test-key",
          secretAccessKey: "oq-test-secret-value",
          requestTimeoutMs: 150,
          retries: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
        });
        const read = await rejection(storage.get("k"));
        expect(read).toBeInstanceOf(UnavailableError);
        expect(read.message).toContain("timed out after 150 ms");
        const cas = await rejection(storage.put("k", "x", { ifMatch: '"e"' }));
        expect(cas).toBeInstanceOf(AmbiguousWriteError);
        expect(cas.message).toContain("re-read");
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });

  if (config !== undefined) {
    const c = config;
    const make = (overrides: Partial<S3StorageOptions> = {}) =>
      minioStorage(c, { ...client.options, ...overrides });
    const wrongSecret = `${c.secretAccessKey.slice(0, -4)}XXXX`;
    const missingBucket = `oq-missing-${Date.now().toString(36)}`;

    describeConformance(`s3 (MinIO) through ${client.name}`, {
      storage: () => make(),
      expectedVersioning: "Enabled",
      deniedStorage: () => make({ secretAccessKey: wrongSecret }),
      missingBucketStorage: () => make({ bucket: missingBucket }),
      listsDeletedPrefixes: true,
      repeatsPrefixesOfOtherDelimiters: true,
    });

    const unversioned = c.unversionedBucket;
    if (unversioned !== undefined) {
      describeConformance(`s3 (MinIO, unversioned bucket) through ${client.name}`, {
        storage: () => make({ bucket: unversioned }),
        expectedVersioning: "Disabled",
        repeatsPrefixesOfOtherDelimiters: true,
      });
    }
  }
}

if (config === undefined) {
  console.warn(
    "S3 suite skipped: OQ_TEST_S3_* not set. Run it against MinIO with: npm run test:s3",
  );
} else {
  const c = config;
  const make = (overrides: Partial<S3StorageOptions> = {}) => minioStorage(c, overrides);
  const wrongSecret = `${c.secretAccessKey.slice(0, -4)}XXXX`;
  describe("s3 driver against MinIO", () => {
    it("rejected credentials never appear in the error, its JSON or the storage's", async () => {
      const denied = make({ secretAccessKey: wrongSecret });
      const e = await rejection(denied.get("oq-credential-check"));
      expect(e).toBeInstanceOf(AccessDeniedError);
      expect(e.s3Code).toBe("SignatureDoesNotMatch");
      expect(e.message).toContain("AWS_SECRET_ACCESS_KEY");
      for (const text of [
        e.message,
        JSON.stringify(e),
        inspect(e, { depth: 5 }),
        JSON.stringify(denied),
        inspect(denied, { depth: 5, showHidden: true }),
      ]) {
        expect(text).not.toContain(wrongSecret);
        expect(text).not.toContain(c.secretAccessKey);
      }
    });

    it("deleteMany removes existing keys, ignores missing ones and leaves the rest", async () => {
      const storage = make();
      const p = `oq-delete-many-${Date.now().toString(36)}/`;
      const doomed = ["a", "b & <c>", "sp ace+plus", "é/日本", "k'q\"x"].map((k) => p + k);
      for (const key of [...doomed, `${p}keep`]) await storage.put(key, "x");
      await storage.deleteMany([...doomed, `${p}never-existed`]);
      const left = await storage.list({ prefix: p });
      expect(left.objects.map((o) => o.key)).toEqual([`${p}keep`]);
      // Erase the history too, so the bucket stays clean for the next run.
      for (;;) {
        const page = await storage.listVersions({ prefix: p });
        await Promise.all(page.versions.map((v) => storage.deleteVersion(v.key, v.versionId)));
        if (!page.isTruncated) break;
      }
      expect((await storage.listVersions({ prefix: p })).versions).toEqual([]);
    });

    it("deleteVersions removes the named versions for good: no delete marker, other versions kept", async () => {
      const storage = make();
      const p = `oq-delete-versions-${Date.now().toString(36)}/`;
      const a = await storage.put(`${p}a & <b>`, "x");
      const b1 = await storage.put(`${p}b`, "1");
      const b2 = await storage.put(`${p}b`, "2");
      await storage.deleteVersions([
        { key: `${p}a & <b>`, versionId: a.versionId! },
        { key: `${p}b`, versionId: b2.versionId! },
        { key: `${p}b`, versionId: "00000000-0000-0000-0000-000000000000" },
      ]);
      const left = (await storage.listVersions({ prefix: p })).versions;
      expect(left.map((v) => [v.key, v.versionId, v.isDeleteMarker])).toEqual([
        [`${p}b`, b1.versionId, false],
      ]);
      expect(new TextDecoder().decode((await storage.get(`${p}b`)).body)).toBe("1");
      await storage.deleteVersion(`${p}b`, b1.versionId!);
    });

    it("a local clock an hour off is corrected from the server's Date header", async () => {
      // MinIO, like AWS, refuses signatures more than 15 minutes off with RequestTimeTooSkewed.
      const skewed = make({ now: () => Date.now() + 3_600_000 });
      await skewed.versioning();
      const t = skewed.serverTime()!;
      expect(t.localMs - t.serverMs).toBeGreaterThan(3_500_000);
      await skewed.list({ prefix: "oq-skew-check/", maxKeys: 1 });
    });

    it("the server clock from the Date header is close to the local one", async () => {
      const storage = make();
      await storage.versioning();
      const t = storage.serverTime()!;
      // Same machine: only the Date header's one-second resolution separates the clocks.
      expect(Math.abs(t.serverMs - t.localMs)).toBeLessThan(2500);
    });
  });
}
