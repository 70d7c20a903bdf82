/**
 * `connect()`: a queue from options, `OQ_*` variables or a URL, after checking that the bucket
 * keeps history (versioning Enabled) unless told otherwise.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { checkKnownKeys } from "./options.ts";
import { QUEUE_OPTION_KEYS } from "./queue/internals.ts";
import { Queue } from "./queue/queue.ts";
import type { QueueOptions } from "./queue/types.ts";
import { MemoryStorage } from "./storage/memory.ts";
import { S3Storage } from "./storage/s3/driver.ts";
import type { S3Fetch, S3StorageOptions } from "./storage/s3/options.ts";
import type { Storage } from "./storage/storage.ts";

/** Options of {@link connect}. Explicit options win over `url`, which wins over `env`. */
export interface ConnectOptions extends Omit<QueueOptions, "storage"> {
  /** Use this storage as is. */
  storage?: Storage;
  /**
   * Where the queue lives: `s3://bucket/prefix?endpoint=http://host:9000&region=eu-west-1`,
   * `memory:` (in-process, for tests), or `file:./.oq` (needs the `oq/file` entry point).
   */
  url?: string;
  /** S3 bucket (env `OQ_BUCKET`). */
  bucket?: string;
  /** S3 endpoint URL (env `OQ_ENDPOINT`). Default: AWS. */
  endpoint?: string;
  /** S3 region (env `OQ_REGION`). Default `us-east-1`. */
  region?: string;
  /** Access key id (env `AWS_ACCESS_KEY_ID`). */
  accessKeyId?: string;
  /** Secret access key (env `AWS_SECRET_ACCESS_KEY`). */
  secretAccessKey?: string;
  /** Session token (env `AWS_SESSION_TOKEN`). */
  sessionToken?: string;
  /** Path-style bucket addressing (env `OQ_FORCE_PATH_STYLE`). */
  forcePathStyle?: boolean;
  /** The fetch the S3 driver uses. */
  fetch?: S3Fetch;
  /**
   * Environment variables to read (`OQ_URL`, `OQ_BUCKET`, `OQ_ENDPOINT`, `OQ_REGION`, `OQ_PREFIX`,
   * `OQ_ALLOW_NO_VERSIONING`, `AWS_*`). The portable core never reads the process environment
   * itself; pass the environment object of Node, Bun or Deno, or a Worker's `env`.
   */
  env?: Record<string, string | undefined>;
  /**
   * Run on a bucket without versioning (env `OQ_ALLOW_NO_VERSIONING=1`); `getVersions` then shows
   * only the current version (`getHistory`, the event log kept in each task, is unaffected).
   */
  allowNoVersioning?: boolean;
  /** Skip the versioning check entirely (one GET saved; for short-lived submitters). */
  skipVersioningCheck?: boolean;
  /** Opens `file:` URLs and the no-bucket default; supplied by the `oq/file` entry point. */
  openFile?: (path: string) => Storage;
}

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes)$/i.test(v.trim());

function pick(env: Record<string, string | undefined>, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** Resolve options to a storage and a prefix, without touching the network. */
export function resolveStorage(options: ConnectOptions = {}): {
  storage: Storage;
  prefix: string | undefined;
} {
  const env = options.env ?? {};
  let prefix = options.prefix ?? pick(env, "OQ_PREFIX");
  if (options.storage !== undefined) return { storage: options.storage, prefix };
  const url = options.url ?? (options.bucket === undefined ? pick(env, "OQ_URL") : undefined);
  if (url !== undefined) {
    if (url === "memory:" || url.startsWith("memory:"))
      return { storage: new MemoryStorage(), prefix };
    if (url.startsWith("file:")) {
      if (options.openFile === undefined) {
        throw new ConfigError(
          `${url}: the file store needs a filesystem; import connect from "oq/file" (Node, Bun, Deno).`,
        );
      }
      const path = url.startsWith("file://")
        ? decodeURIComponent(new URL(url).pathname)
        : url.slice("file:".length) || "./.oq";
      return { storage: options.openFile(path), prefix };
    }
    if (url.startsWith("s3://")) {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new ConfigError(
          `Malformed queue URL ${url}: expected s3://bucket/prefix?endpoint=...&region=...`,
        );
      }
      if (parsed.hostname === "")
        throw new ConfigError(
          `Queue URL ${url} names no bucket: use s3://bucket/prefix?endpoint=...&region=...`,
        );
      const urlPrefix = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
      if (urlPrefix !== "") prefix = options.prefix ?? urlPrefix;
      const s3 = s3Options(options, env, {
        bucket: parsed.hostname,
        endpoint: parsed.searchParams.get("endpoint") ?? undefined,
        region: parsed.searchParams.get("region") ?? undefined,
        forcePathStyle: parsed.searchParams.has("pathStyle")
          ? truthy(parsed.searchParams.get("pathStyle") ?? "")
          : undefined,
      });
      return { storage: new S3Storage(s3), prefix };
    }
    throw new ConfigError(
      `Unknown queue URL ${url}: use s3://bucket/prefix?endpoint=..., file:./dir or memory:.`,
    );
  }
  const bucket = options.bucket ?? pick(env, "OQ_BUCKET");
  if (bucket === undefined) {
    if (options.openFile !== undefined) return { storage: options.openFile("./.oq"), prefix };
    throw new ConfigError(
      "No queue configured: set OQ_BUCKET (with OQ_ENDPOINT, OQ_REGION and AWS credentials), pass { bucket } or { url }, or use memory:.",
    );
  }
  return { storage: new S3Storage(s3Options(options, env, { bucket })), prefix };
}

