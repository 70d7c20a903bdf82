/**
 * The S3 driver: any S3-compatible object store (AWS S3, MinIO, R2, Ceph RGW, ...) over plain
 * `fetch`, signed by `./signer.ts` (SigV4, aws4fetch's canonical request).
 *
 * Retries live here rather than in aws4fetch's client: its retry loop re-sends conditional writes
 * after a 5xx, which turns a write we actually won into a 412. We retry only what is safe to
 * repeat (see `./errors.ts`) and report the rest as {@link AmbiguousWriteError}, so the caller
 * re-reads and decides. The backoff itself is oq's one retry rule (`../../retry.ts`).
 * Only web-standard globals are used (fetch, URL, crypto.subtle for batch-delete checksums,
 * AbortController, timers), so the driver runs unchanged on Node, Deno, Bun and workers.
 *
 * @module
 */

import { AmbiguousWriteError, isOqError, StorageError, ValidationError } from "../../errors.ts";
import { type RetryPolicy, retry } from "../../retry.ts";
import { mapLimit, withDeadline } from "../../util/async.ts";
import { checkMaxBytes, objectTooLarge } from "../max-bytes.ts";
import {
  type GetOptions,
  type GetResult,
  type HeadResult,
  type ListOptions,
  type ListResult,
  type ListVersionsOptions,
  type ListVersionsResult,
  type PutOptions,
  type PutResult,
  type ServerTimeSample,
  type Storage,
  type StorageLocation,
  toBytes,
  type VersioningStatus,
  type VersionTarget,
} from "../storage.ts";
import { readBody, readErrorText } from "./body.ts";
import {
  type DeleteTarget,
  deleteObjectsBody,
  MAX_BATCH_DELETE,
  notDeletedError,
  targetKey,
} from "./delete-objects.ts";
import {
  deletedNothing,
  describeBody,
  type Failure,
  httpFailure,
  NOT_S3_HINT,
  networkFailure,
  parseErrorBody,
  refusesBatchDelete,
} from "./errors.ts";
import { listResultOf, listVersionsResultOf } from "./listing.ts";
import type { S3Response } from "./options.ts";
import { resolveS3Options, type S3Fetch, type S3StorageOptions } from "./options.ts";
import { amzDate, httpDate, type Ok, type Op, sha256Base64 } from "./request.ts";
import { S3Signer } from "./signer.ts";
import { SlowDown } from "./slow-down.ts";
import { type BucketAddress, checkKey, requestUrl } from "./url.ts";
import { parseXml, text, type XmlElement } from "./xml.ts";

