/**
 * The shape of one S3 request and of its successful answer, shared by the driver and the
 * error mapping.
 *
 * @module
 */
import type { S3Response } from "./options.ts";

/** What one request is, for signing, retry decisions and messages. */
export interface Op {
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE";
  /** Object key, or undefined for a bucket-level request. */
  key?: string;
  /** Query parameters in the order they are sent. */
  query?: Array<[string, string | undefined]>;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** True for a PUT with If-Match / If-None-Match: such a write must never be re-sent blindly. */
  conditional?: boolean;
  /** For a GET of an object: refuse one larger than this, unread (`GetOptions.maxBytes`). */
  maxBytes?: number;
}

/** A response whose status was 2xx, with its body read in full. */
export interface Ok {
  res: S3Response;
  body: Uint8Array;
}

/** True when the request names a version (`?versionId=`). */
export function hasVersionId(op: Op): boolean {
  return op.query?.some(([k, v]) => k === "versionId" && v !== undefined) ?? false;
}

/** The last second {@link amzDate} formatted, and its text. */
const lastStamp = { second: Number.NaN, text: "" };

/** `YYYYMMDDTHHMMSSZ`, the SigV4 timestamp format. */
export function amzDate(ms: number): string {
  // Every request of a second signs with the same stamp: format it once per second.
  const second = Math.floor(ms / 1000);
  if (second !== lastStamp.second) {
    lastStamp.second = second;
    lastStamp.text = new Date(second * 1000).toISOString().replace(/[:-]|\.\d{3}/g, "");
  }
  return lastStamp.text;
}

/** An HTTP date header as a `Date` (invalid when absent). */
export function httpDate(value: string | null): Date {
  return new Date(value === null ? Number.NaN : Date.parse(value));
}

/** An ISO 8601 time from an XML listing as a `Date`. */
export function isoDate(value: string): Date {
  return new Date(Date.parse(value.trim()));
}

/** The base64 SHA-256 of a request body, for `x-amz-checksum-sha256`. */
export async function sha256Base64(body: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", body as Uint8Array<ArrayBuffer>),
  );
  return btoa(String.fromCharCode(...digest));
}
