/**
 * What went wrong with one S3 request, as a typed error and a retry decision.
 *
 * The decision is the driver's safety rule: a conditional write that may have reached the server
 * is never re-sent blindly but reported as {@link AmbiguousWriteError}, so the caller re-reads
 * and decides. Everything else that cannot have committed (refused connections, throttling,
 * 5xx on plain requests) may be retried.
 *
 * @module
 */

import {
  AccessDeniedError,
  AmbiguousWriteError,
  ConflictError,
  NotFoundError,
  type OqError,
  type OqErrorDetails,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
} from "../../errors.ts";
import { errorMessage } from "../../util/errors.ts";
import type { S3Response } from "./options.ts";
import { hasVersionId, type Op } from "./request.ts";
import { child, parseXml, type XmlElement } from "./xml.ts";

/** Appended when the answer does not look like S3 at all. */
export const NOT_S3_HINT = "is OQ_ENDPOINT pointing at an S3 API?";
/** Appended to every access-denied message. */
export const CREDENTIALS_HINT =
  "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy";

/** What went wrong with one try, and whether another try is allowed. */
export interface Failure {
  error: OqError;
  retry: boolean;
  /** Server-requested wait (`Retry-After`), in ms. */
  retryAfterMs?: number;
  /** The server refused our clock: sign with its clock (learned from `Date`) from now on. */
  correctClock?: boolean;
}

/** What the error mapping needs to know about the driver, for messages and decisions. */
export interface FailureContext {
  /** Names the request in messages, e.g. `GET s3://bucket/key`. */
  where: string;
  bucket: string;
  endpoint: string;
  /** Total tries per request, for "after N tries" in messages. */
  attempts: number;
  /** Strips credentials from text that came from outside. */
  redact: (text: string) => string;
  /** The server's clock is known (from a `Date` header), so a skewed signature can be fixed. */
  canCorrectClock: boolean;
}

/** What the error body of a failed response told us. */
export interface ErrorBody {
  /** The body was an S3 `<Error>` document. */
  isS3: boolean;
  code?: string;
  message?: string;
  requestId?: string;
}

