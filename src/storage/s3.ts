/**
 * The S3 driver: any S3-compatible object store (AWS S3, MinIO, R2, Ceph RGW, ...) over plain
 * `fetch`, signed with aws4fetch.
 *
 * Retries live here rather than in aws4fetch: its built-in retry loop re-sends conditional writes
 * after a 5xx, which turns a write we actually won into a 412. We retry only what is safe to
 * repeat and report the rest as {@link AmbiguousWriteError}, so the caller re-reads and decides.
 *
 * Only web-standard globals are used (fetch, URL, crypto.subtle via aws4fetch, AbortSignal,
 * timers), so the driver runs unchanged on Node, Deno, Bun and workers.
 *
 * @module
 */
import { AwsClient } from "aws4fetch";
import {
  AccessDeniedError,
  AmbiguousWriteError,
  ConfigError,
  ConflictError,
  NotFoundError,
  type OqError,
  type OqErrorDetails,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
  ValidationError,
} from "../errors.ts";
import {
  type GetOptions,
  type GetResult,
  type HeadResult,
  type ListOptions,
  type ListResult,
  type ListVersionsOptions,
  type ListVersionsResult,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  type Storage,
  toBytes,
  type VersionInfo,
  type VersioningStatus,
} from "./storage.ts";

/** The subset of `fetch` the driver calls: always a URL string and a plain init object. */
export type S3Fetch = (url: string, init: RequestInit) => Promise<Response>;

/** Retry policy of {@link S3Storage}: exponential backoff with full jitter. */
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

/** Options of {@link S3Storage}. */
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
  /** Local clock in epoch ms, for signing and {@link S3Storage.serverTime}. Defaults to `Date.now`. */
  now?: () => number;
}

const DEFAULT_REGION = "us-east-1";
const DEFAULT_ATTEMPTS = 4;
const DEFAULT_BASE_DELAY_MS = 100;
const DEFAULT_MAX_DELAY_MS = 5000;
const DEFAULT_TIMEOUT_MS = 30_000;
/** S3's limit of keys per DeleteObjects request. */
const MAX_BATCH_DELETE = 1000;
/** Concurrent single DELETEs when a server cannot batch. */
const ONE_BY_ONE_PARALLEL = 8;
const NOT_S3_HINT = "is OQ_ENDPOINT pointing at an S3 API?";
const CREDENTIALS_HINT = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy";

/** What one request is, for signing, retry decisions and messages. */
interface Op {
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE";
  /** Object key, or undefined for a bucket-level request. */
  key?: string;
  /** Query parameters in the order they are sent. */
  query?: Array<[string, string | undefined]>;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** True for a PUT with If-Match / If-None-Match: such a write must never be re-sent blindly. */
  conditional?: boolean;
}

/** A response whose status was 2xx, with its body read in full. */
interface Ok {
  res: Response;
  body: Uint8Array;
}

/** What went wrong with one try, and whether another try is allowed. */
interface Failure {
  error: OqError;
  retry: boolean;
  /** Server-requested wait (`Retry-After`), in ms. */
  retryAfterMs?: number;
}

/**
 * A {@link Storage} on an S3-compatible bucket.
 *
 * Credentials are kept in private fields: they never reach error messages, `toJSON()` or
 * `console.log` output.
 */
export class S3Storage implements Storage {
  /** `s3://<bucket>`. */
  readonly name: string;
  /** The bucket. */
  readonly bucket: string;
  /** The signing region. */
  readonly region: string;
  /** The endpoint as configured, without a trailing slash, e.g. `http://127.0.0.1:9000`. */
  readonly endpoint: string;
  /** Whether the bucket is addressed in the path rather than the host name. */
  readonly forcePathStyle: boolean;

  readonly #client: AwsClient;
  readonly #secrets: string[];
  readonly #fetch: S3Fetch;
  readonly #base: URL;
  readonly #basePath: string;
  readonly #attempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #random: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #serverTime: { serverMs: number; localMs: number } | undefined;
  /** Set once the server refused DeleteObjects: {@link S3Storage.deleteMany} then deletes one by one. */
  #batchDeleteRefused = false;
  /** Added to the local clock when signing, learned from a RequestTimeTooSkewed answer. */
  #signingOffsetMs = 0;

