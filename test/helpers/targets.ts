/**
 * The storages every queue-level test runs against: memory, a temporary file store, and MinIO
 * when `OQ_TEST_S3_*` is set (each test gets its own prefix there and removes it afterwards).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStorage } from "../../src/runtime/file/storage.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import type { S3Fetch } from "../../src/storage/s3/options.ts";
import type { Storage, VersionInfo } from "../../src/storage/storage.ts";
import { versionsUnder } from "../../src/storage/versions.ts";
import { mapLimit } from "../../src/util/async.ts";

/** A storage plus its prefix for one test, and how to clean up after it. */
export interface TargetInstance {
  storage: Storage;
  prefix: string;
  /** The `--url` a CLI or worker subprocess would use to reach the same queue. */
  url?: string;
  /** Environment for a subprocess reaching the same queue. */
  env?: Record<string, string>;
  cleanup(): Promise<void>;
}

/** A kind of storage the suites run against. */
export interface Target {
  name: string;
  /** True when other processes can see the same data (file, S3). */
  shared: boolean;
  create(): Promise<TargetInstance>;
}

/** MinIO settings from `OQ_TEST_S3_*` variables (the environment, or an env file parsed). */
export const s3ConfigFrom = (e: Record<string, string | undefined> = process.env) => {
  if (
    !e.OQ_TEST_S3_ENDPOINT ||
    !e.OQ_TEST_S3_BUCKET ||
    !e.OQ_TEST_S3_ACCESS_KEY_ID ||
    !e.OQ_TEST_S3_SECRET_ACCESS_KEY
  ) {
    return undefined;
  }
  return {
    endpoint: e.OQ_TEST_S3_ENDPOINT,
    bucket: e.OQ_TEST_S3_BUCKET,
    unversionedBucket: e.OQ_TEST_S3_UNVERSIONED_BUCKET,
    region: e.OQ_TEST_S3_REGION ?? "us-east-1",
    accessKeyId: e.OQ_TEST_S3_ACCESS_KEY_ID,
    secretAccessKey: e.OQ_TEST_S3_SECRET_ACCESS_KEY,
  };
};

/** How to reach a test MinIO (the `OQ_TEST_S3_*` variables that `scripts/minio.sh` writes). */
export type S3Config = NonNullable<ReturnType<typeof s3ConfigFrom>>;

/** MinIO settings from the environment, when the S3 suite is enabled. */
export const s3Config = s3ConfigFrom();

/** A new S3 storage on the test bucket (or another bucket of the same server). */
export function testS3Storage(bucket?: string, fetch?: S3Fetch): S3Storage {
  return s3StorageOf(s3Config!, bucket, fetch);
}

/**
 * A new S3 storage on `c`'s test bucket (or another bucket of the same server), through `fetch`
 * (default: the global one).
 */
export function s3StorageOf(c: S3Config, bucket?: string, fetch?: S3Fetch): S3Storage {
  return new S3Storage({
    endpoint: c.endpoint,
    bucket: bucket ?? c.bucket,
    region: c.region,
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    ...(fetch === undefined ? {} : { fetch }),
  });
}

/** Every key under `prefix`, page by page. */
export async function keysUnder(storage: Storage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await storage.list({
      prefix,
      ...(token === undefined ? {} : { continuationToken: token }),
    });
    keys.push(...page.objects.map((o) => o.key));
    token = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (token !== undefined);
  return keys;
}

/** Delete every version of every key under `prefix`. */
export async function removePrefix(storage: Storage, prefix: string): Promise<void> {
  const all: VersionInfo[] = [];
  for await (const v of versionsUnder(storage, prefix)) all.push(v);
  await mapLimit(all, 64, (v) =>
    storage.deleteVersion ? storage.deleteVersion(v.key, v.versionId) : storage.delete(v.key),
  );
}

const unique = () => `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

export const memoryTarget: Target = {
  name: "memory",
  shared: false,
  async create() {
    return { storage: new MemoryStorage(), prefix: "", cleanup: async () => {} };
  },
};

export const fileTarget: Target = {
  name: "file",
  shared: true,
  async create() {
    const root = mkdtempSync(join(tmpdir(), "oq-test-"));
    return {
      storage: new FileStorage({ root }),
      prefix: "",
      url: `file:${root}`,
      env: { OQ_URL: `file:${root}` },
      cleanup: async () => rmSync(root, { recursive: true, force: true }),
    };
  },
};

/** The target of the MinIO `c` (each instance a fresh prefix of its test bucket). */
export function s3TargetOf(c: S3Config, name = "s3 (MinIO)"): Target {
  return {
    name,
    shared: true,
    async create() {
      const storage = s3StorageOf(c);
      const prefix = `${unique()}/`;
      return {
        storage,
        prefix,
        url: `s3://${c.bucket}/${prefix}?endpoint=${encodeURIComponent(c.endpoint)}&region=${c.region}`,
        env: {
          OQ_BUCKET: c.bucket,
          OQ_ENDPOINT: c.endpoint,
          OQ_REGION: c.region,
          OQ_PREFIX: prefix,
          AWS_ACCESS_KEY_ID: c.accessKeyId,
          AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
        },
        cleanup: () => removePrefix(storage, prefix),
      };
    },
  };
}

export const s3Target: Target | undefined =
  s3Config === undefined ? undefined : s3TargetOf(s3Config);

/** All targets available in this run. */
export const targets: Target[] = [memoryTarget, fileTarget, ...(s3Target ? [s3Target] : [])];

/** Targets other processes can share. */
export const sharedTargets: Target[] = targets.filter((t) => t.shared);