/** Reads an S3 `<Error>` document; anything else is reported as not S3. */
export function parseErrorBody(body: string): ErrorBody {
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

/** Says what came back instead of S3 XML, e.g. `HTTP 200 with an HTML page`. */
export function describeBody(res: S3Response, body: string): string {
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

/**
 * True when a failed DELETE only means "nothing there": a 404 for the key or version, or
 * MinIO's 400 for a version id it cannot even parse (so no such version exists).
 */
export function deletedNothing(status: number, code: string | undefined, op: Op): boolean {
  if (status === 404) return code === "NoSuchKey" || code === "NoSuchVersion";
  return status === 400 && code === "InvalidArgument" && hasVersionId(op);
}

/** True for the answers of a server that cannot do DeleteObjects as we send it. */
export function refusesBatchDelete(error: unknown): boolean {
  if (!(error instanceof StorageError)) return false;
  if (error.status === 501 || error.status === 405) return true;
  return (
    error.s3Code === "MissingContentMD5" ||
    error.s3Code === "InvalidDigest" ||
    error.s3Code === "NotImplemented" ||
    error.s3Code === "InvalidRequest"
  );
}

/**
 * Classifies a thrown fetch (or body read): never sent, or sent with an unknown outcome.
 * `afterResponse` is true when the status line already arrived.
 */
export function networkFailure(
  op: Op,
  host: string,
  cause: unknown,
  afterResponse: boolean,
  context: { where: string; timeoutMs: number },
): Failure {
  const { reason, sent } = describeNetworkError(cause, context.timeoutMs);
  const details: OqErrorDetails = { cause };
  if (op.key !== undefined) details.key = op.key;
  if (op.conditional && (sent || afterResponse)) {
    return {
      retry: false,
      error: new AmbiguousWriteError(
        `${context.where}: ${reason} talking to ${host} after the conditional write was sent; it may or may not have happened: re-read the object and compare before deciding`,
        details,
      ),
    };
  }
  return {
    retry: true,
    error: new UnavailableError(
      `${context.where}: cannot reach ${host} (${reason}); is the server running and OQ_ENDPOINT right?`,
      details,
    ),
  };
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
  return { reason: `network error: ${errorMessage(error).slice(0, 120)}`, sent: true };
}

/** A non-2xx answer, digested into the parts every message is built from. */
interface Reply {
  status: number;
  /** The S3 error code, redacted. */
  code: string | undefined;
  details: OqErrorDetails;
  where: string;
  /** `HTTP 500`, or `503 SlowDown: <server message>`. */
  said: string;
  /** A hint when the body did not look like S3, else "". */
  notS3: string;
  /** ` (request id ...)`, or "". */
  reqId: string;
}

/** Maps a non-2xx response to a typed error and a retry decision. */
export function httpFailure(
  op: Op,
  res: S3Response,
  info: ErrorBody,
  bodyText: string,
  context: FailureContext,
): Failure {
  const reply = digest(op, res, info, bodyText, context);
  return (
    retryableFailure(op, res, reply, context) ?? {
      retry: false,
      error: permanentError(op, res, reply, context),
    }
  );
}

function digest(
  op: Op,
  res: S3Response,
  info: ErrorBody,
  bodyText: string,
  context: FailureContext,
): Reply {
  const { redact } = context;
  const status = res.status;
  const code = info.code === undefined ? undefined : redact(info.code);
  const requestId = info.requestId ?? res.headers.get("x-amz-request-id") ?? undefined;
  const details: OqErrorDetails = { status };
  if (code !== undefined) details.s3Code = code;
  if (requestId !== undefined) details.requestId = redact(requestId);
  if (op.key !== undefined) details.key = op.key;
  const serverMessage = info.message === undefined ? "" : `: ${redact(info.message)}`;
  // HEAD answers never carry a body, so only a body-bearing reply can prove "not S3".
  const notS3 =
    op.method !== "HEAD" && !info.isS3
      ? `; the endpoint did not answer like S3 (${describeBody(res, bodyText)}): ${NOT_S3_HINT}`
      : "";
  return {
    status,
    code,
    details,
    where: context.where,
    said: code === undefined ? `HTTP ${status}` : `${status} ${code}${serverMessage}`,
    notS3,
    reqId: details.requestId === undefined ? "" : ` (request id ${details.requestId})`,
  };
}

/** The answers another try may fix: throttling, server errors, and a clock we can correct. */
function retryableFailure(
  op: Op,
  res: S3Response,
  r: Reply,
  context: FailureContext,
): Failure | undefined {
  const { status, code, details, where, said, notS3, reqId } = r;
  if (status === 429 || (status === 503 && code === "SlowDown")) {
    const retryAfterMs = retryAfter(res.headers.get("retry-after"));
    return {
      retry: true,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      error: new ThrottledError(
        `${where}: the server asked us to slow down (${said}) after ${context.attempts} tries${notS3}${reqId}`,
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
        `${where}: server error (${said}) after ${context.attempts} tries${notS3}${reqId}`,
        details,
      ),
    };
  }
  if (status === 403 && code === "RequestTimeTooSkewed" && context.canCorrectClock) {
    // Sign with the server's clock from now on, as the AWS SDKs do: a skewed local clock must
    // not take the queue down, and the request was refused before anything was written.
    return {
      retry: true,
      correctClock: true,
      error: new AccessDeniedError(
        `${where}: access denied (${said})${accessHint(code)}; ${CREDENTIALS_HINT}${reqId}`,
        details,
      ),
    };
  }
  return undefined;
}

/** The typed error of an answer no retry can change. */
function permanentError(op: Op, res: S3Response, r: Reply, context: FailureContext): OqError {
  const { status, code, details, where, said, notS3, reqId } = r;
  switch (status) {
    case 404:
      return notFound(r, context);
    case 405:
      // GET of a version that is a delete marker: there is no body to read.
      if (res.headers.get("x-amz-delete-marker") === "true") {
        return new NotFoundError(`${where}: that version is a delete marker${reqId}`, details);
      }
      return new StorageError(`${where}: method not allowed (${said})${notS3}${reqId}`, details);
    case 412:
      return new PreconditionFailedError(
        `${where}: precondition failed (${said}): ${
          op.headers?.["if-none-match"] !== undefined
            ? "the object already exists"
            : "the object changed since it was read"
        }${notS3}${reqId}`,
        details,
      );
    case 409:
      return new ConflictError(
        `${where}: a concurrent operation interfered (${said}); the write did not happen: re-read and decide again${notS3}${reqId}`,
        details,
      );
    case 403:
      return new AccessDeniedError(
        `${where}: access denied (${said})${accessHint(code)}; ${CREDENTIALS_HINT}${notS3}${reqId}`,
        details,
      );
    case 301:
    case 307:
    case 308:
      return redirected(res, r);
    default:
      return otherError(op, r);
  }
}

function notFound(r: Reply, context: FailureContext): NotFoundError {
  const { code, details, where, said, notS3, reqId } = r;
  if (code === "NoSuchBucket") {
    return new NotFoundError(
      `bucket ${context.bucket} does not exist at ${context.endpoint}; create it or fix OQ_BUCKET${reqId}`,
      details,
    );
  }
  if (code === "NoSuchVersion") {
    return new NotFoundError(`${where}: no such version${reqId}`, details);
  }
  return new NotFoundError(`${where}: not found (${said})${notS3}${reqId}`, details);
}

function redirected(res: S3Response, r: Reply): StorageError {
  const region = res.headers.get("x-amz-bucket-region");
  return new StorageError(
    `${r.where}: the server redirected (${r.said}); the bucket lives in ${
      region === null ? "another region" : `region ${region}`
    }: set OQ_REGION (and OQ_ENDPOINT) to match${r.notS3}${r.reqId}`,
    r.details,
  );
}

function otherError(op: Op, r: Reply): OqError {
  const { status, code, details, where, said, notS3, reqId } = r;
  if (status === 400 && code === "InvalidArgument" && hasVersionId(op)) {
    // MinIO rejects a malformed version id with 400; to the caller it is simply absent.
    return new NotFoundError(`${where}: no such version (${said})${reqId}`, details);
  }
  if (code === "ExpiredToken" || code === "InvalidToken" || code === "TokenRefreshRequired") {
    return new AccessDeniedError(
      `${where}: the session token was rejected (${said}); refresh AWS_SESSION_TOKEN; ${CREDENTIALS_HINT}${reqId}`,
      details,
    );
  }
  if (code === "AuthorizationHeaderMalformed") {
    return new StorageError(
      `${where}: the server rejected the signature's scope (${said}); check OQ_REGION${reqId}`,
      details,
    );
  }
  return new StorageError(`${where}: ${said}${notS3}${reqId}`, details);
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

function retryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value.trim());
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}