  /** Validates the configuration; throws {@link ConfigError} naming the option to fix. */
  constructor(options: S3StorageOptions) {
    const accessKeyId = options.accessKeyId ?? "";
    const secretAccessKey = options.secretAccessKey ?? "";
    const sessionToken = options.sessionToken || undefined;
    this.#secrets = [accessKeyId, secretAccessKey, sessionToken ?? ""].filter((s) => s !== "");
    const bucket = options.bucket ?? "";
    if (bucket.trim() === "") {
      throw new ConfigError("S3 bucket name is missing: set OQ_BUCKET (option bucket)");
    }
    if (!/^[A-Za-z0-9._-]+$/.test(bucket)) {
      throw new ConfigError(
        `S3 bucket name "${this.#redact(bucket)}" is invalid: OQ_BUCKET may hold only letters, digits, ".", "-" and "_"`,
      );
    }
    this.bucket = bucket;

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

    const region = options.region || DEFAULT_REGION;
    if (!/^[A-Za-z0-9_-]+$/.test(region)) {
      throw new ConfigError(
        `S3 region "${this.#redact(region)}" is invalid: set OQ_REGION to a region name such as us-east-1`,
      );
    }
    this.region = region;

    const endpoint = options.endpoint || `https://s3.${region}.amazonaws.com`;
    let base: URL;
    try {
      base = new URL(endpoint);
    } catch {
      throw new ConfigError(
        `S3 endpoint "${this.#redact(endpoint)}" is not a valid URL: set OQ_ENDPOINT to e.g. http://127.0.0.1:9000`,
      );
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new ConfigError(
        `S3 endpoint must use http or https, not "${this.#redact(base.protocol)}": fix OQ_ENDPOINT (include the scheme, e.g. http://127.0.0.1:9000)`,
      );
    }
    if (base.username !== "" || base.password !== "") {
      // Refuse rather than echo: whatever sits there is a secret the user meant for elsewhere.
      throw new ConfigError(
        "S3 endpoint must not contain a user name or password: remove them from OQ_ENDPOINT and set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
      );
    }
    if (base.search !== "" || base.hash !== "") {
      throw new ConfigError("S3 endpoint must not contain a query or fragment: fix OQ_ENDPOINT");
    }
    // Kept apart from the URL: a URL's pathname can never be empty, so "/" would double up.
    this.#basePath = base.pathname.replace(/\/+$/, "");
    this.#base = base;
    this.endpoint = `${base.origin}${this.#basePath}`;
    this.forcePathStyle = options.forcePathStyle ?? Boolean(options.endpoint);
    this.name = `s3://${bucket}`;

    const retries = options.retries ?? {};
    this.#attempts = retries.attempts ?? DEFAULT_ATTEMPTS;
    this.#baseDelayMs = retries.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    this.#maxDelayMs = retries.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    if (!Number.isInteger(this.#attempts) || this.#attempts < 1) {
      throw new ConfigError("S3 retries.attempts must be an integer >= 1");
    }
    if (!(this.#baseDelayMs >= 0) || !(this.#maxDelayMs >= 0)) {
      throw new ConfigError("S3 retries.baseDelayMs and retries.maxDelayMs must be >= 0");
    }
    this.#random = retries.random ?? Math.random;
    this.#sleep = retries.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.#timeoutMs > 0)) {
      throw new ConfigError("S3 requestTimeoutMs must be > 0");
    }
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
    this.#now = options.now ?? Date.now;
    this.#client = new AwsClient({
      accessKeyId,
      secretAccessKey,
      ...(sessionToken === undefined ? {} : { sessionToken }),
      service: "s3",
      region,
      // Our own loop retries; aws4fetch's would re-send conditional writes (see module doc).
      retries: 0,
    });
  }

  /** Safe description for logs and `--json`: never credentials. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      endpoint: this.endpoint,
      bucket: this.bucket,
      region: this.region,
      forcePathStyle: this.forcePathStyle,
    };
  }

  /** Node's `util.inspect` hook, so `console.log(storage)` shows the same safe fields. */
  [Symbol.for("nodejs.util.inspect.custom")](): Record<string, unknown> {
    return this.toJSON();
  }

  /** {@inheritDoc Storage.serverTime} */
  serverTime(): { serverMs: number; localMs: number } | undefined {
    return this.#serverTime === undefined ? undefined : { ...this.#serverTime };
  }

  /** {@inheritDoc Storage.get} */
  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const { res, body } = await this.#send({
      method: "GET",
      key,
      query: [["versionId", options.versionId]],
    });
    const result: GetResult = {
      body,
      etag: this.#requireEtag(res, "GET", key),
      versionId: res.headers.get("x-amz-version-id"),
      lastModified: httpDate(res.headers.get("last-modified")),
    };
    const contentType = res.headers.get("content-type");
    if (contentType !== null) result.contentType = contentType;
    return result;
  }

  /** {@inheritDoc Storage.head} */
  async head(key: string): Promise<HeadResult> {
    const { res } = await this.#send({ method: "HEAD", key });
    return {
      etag: this.#requireEtag(res, "HEAD", key),
      size: Number(res.headers.get("content-length") ?? 0),
      versionId: res.headers.get("x-amz-version-id"),
      lastModified: httpDate(res.headers.get("last-modified")),
    };
  }

  /** {@inheritDoc Storage.put} */
  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    if (options.ifMatch !== undefined && options.ifNoneMatch !== undefined) {
      throw new ValidationError("put: set at most one of ifMatch and ifNoneMatch", { key });
    }
    if (options.ifNoneMatch !== undefined && options.ifNoneMatch !== "*") {
      throw new ValidationError('put: ifNoneMatch must be "*"', { key });
    }
    const headers: Record<string, string> = {
      "content-type": options.contentType ?? "application/octet-stream",
    };
    if (options.ifMatch !== undefined) headers["if-match"] = options.ifMatch;
    if (options.ifNoneMatch !== undefined) headers["if-none-match"] = "*";
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
    const { res } = await this.#send({
      method: "PUT",
      key,
      headers,
      body: toBytes(body),
      conditional,
    });
    const etag = res.headers.get("etag");
    if (etag === null || etag === "") {
      // The write committed but we cannot chain a compare-and-swap on it without its ETag.
      const message = `PUT ${this.#where(key)}: the server stored the object but returned no ETag; re-read it before relying on the write (${NOT_S3_HINT})`;
      throw conditional
        ? new AmbiguousWriteError(message, { key, status: res.status })
        : new StorageError(message, { key, status: res.status });
    }
    return { etag, versionId: res.headers.get("x-amz-version-id") };
  }

  /** {@inheritDoc Storage.delete} */
  async delete(key: string): Promise<void> {
    await this.#send({ method: "DELETE", key });
  }

  /** {@inheritDoc Storage.deleteVersion} */
  async deleteVersion(key: string, versionId: string): Promise<void> {
    await this.#send({ method: "DELETE", key, query: [["versionId", versionId]] });
  }

  /**
   * {@inheritDoc Storage.deleteMany}
   *
   * S3 `DeleteObjects` in quiet mode, 1,000 keys per request. A server that refuses the batch
   * call (no `x-amz-checksum-sha256` support, or no `DeleteObjects` at all) is remembered and
   * served with one DELETE per key from then on.
   */
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const key of keys) checkKey(key);
    for (let i = 0; i < keys.length; i += MAX_BATCH_DELETE) {
      const batch = keys.slice(i, i + MAX_BATCH_DELETE);
      if (!this.#batchDeleteRefused) {
        try {
          await this.#deleteBatch(batch);
          continue;
        } catch (error) {
          if (!refusesBatchDelete(error)) throw error;
          this.#batchDeleteRefused = true;
        }
      }
      await mapLimit(batch, ONE_BY_ONE_PARALLEL, (key) => this.delete(key));
    }
  }

  async #deleteBatch(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const xml =
      '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>' +
      keys.map((key) => `<Object><Key>${escapeXml(key)}</Key></Object>`).join("") +
      "</Delete>";
    const body = new TextEncoder().encode(xml);
    // DeleteObjects demands a body digest. Content-MD5 would need an MD5 that web crypto lacks;
    // AWS and MinIO accept a SHA-256 checksum instead.
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    const { res, body: answer } = await this.#send({
      method: "POST",
      query: [["delete", ""]],
      headers: {
        "content-type": "application/xml",
        "x-amz-checksum-sha256": btoa(String.fromCharCode(...digest)),
      },
      body,
    });
    const root = this.#parseBody(res, answer, "DeleteResult", "POST ?delete");
    const failed = children(root, "Error").filter((e) => {
      const code = text(e, "Code").trim();
      return code !== "NoSuchKey" && code !== "NoSuchVersion";
    });
    const first = failed[0];
    if (first === undefined) return;
    const key = text(first, "Key");
    const code = this.#redact(text(first, "Code").trim());
    const message = `POST ?delete ${this.name}: ${failed.length} of ${keys.length} keys were not deleted, e.g. ${key}: ${code}: ${this.#redact(text(first, "Message").trim())}`;
    const details: OqErrorDetails = { status: res.status, s3Code: code, key };
    throw code === "AccessDenied"
      ? new AccessDeniedError(`${message}; ${CREDENTIALS_HINT}`, details)
      : new StorageError(message, details);
  }

  /** {@inheritDoc Storage.list} */
  async list(options: ListOptions = {}): Promise<ListResult> {
    const { res, body } = await this.#send({
      method: "GET",
      query: [
        ["list-type", "2"],
        ["prefix", options.prefix],
        ["start-after", options.startAfter],
        ["continuation-token", options.continuationToken],
        ["max-keys", options.maxKeys === undefined ? undefined : String(options.maxKeys)],
      ],
    });
    const root = this.#parseBody(res, body, "ListBucketResult", "LIST");
    const objects: ObjectInfo[] = children(root, "Contents").map((c) => ({
      key: text(c, "Key"),
      etag: text(c, "ETag"),
      size: Number(text(c, "Size") || "0"),
      lastModified: isoDate(text(c, "LastModified")),
    }));
    const result: ListResult = {
      objects,
      isTruncated: text(root, "IsTruncated").trim() === "true",
    };
    const next = child(root, "NextContinuationToken");
    if (next !== undefined && next.text !== "") result.nextContinuationToken = next.text;
    return result;
  }

  /** {@inheritDoc Storage.listVersions} */
  async listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    const { res, body } = await this.#send({
      method: "GET",
      query: [
        ["versions", ""],
        ["prefix", options.prefix],
        ["key-marker", options.keyMarker],
        ["version-id-marker", options.versionIdMarker],
        ["max-keys", options.maxKeys === undefined ? undefined : String(options.maxKeys)],
      ],
    });
    const root = this.#parseBody(res, body, "ListVersionsResult", "LIST versions");
    const versions: VersionInfo[] = [];
    // Versions and delete markers interleave; document order is the history order.
    for (const el of root.children) {
      if (el.name !== "Version" && el.name !== "DeleteMarker") continue;
      const marker = el.name === "DeleteMarker";
      const info: VersionInfo = {
        key: text(el, "Key"),
        versionId: text(el, "VersionId"),
        isLatest: text(el, "IsLatest").trim() === "true",
        isDeleteMarker: marker,
        lastModified: isoDate(text(el, "LastModified")),
        size: marker ? 0 : Number(text(el, "Size") || "0"),
      };
      const etag = child(el, "ETag");
      if (!marker && etag !== undefined) info.etag = etag.text;
      versions.push(info);
    }
    const result: ListVersionsResult = {
      versions,
      isTruncated: text(root, "IsTruncated").trim() === "true",
    };
    const nextKey = child(root, "NextKeyMarker");
    if (nextKey !== undefined && nextKey.text !== "") result.nextKeyMarker = nextKey.text;
    const nextVersion = child(root, "NextVersionIdMarker");
    if (nextVersion !== undefined && nextVersion.text !== "") {
      result.nextVersionIdMarker = nextVersion.text;
    }
    return result;
  }

  /** {@inheritDoc Storage.versioning} */
  async versioning(): Promise<VersioningStatus> {
    const { res, body } = await this.#send({ method: "GET", query: [["versioning", ""]] });
    const root = this.#parseBody(res, body, "VersioningConfiguration", "GET versioning");
    const status = text(root, "Status").trim();
    if (status === "Enabled" || status === "Suspended") return status;
    return "Disabled";
  }

  /** The request URL: path-style or virtual-hosted, each key segment percent-encoded. */
  #url(key: string | undefined, query: Array<[string, string | undefined]>): string {
    const url = new URL(this.#base.href);
    let path = this.#basePath;
    if (this.forcePathStyle) path += `/${this.bucket}`;
    else url.hostname = `${this.bucket}.${url.hostname}`;
    if (key !== undefined) path += `/${encodeKey(key)}`;
    else if (!this.forcePathStyle || path === "") path += "/";
    // Built by hand: URLSearchParams writes spaces as "+", which S3 may read as a literal plus.
    const search = query
      .filter((pair): pair is [string, string] => pair[1] !== undefined)
      .map(([k, v]) => (v === "" ? encodeRfc3986(k) : `${encodeRfc3986(k)}=${encodeRfc3986(v)}`))
      .join("&");
    return `${url.origin}${path}${search === "" ? "" : `?${search}`}`;
  }

  /** Sends one operation with the retry policy; resolves only on a 2xx. */
  async #send(op: Op): Promise<Ok> {
    if (op.key !== undefined) checkKey(op.key);
    const url = this.#url(op.key, op.query ?? []);
    for (let attempt = 1; ; attempt++) {
      const failure = await this.#try(op, url);
      if (!("error" in failure)) return failure;
      if (!failure.retry || attempt >= this.#attempts) throw failure.error;
      const cap = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
      let delay = this.#random() * cap;
      if (failure.retryAfterMs !== undefined) {
        delay = Math.min(this.#maxDelayMs, Math.max(delay, failure.retryAfterMs));
      }
      await this.#sleep(delay);
    }
  }

  /** One try: sign, fetch, read the body; classify any failure. */
  async #try(op: Op, url: string): Promise<Ok | Failure> {
    const headers = { ...op.headers };
    const signed = await this.#client.sign(url, {
      method: op.method,
      headers,
      ...(op.body === undefined ? {} : { body: op.body as Uint8Array<ArrayBuffer> }),
      aws: { datetime: amzDate(this.#now() + this.#signingOffsetMs) },
    });
    const host = new URL(url).host;
    let res: Response;
    try {
      // Not the signed Request itself: Bun mishandles Request objects with bodies (aws4fetch #70).
      res = await this.#fetch(signed.url, {
        method: op.method,
        headers: signed.headers,
        ...(op.body === undefined ? {} : { body: op.body as Uint8Array<ArrayBuffer> }),
        redirect: "manual",
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (cause) {
      return this.#networkFailure(op, host, cause, false);
    }
    this.#recordServerTime(res);

    if (res.status >= 200 && res.status < 300) {
      if (op.method === "PUT" || op.method === "DELETE" || op.method === "HEAD") {
        // Status and headers are the answer; a body read failing now must not undo a commit.
        await res.arrayBuffer().catch(() => undefined);
        return { res, body: new Uint8Array(0) };
      }
      try {
        return { res, body: new Uint8Array(await res.arrayBuffer()) };
      } catch (cause) {
        return this.#networkFailure(op, host, cause, true);
      }
    }

    let bodyText = "";
    if (op.method !== "HEAD") bodyText = await res.text().catch(() => "");
    const info = parseErrorBody(bodyText);
    // HEAD errors have no body; MinIO still names the error in a header (AWS does not).
    const headerCode = res.headers.get("x-minio-error-code");
    if (info.code === undefined && headerCode !== null && headerCode !== "") info.code = headerCode;
    if (op.method === "DELETE" && deletedNothing(res.status, info.code, op)) {
      // Deleting what does not exist is success by contract (S3 itself mostly answers 204).
      return { res, body: new Uint8Array(0) };
    }
    return this.#httpFailure(op, res, info, bodyText);
  }

  /** Classifies a thrown fetch (or body read): never sent, or sent with an unknown outcome. */
  #networkFailure(op: Op, host: string, cause: unknown, afterResponse: boolean): Failure {
    const { reason, sent } = describeNetworkError(cause, this.#timeoutMs);
    const where = `${op.method} ${this.#where(op.key)}`;
    const details: OqErrorDetails = { cause };
    if (op.key !== undefined) details.key = op.key;
    if (op.conditional && (sent || afterResponse)) {
      return {
        retry: false,
        error: new AmbiguousWriteError(
          `${where}: ${reason} talking to ${host} after the conditional write was sent; it may or may not have happened: re-read the object and compare before deciding`,
          details,
        ),
      };
    }
    return {
      retry: true,
      error: new UnavailableError(
        `${where}: cannot reach ${host} (${reason}); is the server running and OQ_ENDPOINT right?`,
        details,
      ),
    };
  }

  /** Maps a non-2xx response to a typed error and a retry decision. */
  #httpFailure(op: Op, res: Response, info: ErrorBody, bodyText: string): Failure {
    const status = res.status;
    const code = info.code === undefined ? undefined : this.#redact(info.code);
    const requestId = info.requestId ?? res.headers.get("x-amz-request-id") ?? undefined;
    const details: OqErrorDetails = { status };
    if (code !== undefined) details.s3Code = code;
    if (requestId !== undefined) details.requestId = this.#redact(requestId);
    if (op.key !== undefined) details.key = op.key;

    const where = `${op.method} ${this.#where(op.key)}`;
    const serverMessage = info.message === undefined ? "" : `: ${this.#redact(info.message)}`;
    const said = code === undefined ? `HTTP ${status}` : `${status} ${code}${serverMessage}`;
    // HEAD answers never carry a body, so only a body-bearing reply can prove "not S3".
    const notS3 =
      op.method !== "HEAD" && !info.isS3
        ? `; the endpoint did not answer like S3 (${describeBody(res, bodyText)}): ${NOT_S3_HINT}`
        : "";
    const reqId = details.requestId === undefined ? "" : ` (request id ${details.requestId})`;
    const retryAfterMs = retryAfter(res.headers.get("retry-after"));
    const throttled = status === 429 || (status === 503 && code === "SlowDown");

    if (throttled) {
      return {
        retry: true,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        error: new ThrottledError(
          `${where}: the server asked us to slow down (${said}) after ${this.#attempts} tries${notS3}${reqId}`,
          details,
        ),
      };
    }
    if (status >= 500 || (status === 400 && code === "RequestTimeout")) {
      if (op.conditional && status >= 500) {
        return {
          retry: false,
          error: new AmbiguousWriteError(
            `${where}: conditional write answered ${said}; it may or may not have happened: re-read the object and compare before deciding${notS3}${reqId}`,
            details,
          ),
        };
      }
      // A RequestTimeout means the server never read the whole body, so nothing committed.
      return {
        retry: true,
        error: new StorageError(
          `${where}: server error (${said}) after ${this.#attempts} tries${notS3}${reqId}`,
          details,
        ),
      };
    }

    const skew = this.#serverTime;
    if (status === 403 && code === "RequestTimeTooSkewed" && skew !== undefined) {
      // Sign with the server's clock from now on, as the AWS SDKs do: a skewed local clock must
      // not take the queue down, and the request was refused before anything was written.
      this.#signingOffsetMs = skew.serverMs - skew.localMs;
      return {
        retry: true,
        error: new AccessDeniedError(
          `${where}: access denied (${said})${accessHint(code)}; ${CREDENTIALS_HINT}${reqId}`,
          details,
        ),
      };
    }

    let error: OqError;
    switch (status) {
      case 404:
        if (code === "NoSuchBucket") {
          error = new NotFoundError(
            `bucket ${this.bucket} does not exist at ${this.endpoint}; create it or fix OQ_BUCKET${reqId}`,
            details,
          );
        } else if (code === "NoSuchVersion") {
          error = new NotFoundError(`${where}: no such version${reqId}`, details);
        } else {
          error = new NotFoundError(`${where}: not found (${said})${notS3}${reqId}`, details);
        }
        break;
      case 405:
        // GET of a version that is a delete marker: there is no body to read.
        if (res.headers.get("x-amz-delete-marker") === "true") {
          error = new NotFoundError(`${where}: that version is a delete marker${reqId}`, details);
        } else {
          error = new StorageError(
            `${where}: method not allowed (${said})${notS3}${reqId}`,
            details,
          );
        }
        break;
      case 412:
        error = new PreconditionFailedError(
          `${where}: precondition failed (${said}): ${
            op.headers?.["if-none-match"] !== undefined
              ? "the object already exists"
              : "the object changed since it was read"
          }${notS3}${reqId}`,
          details,
        );
        break;
      case 409:
        error = new ConflictError(
          `${where}: a concurrent operation interfered (${said}); the write did not happen: re-read and decide again${notS3}${reqId}`,
          details,
        );
        break;
      case 403:
        error = new AccessDeniedError(
          `${where}: access denied (${said})${accessHint(code)}; ${CREDENTIALS_HINT}${notS3}${reqId}`,
          details,
        );
        break;
      case 301:
      case 307:
      case 308: {
        const region = res.headers.get("x-amz-bucket-region");
        error = new StorageError(
          `${where}: the server redirected (${said}); the bucket lives in ${
            region === null ? "another region" : `region ${region}`
          }: set OQ_REGION (and OQ_ENDPOINT) to match${notS3}${reqId}`,
          details,
        );
        break;
      }
      default:
        if (status === 400 && code === "InvalidArgument" && hasVersionId(op)) {
          // MinIO rejects a malformed version id with 400; to the caller it is simply absent.
          error = new NotFoundError(`${where}: no such version (${said})${reqId}`, details);
        } else if (
          code === "ExpiredToken" ||
          code === "InvalidToken" ||
          code === "TokenRefreshRequired"
        ) {
          error = new AccessDeniedError(
            `${where}: the session token was rejected (${said}); refresh AWS_SESSION_TOKEN; ${CREDENTIALS_HINT}${reqId}`,
            details,
          );
        } else if (code === "AuthorizationHeaderMalformed") {
          error = new StorageError(
            `${where}: the server rejected the signature's scope (${said}); check OQ_REGION${reqId}`,
            details,
          );
        } else {
          error = new StorageError(`${where}: ${said}${notS3}${reqId}`, details);
        }
    }
    return { retry: false, error };
  }

  /** Parses an XML response body, insisting on the expected root element. */
  #parseBody(res: Response, body: Uint8Array, rootName: string, what: string): XmlElement {
    const source = new TextDecoder().decode(body);
    let root: XmlElement | undefined;
    try {
      root = parseXml(source);
    } catch {
      root = undefined;
    }
    if (root === undefined || root.name !== rootName) {
      throw new StorageError(
        `${what} ${this.name}: expected <${rootName}> but the endpoint did not answer like S3 (${describeBody(res, source)}): ${NOT_S3_HINT}`,
        { status: res.status },
      );
    }
    return root;
  }

  #requireEtag(res: Response, method: string, key: string): string {
    const etag = res.headers.get("etag");
    if (etag === null || etag === "") {
      throw new StorageError(
        `${method} ${this.#where(key)}: the response has no ETag header; ${NOT_S3_HINT}`,
        { key, status: res.status },
      );
    }
    return etag;
  }

  #recordServerTime(res: Response): void {
    const date = res.headers.get("date");
    if (date === null) return;
    const serverMs = Date.parse(date);
    if (Number.isNaN(serverMs)) return;
    this.#serverTime = { serverMs, localMs: this.#now() };
  }

  #where(key: string | undefined): string {
    return key === undefined ? this.name : `${this.name}/${key}`;
  }

  /** Strips credentials from text that came from outside (server messages, echoed config). */
  #redact(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.split(secret).join("[redacted]");
    return out;
  }
}