/** Concurrent single DELETEs when a server cannot batch. */
const ONE_BY_ONE_PARALLEL = 8;

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
  /** Where requests go (the bucket's root URL, path-style or virtual-hosted), for doctor. */
  readonly location: StorageLocation;

  readonly #signer: S3Signer;
  readonly #redact: (text: string) => string;
  readonly #fetch: S3Fetch;
  readonly #address: BucketAddress;
  readonly #retry: Required<RetryPolicy>;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  /** The pause every request of this client keeps while the server throttles it. */
  readonly #slowDown: SlowDown;
  #serverTime: ServerTimeSample | undefined;
  /** Set once the server refused DeleteObjects: {@link S3Storage.deleteMany} then deletes one by one. */
  #batchDeleteRefused = false;
  /** Added to the local clock when signing, learned from a RequestTimeTooSkewed answer. */
  #signingOffsetMs = 0;

  /** Validates the configuration; throws {@link ConfigError} naming the option to fix. */
  constructor(options: S3StorageOptions) {
    const config = resolveS3Options(options);
    this.bucket = config.bucket;
    this.region = config.region;
    this.endpoint = config.endpoint;
    this.forcePathStyle = config.forcePathStyle;
    this.name = `s3://${config.bucket}`;
    this.#redact = config.redact;
    this.#address = {
      base: config.base,
      basePath: config.basePath,
      bucket: config.bucket,
      forcePathStyle: config.forcePathStyle,
    };
    this.location = {
      driver: "s3",
      endpoint: requestUrl(this.#address, undefined, []),
      bucket: config.bucket,
      region: config.region,
    };
    this.#retry = config.retry;
    this.#timeoutMs = config.timeoutMs;
    this.#fetch = config.fetch;
    this.#now = config.now;
    this.#slowDown = new SlowDown(config.retry, config.now);
    this.#signer = new S3Signer({
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      ...(config.sessionToken === undefined ? {} : { sessionToken: config.sessionToken }),
      region: config.region,
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
  serverTime(): ServerTimeSample | undefined {
    return this.#serverTime === undefined ? undefined : { ...this.#serverTime };
  }

  /** {@inheritDoc Storage.get} */
  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    checkMaxBytes(options.maxBytes);
    const { res, body } = await this.#send({
      method: "GET",
      key,
      query: [["versionId", options.versionId]],
      ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
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
    await this.#deleteInBatches(keys, (key) => this.delete(key));
  }

  /**
   * {@inheritDoc Storage.deleteVersions}
   *
   * S3 `DeleteObjects` naming each `VersionId`, as {@link S3Storage.deleteMany} does keys; one
   * `DELETE ?versionId=` per version on a server that refuses the batch call.
   */
  async deleteVersions(targets: readonly VersionTarget[]): Promise<void> {
    await this.#deleteInBatches(targets, (t) => this.deleteVersion(t.key, t.versionId));
  }

  /** `DeleteObjects` per 1,000 targets, or `one` per target where the server refuses it. */
  async #deleteInBatches<T extends DeleteTarget>(
    targets: readonly T[],
    one: (target: T) => Promise<void>,
  ): Promise<void> {
    for (const target of targets) checkKey(targetKey(target));
    for (let i = 0; i < targets.length; i += MAX_BATCH_DELETE) {
      const batch = targets.slice(i, i + MAX_BATCH_DELETE);
      if (!this.#batchDeleteRefused) {
        try {
          await this.#deleteBatch(batch);
          continue;
        } catch (error) {
          if (!refusesBatchDelete(error)) throw error;
          this.#batchDeleteRefused = true;
        }
      }
      await mapLimit(batch, ONE_BY_ONE_PARALLEL, one);
    }
  }

  async #deleteBatch(targets: readonly DeleteTarget[]): Promise<void> {
    if (targets.length === 0) return;
    const { res, body: answer } = await this.#sendXml("POST", "delete", deleteObjectsBody(targets));
    const root = this.#parseBody(res, answer, "DeleteResult", "POST ?delete");
    const error = notDeletedError(root, targets.length, {
      where: `POST ?delete ${this.name}`,
      status: res.status,
      redact: this.#redact,
    });
    if (error !== undefined) throw error;
  }

  /** {@inheritDoc Storage.getLifecycle} */
  async getLifecycle(): Promise<string | undefined> {
    try {
      const { res, body } = await this.#send({ method: "GET", query: [["lifecycle", ""]] });
      this.#parseBody(res, body, "LifecycleConfiguration", "GET lifecycle");
      return new TextDecoder().decode(body);
    } catch (error) {
      if (isOqError(error, "NOT_FOUND") && error.s3Code === "NoSuchLifecycleConfiguration")
        return undefined;
      throw error;
    }
  }

  /** {@inheritDoc Storage.putLifecycle} */
  async putLifecycle(xml: string): Promise<void> {
    await this.#sendXml("PUT", "lifecycle", new TextEncoder().encode(xml));
  }

  /**
   * Send an XML document to the bucket's `?{subresource}`. S3 demands a body digest there, and
   * web crypto has no MD5 for `Content-MD5`: AWS and MinIO accept a SHA-256 checksum instead.
   */
  async #sendXml(method: "POST" | "PUT", subresource: string, body: Uint8Array): Promise<Ok> {
    return this.#send({
      method,
      query: [[subresource, ""]],
      headers: {
        "content-type": "application/xml",
        "x-amz-sdk-checksum-algorithm": "SHA256",
        "x-amz-checksum-sha256": await sha256Base64(body),
      },
      body,
    });
  }

  /** {@inheritDoc Storage.list} */
  async list(options: ListOptions = {}): Promise<ListResult> {
    const delimiter = options.delimiter === "" ? undefined : options.delimiter;
    const { res, body } = await this.#send({
      method: "GET",
      query: [
        ["list-type", "2"],
        ["prefix", options.prefix],
        ["start-after", options.startAfter],
        ["continuation-token", options.continuationToken],
        ["max-keys", options.maxKeys === undefined ? undefined : String(options.maxKeys)],
        ["delimiter", delimiter],
      ],
    });
    const root = this.#parseBody(res, body, "ListBucketResult", "LIST");
    return listResultOf(root, delimiter !== undefined);
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
    return listVersionsResultOf(root);
  }

  /** {@inheritDoc Storage.versioning} */
  async versioning(): Promise<VersioningStatus> {
    const { res, body } = await this.#send({ method: "GET", query: [["versioning", ""]] });
    const root = this.#parseBody(res, body, "VersioningConfiguration", "GET versioning");
    const status = text(root, "Status").trim();
    if (status === "Enabled" || status === "Suspended") return status;
    return "Disabled";
  }

  /** Sends one operation with the retry policy; resolves only on a 2xx. */
  async #send(op: Op): Promise<Ok> {
    if (op.key !== undefined) checkKey(op.key);
    const url = requestUrl(this.#address, op.key, op.query ?? []);
    // The verdict of the last try: only this driver knows whether a failed request may have
    // committed, so it, not the error type, decides about another try.
    let last: Failure | undefined;
    await this.#slowDown.wait();
    return retry(
      async () => {
        // The whole try (the answer's body too) within the request timeout.
        const tried = await withDeadline(this.#timeoutMs, (signal) => this.#try(op, url, signal));
        const outcome = this.#slowDown.observe(tried);
        if (!("error" in outcome)) return outcome;
        last = outcome;
        throw outcome.error;
      },
      {
        ...this.#retry,
        retryable: (error) => last !== undefined && last.error === error && last.retry,
        retryAfterMs: (error) =>
          this.#slowDown.retryAfterMs(last?.error === error ? last : undefined),
      },
    );
  }

  /** One try, ended by `signal`: sign, fetch, read the body; classify any failure. */
  async #try(op: Op, url: string, signal: AbortSignal): Promise<Ok | Failure> {
    const signed = this.#signer.sign({
      method: op.method,
      url,
      headers: { ...op.headers },
      datetime: amzDate(this.#now() + this.#signingOffsetMs),
    });
    const host = new URL(url).host;
    const where = { where: `${op.method} ${this.#where(op.key)}`, timeoutMs: this.#timeoutMs };
    let res: S3Response;
    const sentMs = this.#now();
    try {
      // URL and headers, not a Request: Bun mishandles Request objects with bodies (aws4fetch #70).
      res = await this.#fetch(signed.url, {
        method: op.method,
        headers: signed.headers,
        ...(op.body === undefined ? {} : { body: op.body as Uint8Array<ArrayBuffer> }),
        redirect: "manual",
        signal,
      });
    } catch (cause) {
      return networkFailure(op, host, cause, false, where);
    }
    this.#recordServerTime(res, sentMs);

    if (res.status >= 200 && res.status < 300) {
      if (op.method === "PUT" || op.method === "DELETE" || op.method === "HEAD") {
        // Status and headers are the answer; a body read failing now must not undo a commit.
        await res.arrayBuffer().catch(() => undefined);
        return { res, body: new Uint8Array(0) };
      }
      try {
        const body = await readBody(res, op.maxBytes, (size, atLeast) =>
          objectTooLarge(this.name, op.key ?? "", size, op.maxBytes!, atLeast),
        );
        return body instanceof Uint8Array ? { res, body } : body;
      } catch (cause) {
        return networkFailure(op, host, cause, true, where);
      }
    }
    return this.#failed(op, res);
  }

  /** Reads a non-2xx answer and maps it to a failure (or, for a DELETE of nothing, success). */
  async #failed(op: Op, res: S3Response): Promise<Ok | Failure> {
    let bodyText = "";
    if (op.method !== "HEAD") bodyText = await readErrorText(res);
    const info = parseErrorBody(bodyText);
    // HEAD errors have no body; MinIO still names the error in a header (AWS does not).
    const headerCode = res.headers.get("x-minio-error-code");
    if (info.code === undefined && headerCode !== null && headerCode !== "") info.code = headerCode;
    if (op.method === "DELETE" && deletedNothing(res.status, info.code, op)) {
      // Deleting what does not exist is success by contract (S3 itself mostly answers 204).
      return { res, body: new Uint8Array(0) };
    }
    const skew = this.#serverTime;
    const failure = httpFailure(op, res, info, bodyText, {
      where: `${op.method} ${this.#where(op.key)}`,
      bucket: this.bucket,
      endpoint: this.endpoint,
      attempts: this.#retry.attempts,
      redact: this.#redact,
      canCorrectClock: skew !== undefined,
    });
    // Sign with the server's clock from now on (see errors.ts).
    if (failure.correctClock && skew !== undefined) {
      this.#signingOffsetMs = skew.serverMs - skew.localMs;
    }
    return failure;
  }

  /** Parses an XML response body, insisting on the expected root element. */
  #parseBody(res: S3Response, body: Uint8Array, rootName: string, what: string): XmlElement {
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

  #requireEtag(res: S3Response, method: string, key: string): string {
    const etag = res.headers.get("etag");
    if (etag === null || etag === "") {
      throw new StorageError(
        `${method} ${this.#where(key)}: the response has no ETag header; ${NOT_S3_HINT}`,
        { key, status: res.status },
      );
    }
    return etag;
  }

  #recordServerTime(res: S3Response, sentMs: number): void {
    const date = res.headers.get("date");
    if (date === null) return;
    const serverMs = Date.parse(date);
    if (Number.isNaN(serverMs)) return;
    // An HTTP date has whole seconds: the server's time was somewhere in the next 1000 ms.
    this.#serverTime = { serverMs, resolutionMs: 1000, sentMs, localMs: this.#now() };
  }

  #where(key: string | undefined): string {
    return key === undefined ? this.name : `${this.name}/${key}`;
  }
}