function s3Options(
  options: ConnectOptions,
  env: Record<string, string | undefined>,
  fromUrl: {
    bucket: string;
    endpoint?: string | undefined;
    region?: string | undefined;
    forcePathStyle?: boolean | undefined;
  },
): S3StorageOptions {
  const out: S3StorageOptions = {
    bucket: options.bucket ?? fromUrl.bucket,
    accessKeyId: options.accessKeyId ?? pick(env, "AWS_ACCESS_KEY_ID") ?? "",
    secretAccessKey: options.secretAccessKey ?? pick(env, "AWS_SECRET_ACCESS_KEY") ?? "",
  };
  const endpoint = options.endpoint ?? fromUrl.endpoint ?? pick(env, "OQ_ENDPOINT");
  if (endpoint !== undefined) out.endpoint = endpoint;
  const region =
    options.region ?? fromUrl.region ?? pick(env, "OQ_REGION") ?? pick(env, "AWS_REGION");
  if (region !== undefined) out.region = region;
  const sessionToken = options.sessionToken ?? pick(env, "AWS_SESSION_TOKEN");
  if (sessionToken !== undefined) out.sessionToken = sessionToken;
  const pathStyleEnv = pick(env, "OQ_FORCE_PATH_STYLE");
  const forcePathStyle =
    options.forcePathStyle ??
    fromUrl.forcePathStyle ??
    (pathStyleEnv === undefined ? undefined : truthy(pathStyleEnv));
  if (forcePathStyle !== undefined) out.forcePathStyle = forcePathStyle;
  if (options.fetch !== undefined) out.fetch = options.fetch;
  if (options.now !== undefined) out.now = options.now;
  return out;
}

/** Every key of {@link ConnectOptions} (the type makes the list whole). */
const CONNECT_OPTION_KEYS: Record<keyof ConnectOptions, true> = {
  ...QUEUE_OPTION_KEYS,
  url: true,
  bucket: true,
  endpoint: true,
  region: true,
  accessKeyId: true,
  secretAccessKey: true,
  sessionToken: true,
  forcePathStyle: true,
  fetch: true,
  env: true,
  allowNoVersioning: true,
  skipVersioningCheck: true,
  openFile: true,
};

/**
 * Open a queue. Checks that bucket versioning is Enabled (version history depends on it) and
 * refuses otherwise, unless `allowNoVersioning` / `OQ_ALLOW_NO_VERSIONING=1` is set, which logs
 * that version history is unavailable (each task's event log, `getHistory`, works regardless).
 */
export async function connect(options: ConnectOptions | string = {}): Promise<Queue> {
  const { queue, checked } = connectInSteps(options);
  await checked;
  return queue;
}

/**
 * {@link connect} in two steps: the queue at once, and its versioning check to await. A worker
 * process reads what it needs before its first claim (doctor's verdict, the manifest) while the
 * check runs, instead of one round trip after another. Use nothing of the queue before
 * `checked` has resolved but reads whose result it discards when `checked` rejects.
 *
 * @internal
 */
export function connectInSteps(options: ConnectOptions | string = {}): {
  queue: Queue;
  checked: Promise<void>;
} {
  const opts: ConnectOptions = typeof options === "string" ? { url: options } : options;
  checkKnownKeys(opts, CONNECT_OPTION_KEYS, "connect options");
  const { storage, prefix } = resolveStorage(opts);
  const queueOptions: QueueOptions = { storage };
  for (const key of Object.keys(QUEUE_OPTION_KEYS) as (keyof QueueOptions)[])
    if (key !== "storage" && opts[key] !== undefined)
      Object.assign(queueOptions, { [key]: opts[key] });
  if (prefix !== undefined) queueOptions.prefix = prefix;
  const queue = new Queue(queueOptions);
  return {
    queue,
    checked: opts.skipVersioningCheck ? Promise.resolve() : checkVersioning(queue, opts),
  };
}

/** Refuse a bucket whose versioning is not Enabled, unless allowed (then warn). */
async function checkVersioning(queue: Queue, opts: ConnectOptions): Promise<void> {
  // Through the queue's storage, so that a queue with metrics counts this GET too.
  const status = await queue.storage.versioning();
  if (status === "Enabled") return;
  const allowed = opts.allowNoVersioning ?? truthy(opts.env?.OQ_ALLOW_NO_VERSIONING);
  if (!allowed) {
    throw new ConfigError(
      `Bucket versioning is ${status} on ${queue.storage.name}; oq keeps every version of a task as its full history. Enable it (aws s3api put-bucket-versioning --bucket <bucket> --versioning-configuration Status=Enabled) or set OQ_ALLOW_NO_VERSIONING=1 to run without version history (each task's own event log, \`oq history\`, still works).`,
    );
  }
  queue.logger.warn(
    `bucket versioning is ${status} on ${queue.storage.name}: version history is unavailable (getVersions, oq history --versions); each task's event log is kept`,
  );
}