/**
 * Builds an {@link S3Storage} from environment variables. The caller passes the environment
 * (the environment object of Node, Bun or Deno, or a Worker's `env`), so this module stays runtime-neutral.
 *
 * Reads `OQ_BUCKET`, `OQ_ENDPOINT`, `OQ_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
 * `AWS_SESSION_TOKEN` and `OQ_FORCE_PATH_STYLE` (`true`/`false`); empty values count as unset.
 * `overrides` supplies the options the environment cannot (fetch, retries, clock).
 */
export function s3StorageFromEnv(
  env: Record<string, string | undefined>,
  overrides: Partial<S3StorageOptions> = {},
): S3Storage {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const options: S3StorageOptions = {
    bucket: read("OQ_BUCKET") ?? "",
    accessKeyId: read("AWS_ACCESS_KEY_ID") ?? "",
    secretAccessKey: read("AWS_SECRET_ACCESS_KEY") ?? "",
  };
  const endpoint = read("OQ_ENDPOINT");
  if (endpoint !== undefined) options.endpoint = endpoint;
  const region = read("OQ_REGION");
  if (region !== undefined) options.region = region;
  const sessionToken = read("AWS_SESSION_TOKEN");
  if (sessionToken !== undefined) options.sessionToken = sessionToken;
  const pathStyle = read("OQ_FORCE_PATH_STYLE");
  if (pathStyle !== undefined) {
    const v = pathStyle.toLowerCase();
    if (v === "true" || v === "1" || v === "yes") options.forcePathStyle = true;
    else if (v === "false" || v === "0" || v === "no") options.forcePathStyle = false;
    else {
      throw new ConfigError(
        `OQ_FORCE_PATH_STYLE must be true or false, not "${pathStyle.slice(0, 20)}"`,
      );
    }
  }
  return new S3Storage({ ...options, ...overrides });
}

