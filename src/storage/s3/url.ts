/**
 * Endpoints and request URLs of the S3 driver: validating the configured endpoint, addressing
 * the bucket path-style or virtual-hosted, and percent-encoding keys and query parameters the
 * way SigV4 signs them.
 *
 * @module
 */
import { ConfigError, ValidationError } from "../../errors.ts";

/** A validated endpoint: the parsed URL and its path without a trailing slash. */
export interface Endpoint {
  base: URL;
  /** Kept apart from the URL: a URL's pathname can never be empty, so "/" would double up. */
  basePath: string;
}

/**
 * Parses and checks `OQ_ENDPOINT`; throws {@link ConfigError} saying what to fix. `redact`
 * strips credentials from anything echoed back.
 */
export function parseEndpoint(endpoint: string, redact: (text: string) => string): Endpoint {
  let base: URL;
  try {
    base = new URL(endpoint);
  } catch {
    throw new ConfigError(
      `S3 endpoint "${redact(endpoint)}" is not a valid URL: set OQ_ENDPOINT to e.g. http://127.0.0.1:9000`,
    );
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new ConfigError(
      `S3 endpoint must use http or https, not "${redact(base.protocol)}": fix OQ_ENDPOINT (include the scheme, e.g. http://127.0.0.1:9000)`,
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
  return { base, basePath: base.pathname.replace(/\/+$/, "") };
}

/** Where a request goes: the endpoint, the bucket, and how the bucket is addressed. */
export interface BucketAddress extends Endpoint {
  bucket: string;
  forcePathStyle: boolean;
}

/** The request URL: path-style or virtual-hosted, each key segment percent-encoded. */
export function requestUrl(
  at: BucketAddress,
  key: string | undefined,
  query: Array<[string, string | undefined]>,
): string {
  const url = new URL(at.base.href);
  let path = at.basePath;
  if (at.forcePathStyle) path += `/${at.bucket}`;
  else url.hostname = `${at.bucket}.${url.hostname}`;
  if (key !== undefined) path += `/${encodeKey(key)}`;
  else if (!at.forcePathStyle || path === "") path += "/";
  // Built by hand: URLSearchParams writes spaces as "+", which S3 may read as a literal plus.
  const search = query
    .filter((pair): pair is [string, string] => pair[1] !== undefined)
    .map(([k, v]) => (v === "" ? encodeRfc3986(k) : `${encodeRfc3986(k)}=${encodeRfc3986(v)}`))
    .join("&");
  return `${url.origin}${path}${search === "" ? "" : `?${search}`}`;
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

/** Refuses keys no URL can address: empty ones, and ones with `.` or `..` segments. */
export function checkKey(key: string): void {
  if (key === "") throw new ValidationError("S3 object key must not be empty");
  // URL parsers collapse "." and ".." segments (even percent-encoded), so the request would
  // silently address a different object.
  for (const segment of key.split("/")) {
    if (segment === "." || segment === "..") {
      throw new ValidationError(`S3 object key "${key}" has a "." or ".." segment`, { key });
    }
  }
}
