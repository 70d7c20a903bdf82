/**
 * Configuration of the S3 driver: the options it takes, their defaults, and validation that
 * names the option (or environment variable) to fix. Credentials never reach a message.
 *
 * @module
 */
import { ConfigError } from "../../errors.ts";
import type { RetryPolicy } from "../../retry.ts";
import { sleep } from "../../util/async.ts";
import { redactor } from "../../util/redact.ts";
import { type Endpoint, parseEndpoint } from "./url.ts";

/** The subset of `fetch` the driver calls: always a URL string and a plain init object. */
export type S3Fetch = (url: string, init: RequestInit) => Promise<S3Response>;

/** One read of an {@link S3Body}: a chunk, or the end (as a web stream reader's `read()`). */
export type S3BodyChunk = { done: false; value: Uint8Array } | { done: true; value?: undefined };

/**
 * A body read chunk by chunk, as a web stream's reader reads one: what `nodeFetch` gives in place
 * of a web `ReadableStream` (lighter, see src/runtime/node-body.ts).
 */
export interface S3BodyReader {
  /** The next chunk, or the end. */
  read(): Promise<S3BodyChunk>;
  /** Stop reading: the rest of the body is dropped unread (the connection is not drained). */
  cancel(): Promise<void>;
}

/** A response body as the driver reads it within a bound: a web stream, or an {@link S3BodyReader}. */
export type S3Body = ReadableStream<Uint8Array> | S3BodyReader;

/**
 * What the S3 driver reads of an answer: a subset of the web `Response`, so the global `fetch`
 * fits {@link S3Fetch} as it is, and so does a client of a runtime's own (see `oq/file`).
 */
export interface S3Response {
  /** The HTTP status. */
  status: number;
  /** The answer's headers, read case-insensitively (`null` when absent). */
  headers: { get(name: string): string | null };
  /**
   * The body as a stream, as the web `Response` has it (or anything that reads like one, see
   * {@link S3Body}). Optional: without it a read with `maxBytes` can only refuse an object by its
   * `Content-Length`, or after reading it whole.
   */
  readonly body?: S3Body | null;
  /** The whole body. */
  arrayBuffer(): Promise<ArrayBuffer>;
  /** The whole body as UTF-8 text. */
  text(): Promise<string>;
}

/** Retry policy of {@link S3StorageOptions}: exponential backoff with full jitter. */
export interface S3RetryOptions {
  /** Total tries per request, including the first. `1` disables retries. Defaults to 4. */
  attempts?: number;
  /** Backoff before the first retry, before jitter. Defaults to 100 ms. */
  baseDelayMs?: number;
  /** Upper bound of any single backoff. Defaults to 5000 ms. */
  maxDelayMs?: number;
  /** Source of jitter in [0, 1). Defaults to `Math.random`; inject for deterministic tests. */
  random?: () => number;
  /** Waits between tries. Defaults to `setTimeout`; inject for fast tests. */
  sleep?: (ms: number) => Promise<void>;
}

/** Options of the S3 storage (`S3Storage`). */
export interface S3StorageOptions {
  /**
   * Base URL of the S3 API, e.g. `http://127.0.0.1:9000` (env `OQ_ENDPOINT`). Defaults to AWS:
   * `https://s3.<region>.amazonaws.com`.
   */
  endpoint?: string;
  /** The bucket (env `OQ_BUCKET`). */
  bucket: string;
  /** Signing region (env `OQ_REGION`). Defaults to `us-east-1`. */
  region?: string;
  /** Access key id (env `AWS_ACCESS_KEY_ID`). */
  accessKeyId: string;
  /** Secret access key (env `AWS_SECRET_ACCESS_KEY`). */
  secretAccessKey: string;
  /** Session token of temporary credentials (env `AWS_SESSION_TOKEN`). */
  sessionToken?: string;
  /**
   * Address the bucket as `endpoint/bucket/key` instead of `bucket.endpoint/key` (env
   * `OQ_FORCE_PATH_STYLE`). Defaults to true when `endpoint` is given (MinIO and most
   * self-hosted servers have no wildcard DNS) and false for AWS.
   */
  forcePathStyle?: boolean;
  /** The fetch to use. Defaults to the global `fetch`. */
  fetch?: S3Fetch;
  /** Retry policy for transient failures. */
  retries?: S3RetryOptions;
  /** Abort a single try after this long (including reading the body). Defaults to 30000 ms. */
  requestTimeoutMs?: number;
  /** Local clock in epoch ms, for signing and `serverTime()`. Defaults to `Date.now`. */
  now?: () => number;
}