/** Percent-encodes a key segment by segment, keeping `/` as the separator. */
export function encodeKey(key: string): string {
  return key
    .split("/")
    .map((segment) => encodeRfc3986(segment))
    .join("/");
}

/** `encodeURIComponent` plus the sub-delimiters it leaves alone, as SigV4 canonical form wants. */
function encodeRfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function checkKey(key: string): void {
  if (key === "") throw new ValidationError("S3 object key must not be empty");
  // URL parsers collapse "." and ".." segments (even percent-encoded), so the request would
  // silently address a different object.
  for (const segment of key.split("/")) {
    if (segment === "." || segment === "..") {
      throw new ValidationError(`S3 object key "${key}" has a "." or ".." segment`, { key });
    }
  }
}

/** `YYYYMMDDTHHMMSSZ`, the SigV4 timestamp format. */
function amzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[:-]|\.\d{3}/g, "");
}

function httpDate(value: string | null): Date {
  return new Date(value === null ? Number.NaN : Date.parse(value));
}

function isoDate(value: string): Date {
  return new Date(Date.parse(value.trim()));
}

function retryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value.trim());
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/** True for the answers of a server that cannot do DeleteObjects as we send it. */
function refusesBatchDelete(error: unknown): boolean {
  if (!(error instanceof StorageError)) return false;
  if (error.status === 501 || error.status === 405) return true;
  return (
    error.s3Code === "MissingContentMD5" ||
    error.s3Code === "InvalidDigest" ||
    error.s3Code === "NotImplemented" ||
    error.s3Code === "InvalidRequest"
  );
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Escapes text for an XML element body; CR must be a reference or parsers turn it into LF. */
function escapeXml(value: string): string {
  return value.replace(/[&<>"'\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * True when a failed DELETE only means "nothing there": a 404 for the key or version, or
 * MinIO's 400 for a version id it cannot even parse (so no such version exists).
 */
function deletedNothing(status: number, code: string | undefined, op: Op): boolean {
  if (status === 404) return code === "NoSuchKey" || code === "NoSuchVersion";
  return status === 400 && code === "InvalidArgument" && hasVersionId(op);
}

function hasVersionId(op: Op): boolean {
  return op.query?.some(([k, v]) => k === "versionId" && v !== undefined) ?? false;
}

function accessHint(code: string | undefined): string {
  switch (code) {
    case "InvalidAccessKeyId":
      return ": the server does not know this access key id (InvalidAccessKeyId)";
    case "SignatureDoesNotMatch":
      return ": the signature does not match (SignatureDoesNotMatch), usually a wrong secret access key";
    case "RequestTimeTooSkewed":
      return ": the local clock is too far from the server's (RequestTimeTooSkewed) even after correcting by the server's Date header; fix the clock";
    default:
      return "";
  }
}

/** What the error body of a failed response told us. */
interface ErrorBody {
  /** The body was an S3 `<Error>` document. */
  isS3: boolean;
  code?: string;
  message?: string;
  requestId?: string;
}

function parseErrorBody(body: string): ErrorBody {
  if (body.trim() === "") return { isS3: false };
  let root: XmlElement;
  try {
    root = parseXml(body);
  } catch {
    return { isS3: false };
  }
  if (root.name !== "Error") return { isS3: false };
  const info: ErrorBody = { isS3: true };
  const code = child(root, "Code")?.text.trim();
  if (code) info.code = code;
  const message = child(root, "Message")?.text.trim();
  if (message) info.message = message;
  const requestId = child(root, "RequestId")?.text.trim();
  if (requestId) info.requestId = requestId;
  return info;
}

function describeBody(res: Response, body: string): string {
  const type = res.headers.get("content-type") ?? "";
  const head = body.trimStart().slice(0, 200).toLowerCase();
  let what: string;
  if (body.trim() === "") what = "an empty body";
  else if (type.includes("html") || head.startsWith("<!doctype html") || head.startsWith("<html")) {
    what = "an HTML page";
  } else if (head.startsWith("<")) what = "XML that is not an S3 response";
  else what = `a ${type === "" ? "non-XML" : type} body`;
  return `HTTP ${res.status} with ${what}`;
}

/** Names a network failure and says whether the request may have reached the server. */
function describeNetworkError(
  error: unknown,
  timeoutMs: number,
): { reason: string; sent: boolean } {
  const codes: string[] = [];
  const names: string[] = [];
  let e: unknown = error;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++) {
    const rec = e as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof rec.code === "string") codes.push(rec.code);
    if (typeof rec.name === "string") names.push(rec.name);
    e = rec.cause;
  }
  const has = (...c: string[]) => codes.some((x) => c.includes(x));
  if (names.includes("TimeoutError"))
    return { reason: `timed out after ${timeoutMs} ms`, sent: true };
  if (has("ECONNREFUSED", "ConnectionRefused"))
    return { reason: "connection refused", sent: false };
  if (has("ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "ENODATA")) {
    return { reason: "host name not found (DNS)", sent: false };
  }
  if (has("ENETUNREACH", "EHOSTUNREACH", "EADDRNOTAVAIL")) {
    return { reason: "network unreachable", sent: false };
  }
  if (has("UND_ERR_CONNECT_TIMEOUT")) return { reason: "connect timed out", sent: false };
  if (codes.some((c) => c.startsWith("ERR_TLS") || c.includes("CERT") || c.startsWith("ERR_SSL"))) {
    return { reason: "TLS handshake failed", sent: false };
  }
  if (has("ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "ConnectionClosed")) {
    return { reason: "connection dropped", sent: true };
  }
  if (names.includes("AbortError")) return { reason: "request aborted", sent: true };
  // Unknown failures are treated as possibly sent: for a conditional write that is the safe side.
  const first = error instanceof Error ? error.message : String(error);
  return { reason: `network error: ${first.slice(0, 120)}`, sent: true };
}

/** One element of a parsed XML document: its local name, child elements and decoded text. */
export interface XmlElement {
  /** Element name without any namespace prefix. */
  name: string;
  /** Child elements in document order. */
  children: XmlElement[];
  /** Concatenated character data directly inside this element, entities decoded. */
  text: string;
}

/**
 * A deliberately small XML reader for the fixed shapes of S3 responses: elements, text,
 * attributes (skipped), the five predefined entities, numeric character references, CDATA,
 * comments and the XML declaration. DTDs are refused (S3 never sends one; HTML does).
 * Text is kept byte-exact, since object keys may begin or end with spaces.
 *
 * Throws an `Error` on anything malformed; callers map that to a typed error.
 *
 * @internal Exported for tests.
 */
export function parseXml(source: string): XmlElement {
  let i = source.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = source.length;
  const stack: Array<{ el: XmlElement; raw: string }> = [];
  let root: XmlElement | undefined;
  const fail = (why: string): never => {
    throw new Error(`malformed XML at offset ${i}: ${why}`);
  };
  while (i < n) {
    const lt = source.indexOf("<", i);
    const end = lt === -1 ? n : lt;
    if (end > i) {
      const raw = source.slice(i, end);
      const top = stack[stack.length - 1];
      if (top !== undefined) top.el.text += decodeEntities(raw);
      else if (raw.trim() !== "") fail("text outside the root element");
    }
    if (lt === -1) break;
    i = lt;
    if (source.startsWith("<?", i)) {
      const close = source.indexOf("?>", i + 2);
      if (close === -1) fail("unterminated processing instruction");
      i = close + 2;
    } else if (source.startsWith("<!--", i)) {
      const close = source.indexOf("-->", i + 4);
      if (close === -1) fail("unterminated comment");
      i = close + 3;
    } else if (source.startsWith("<![CDATA[", i)) {
      const close = source.indexOf("]]>", i + 9);
      if (close === -1) fail("unterminated CDATA section");
      const top = stack[stack.length - 1];
      if (top === undefined) fail("CDATA outside the root element");
      top!.el.text += source.slice(i + 9, close);
      i = close + 3;
    } else if (source.startsWith("<!", i)) {
      fail("DTDs are not supported");
    } else if (source.startsWith("</", i)) {
      const close = source.indexOf(">", i + 2);
      if (close === -1) fail("unterminated end tag");
      const raw = source.slice(i + 2, close).trim();
      const top = stack.pop();
      if (top === undefined || top.raw !== raw) fail(`unexpected </${raw}>`);
      i = close + 1;
      if (stack.length === 0) {
        if (root !== undefined) fail("more than one root element");
        root = top!.el;
      } else stack[stack.length - 1]!.el.children.push(top!.el);
    } else {
      const match = /^<([A-Za-z_][\w.:-]*)/.exec(source.slice(i, i + 256));
      if (match === null) fail("bad start tag");
      const raw = match![1]!;
      i += match![0].length;
      let selfClosing = false;
      // Attributes are skipped, but their quoted values may contain ">" and must be stepped over.
      for (;;) {
        while (i < n && /\s/.test(source[i]!)) i++;
        if (i >= n) fail("unterminated start tag");
        if (source[i] === ">") {
          i++;
          break;
        }
        if (source.startsWith("/>", i)) {
          i += 2;
          selfClosing = true;
          break;
        }
        const attr = /^[A-Za-z_][\w.:-]*\s*=\s*(["'])/.exec(source.slice(i, i + 256));
        if (attr === null) fail("bad attribute");
        const quote = attr![1]!;
        const close = source.indexOf(quote, i + attr![0].length);
        if (close === -1) fail("unterminated attribute value");
        i = close + 1;
      }
      const colon = raw.indexOf(":");
      const el: XmlElement = {
        name: colon === -1 ? raw : raw.slice(colon + 1),
        children: [],
        text: "",
      };
      if (selfClosing) {
        const top = stack[stack.length - 1];
        if (top !== undefined) top.el.children.push(el);
        else if (root !== undefined) fail("more than one root element");
        else root = el;
      } else {
        if (stack.length === 0 && root !== undefined) fail("more than one root element");
        stack.push({ el, raw });
      }
    }
  }
  if (stack.length > 0) fail(`unclosed <${stack[stack.length - 1]!.raw}>`);
  if (root === undefined) fail("no root element");
  return root!;
}

const ENTITIES: Record<string, string> = {
  lt: "<",
  gt: ">",
  amp: "&",
  quot: '"',
  apos: "'",
};

/** Decodes the five predefined entities and numeric character references. */
export function decodeEntities(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(/&([^;&\s]{0,12});?/g, (whole, name: string) => {
    if (!whole.endsWith(";")) throw new Error(`malformed XML: bare "&" in "${text.slice(0, 40)}"`);
    const named = ENTITIES[name];
    if (named !== undefined) return named;
    const m = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(name);
    if (m !== null) {
      const cp = m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2]);
      if (cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
        return String.fromCodePoint(cp);
      }
    }
    throw new Error(`malformed XML: unknown entity "&${name};"`);
  });
}

function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

function children(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** Text of the first child with that name, or "" when absent. */
function text(el: XmlElement, name: string): string {
  return child(el, name)?.text ?? "";
}
