/**
 * SigV4 request signing for S3: the canonical request (aws4fetch's rules for the `s3` service:
 * the path decoded once and encoded once, the query sorted with repeated keys dropped, every
 * header but a few unsignable ones signed), and the hashing in synchronous JavaScript
 * (`../../util/sha256.ts`) with the signing key derived once per day.
 *
 * Why not aws4fetch's signer itself: it builds a web `Headers` object, and on Node 20 the first
 * `Headers` loads all of undici (24 ms and 10 MB of a starting worker; issue 15), which a
 * Node worker using its own HTTP client never needs otherwise. And it hashes through
 * `crypto.subtle`: three WebCrypto jobs per request and a new `CryptoKey` each time were the
 * largest item of a draining worker's own CPU. `test/storage/s3-signer.test.ts` checks every
 * signature against aws4fetch's.
 *
 * @module
 */
import { toHex } from "../../util/format.ts";
import { type HmacKey, hmacKey, hmacSha256, hmacWith, sha256 } from "../../util/sha256.ts";

/** Headers never signed (as aws4fetch: a proxy may change them, or the client sets them late). */
const UNSIGNABLE = new Set([
  "authorization",
  "content-type",
  "content-length",
  "user-agent",
  "presigned-expires",
  "expect",
  "x-amzn-trace-id",
  "range",
  "connection",
]);

/** `encodeURIComponent` plus the characters RFC 3986 reserves that it leaves alone. */
function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The canonical URI of an S3 path: decoded once (`+` as a space), then encoded once. */
function canonicalPath(pathname: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname.replace(/\+/g, " "));
  } catch {
    decoded = pathname;
  }
  return encodeRfc3986(decoded).replace(/%2F/g, "/");
}

/** The canonical query string: pairs encoded, the first of repeated keys kept, sorted. */
function canonicalQuery(params: URLSearchParams): string {
  const seen = new Set<string>();
  const pairs: [string, string][] = [];
  for (const [k, v] of params) {
    if (k === "" || seen.has(k)) continue;
    seen.add(k);
    pairs.push([encodeRfc3986(k), encodeRfc3986(v)]);
  }
  pairs.sort(([k1, v1], [k2, v2]) => (k1 < k2 ? -1 : k1 > k2 ? 1 : v1 < v2 ? -1 : v1 > v2 ? 1 : 0));
  return pairs.map((pair) => pair.join("=")).join("&");
}

/**
 * Header names lower-cased, values trimmed, repeated names joined with ", " (as a web `Headers`
 * would), `host` dropped (it comes from the URL).
 */
function normalizeHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    if (key === "host") continue;
    const trimmed = value.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    out[key] = key in out ? `${out[key]}, ${trimmed}` : trimmed;
  }
  return out;
}

/** What signing needs to know besides the request. */
export interface SignerCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region: string;
}

/** A request to sign. */
export interface UnsignedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** `YYYYMMDDTHHMMSSZ`. */
  datetime: string;
}

/** A signed request's URL and headers (lower-case names), ready for `fetch`. */
export interface SignedRequest {
  url: string;
  headers: Record<string, string>;
}

/** Signs S3 requests (SigV4 with an unsigned payload), keeping the day's signing key. */
export class S3Signer {
  readonly #credentials: SignerCredentials;
  /** The signing key of `#keyDate` (derived by four HMACs, valid for that UTC day), made ready. */
  #key: HmacKey | undefined;
  #keyDate = "";

  constructor(credentials: SignerCredentials) {
    this.#credentials = credentials;
  }

  /** The request's URL and headers with `Authorization`, `X-Amz-Date` and friends set. */
  sign(request: UnsignedRequest): SignedRequest {
    const c = this.#credentials;
    const url = new URL(request.url);
    const headers = normalizeHeaders(request.headers);
    // The payload is unsigned unless the caller hashed it.
    headers["x-amz-content-sha256"] ??= "UNSIGNED-PAYLOAD";
    headers["x-amz-date"] = request.datetime;
    if (c.sessionToken !== undefined) headers["x-amz-security-token"] = c.sessionToken;
    const signable = ["host", ...Object.keys(headers)].filter((h) => !UNSIGNABLE.has(h)).sort();
    const signedHeaders = signable.join(";");
    const canonicalHeaders = signable
      .map((h) => `${h}:${h === "host" ? url.host : headers[h]!.replace(/\s+/g, " ")}`)
      .join("\n");
    const credentialString = `${request.datetime.slice(0, 8)}/${c.region}/s3/aws4_request`;
    const canonical = [
      request.method.toUpperCase(),
      canonicalPath(url.pathname),
      canonicalQuery(url.searchParams),
      `${canonicalHeaders}\n`,
      signedHeaders,
      headers["x-amz-content-sha256"],
    ].join("\n");
    const stringToSign = [
      "AWS4-HMAC-SHA256",
      request.datetime,
      credentialString,
      toHex(sha256(canonical)),
    ].join("\n");
    const signature = toHex(hmacWith(this.#signingKey(request.datetime.slice(0, 8)), stringToSign));
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${c.accessKeyId}/${credentialString}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return { url: url.toString(), headers };
  }
  #signingKey(date: string): HmacKey {
    if (this.#key === undefined || this.#keyDate !== date) {
      const kDate = hmacSha256(`AWS4${this.#credentials.secretAccessKey}`, date);
      const kRegion = hmacSha256(kDate, this.#credentials.region);
      const kService = hmacSha256(kRegion, "s3");
      this.#key = hmacKey(hmacSha256(kService, "aws4_request"));
      this.#keyDate = date;
    }
    return this.#key;
  }
}
