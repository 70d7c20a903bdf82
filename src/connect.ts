/**
 * `connect()`: a queue from options, `OQ_*` variables or a URL, after checking that the bucket
 * keeps history (versioning Enabled) unless told otherwise.
 *
 * @module
 */
import { ConfigError, ValidationError } from "./errors.ts";
import { checkKnownKeys } from "./options.ts";
import { QUEUE_OPTION_KEYS } from "./queue/internals.ts";
import { Queue } from "./queue/queue.ts";
import type { QueueOptions } from "./queue/types.ts";
import { booleanWord, parseQueueUrl } from "./queue-url.ts";
import { MemoryStorage } from "./storage/memory.ts";
import { S3Storage } from "./storage/s3/driver.ts";
import type { S3Fetch, S3StorageOptions } from "./storage/s3/options.ts";
import type { Storage } from "./storage/storage.ts";
import { redactUrl } from "./util/redact.ts";

/** Options of {@link connect}. Explicit options win over `url`, which wins over `env`. */
export interface ConnectOptions extends Omit<QueueOptions, "storage"> {
  /** Use this storage as is. */
  storage?: Storage;
  /**
   * Where the queue lives: `s3://bucket/prefix?endpoint=http://host:9000&region=eu-west-1`
   * (`&pathStyle=true` too), `memory:` (in-process, for tests), or `file:./.oq` / `file:///abs`
   * (needs the `oq/file` entry point). It names the whole location, so `bucket` beside it is
   * refused (and `endpoint`, `region`, `forcePathStyle` beside `memory:` or `file:`), as are
   * credentials in it (`s3://key:secret@...`), unknown parameters, and a `file://host/...`.
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

function pick(env: Record<string, string | undefined>, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** A yes/no variable of `env`: unset or empty is `undefined`, an unknown word is refused. */
function envBoolean(env: Record<string, string | undefined>, name: string): boolean | undefined {
  const v = pick(env, name);
  return v === undefined ? undefined : booleanWord(v, name);
}

/** The connect options that must be booleans when given. */
const BOOLEAN_OPTIONS = ["forcePathStyle", "allowNoVersioning", "skipVersioningCheck"] as const;

/** The options that say where in S3 the queue is, which a queue URL says by itself. */
const S3_LOCATION_OPTIONS = ["bucket", "endpoint", "region", "forcePathStyle"] as const;

/**
 * Refuse options that would be silently misread: a non-boolean where a boolean belongs (the
 * string `"false"` is truthy, so `allowNoVersioning: "false"` allowed an unversioned bucket), and
 * location options beside a `url` that settles them (`memory:` with a bucket used no bucket).
 */
function checkOptions(options: ConnectOptions): void {
  for (const name of BOOLEAN_OPTIONS) {
    const value = options[name];
    if (value !== undefined && typeof value !== "boolean")
      throw new ValidationError(
        `Invalid connect option ${name} ${JSON.stringify(value)}: use true or false.`,
      );
  }
  if (options.url === undefined || options.storage !== undefined) return;
  const isS3 = options.url.startsWith("s3://");
  // An s3:// URL leaves endpoint, region and path style to options or the environment.
  const clashing = isS3 ? (["bucket"] as const) : S3_LOCATION_OPTIONS;
  for (const name of clashing) {
    if (options[name] !== undefined)
      throw new ValidationError(
        `Both url and ${name} are given, but the URL names the whole location${isS3 ? " (its bucket is the host)" : ` (${options.url.split(":")[0]}: has no ${name})`}: drop one of them.`,
      );
  }
}

/** Resolve options to a storage and a prefix, without touching the network. */
export function resolveStorage(options: ConnectOptions = {}): {
  storage: Storage;
  prefix: string | undefined;
} {
  checkOptions(options);
  const env = options.env ?? {};
  let prefix = options.prefix ?? pick(env, "OQ_PREFIX");
  if (options.storage !== undefined) return { storage: options.storage, prefix };
  const url = options.url ?? (options.bucket === undefined ? pick(env, "OQ_URL") : undefined);
  if (url !== undefined) {
    const location = parseQueueUrl(url);
    if (location.kind === "memory") return { storage: new MemoryStorage(), prefix };
    if (location.kind === "file") {
      if (options.openFile === undefined) {
        throw new ConfigError(
          `${redactUrl(url)}: the file store needs a filesystem; import connect from "oq/file" (Node, Bun, Deno).`,
        );
      }
      return { storage: options.openFile(location.path), prefix };
    }
    if (location.prefix !== "") prefix = options.prefix ?? location.prefix;
    const s3 = s3Options(options, env, location);
    return { storage: new S3Storage(s3), prefix };
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
  const forcePathStyle =
    options.forcePathStyle ?? fromUrl.forcePathStyle ?? envBoolean(env, "OQ_FORCE_PATH_STYLE");
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
  // Checked now, not only when a bucket turns out unversioned: a typo must not wait for that.
  if (opts.allowNoVersioning === undefined) envBoolean(opts.env ?? {}, "OQ_ALLOW_NO_VERSIONING");
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
  const allowed =
    opts.allowNoVersioning ?? envBoolean(opts.env ?? {}, "OQ_ALLOW_NO_VERSIONING") ?? false;
  if (!allowed) {
    throw new ConfigError(
      `Bucket versioning is ${status} on ${queue.storage.name}; oq keeps every version of a task as its full history. Enable it (aws s3api put-bucket-versioning --bucket <bucket> --versioning-configuration Status=Enabled) or set OQ_ALLOW_NO_VERSIONING=1 to run without version history (each task's own event log, \`oq history\`, still works).`,
    );
  }
  queue.logger.warn(
    `bucket versioning is ${status} on ${queue.storage.name}: version history is unavailable (getVersions, oq history --versions); each task's event log is kept`,
  );
}