const DEFAULT_REGION = "us-east-1";
const DEFAULT_ATTEMPTS = 4;
const DEFAULT_BASE_DELAY_MS = 100;
const DEFAULT_MAX_DELAY_MS = 5000;
const DEFAULT_TIMEOUT_MS = 30_000;

/** {@link S3StorageOptions} validated, with every default filled in. */
export interface S3Config extends Endpoint {
  bucket: string;
  region: string;
  /** The endpoint without a trailing slash, e.g. `http://127.0.0.1:9000`. */
  endpoint: string;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string | undefined;
  /** Strips the credentials from text that came from outside (server messages, echoed config). */
  redact: (text: string) => string;
  retry: Required<RetryPolicy>;
  timeoutMs: number;
  fetch: S3Fetch;
  now: () => number;
}

/** Validates `options` in the order a user would fix them; throws {@link ConfigError}. */
export function resolveS3Options(options: S3StorageOptions): S3Config {
  const accessKeyId = options.accessKeyId ?? "";
  const secretAccessKey = options.secretAccessKey ?? "";
  const sessionToken = options.sessionToken || undefined;
  const redact = redactor([accessKeyId, secretAccessKey, sessionToken ?? ""]);
  const bucket = checkBucket(options.bucket ?? "", redact);
  checkCredentials(accessKeyId, secretAccessKey);
  const region = options.region || DEFAULT_REGION;
  if (!/^[A-Za-z0-9_-]+$/.test(region)) {
    throw new ConfigError(
      `S3 region "${redact(region)}" is invalid: set OQ_REGION to a region name such as us-east-1`,
    );
  }
  const endpoint = parseEndpoint(options.endpoint || `https://s3.${region}.amazonaws.com`, redact);
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retry = retryPolicy(options.retries ?? {});
  if (!(timeoutMs > 0)) throw new ConfigError("S3 requestTimeoutMs must be > 0");
  return {
    ...endpoint,
    bucket,
    region,
    endpoint: `${endpoint.base.origin}${endpoint.basePath}`,
    forcePathStyle: options.forcePathStyle ?? Boolean(options.endpoint),
    accessKeyId,
    secretAccessKey,
    sessionToken,
    redact,
    retry,
    timeoutMs,
    fetch: options.fetch ?? ((url, init) => fetch(url, init)),
    now: options.now ?? Date.now,
  };
}

function checkBucket(bucket: string, redact: (text: string) => string): string {
  if (bucket.trim() === "") {
    throw new ConfigError("S3 bucket name is missing: set OQ_BUCKET (option bucket)");
  }
  if (!/^[A-Za-z0-9._-]+$/.test(bucket)) {
    throw new ConfigError(
      `S3 bucket name "${redact(bucket)}" is invalid: OQ_BUCKET may hold only letters, digits, ".", "-" and "_"`,
    );
  }
  return bucket;
}

function checkCredentials(accessKeyId: string, secretAccessKey: string): void {
  if (accessKeyId.trim() === "") {
    throw new ConfigError(
      "S3 access key id is missing: set AWS_ACCESS_KEY_ID (option accessKeyId)",
    );
  }
  if (secretAccessKey.trim() === "") {
    throw new ConfigError(
      "S3 secret access key is missing: set AWS_SECRET_ACCESS_KEY (option secretAccessKey)",
    );
  }
}

function retryPolicy(retries: S3RetryOptions): Required<RetryPolicy> {
  const policy: Required<RetryPolicy> = {
    attempts: retries.attempts ?? DEFAULT_ATTEMPTS,
    baseDelayMs: retries.baseDelayMs ?? DEFAULT_BASE_DELAY_MS,
    maxDelayMs: retries.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
    random: retries.random ?? Math.random,
    sleep: retries.sleep ?? ((ms) => sleep(ms)),
  };
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1) {
    throw new ConfigError("S3 retries.attempts must be an integer >= 1");
  }
  if (!(policy.baseDelayMs >= 0) || !(policy.maxDelayMs >= 0)) {
    throw new ConfigError("S3 retries.baseDelayMs and retries.maxDelayMs must be >= 0");
  }
  return policy;
}
