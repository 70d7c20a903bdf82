/**
 * Reading the body of a GET that succeeded, within `GetOptions.maxBytes`: an object over the
 * bound is refused by its `Content-Length` before any of the body is read, and, when that header
 * is absent or understates it, by counting the bytes of the body stream, which is cancelled at
 * the first chunk past the bound (the connection is dropped, not drained).
 *
 * Portable (web-standard globals only).
 *
 * @module
 */
import type { OqError } from "../../errors.ts";
import { readAtMost } from "../max-bytes.ts";
import type { Failure } from "./errors.ts";
import type { S3Response } from "./options.ts";

/**
 * The body of `res`, read whole without `maxBytes`. With it, a refusal when the object is larger:
 * `tooLarge(size, atLeast)` makes its error (`atLeast`: only known to exceed the bound). Never
 * retried: the same object would be refused again. A failure while reading the body rejects, for
 * the caller to classify as a network failure.
 */
export async function readBody(
  res: S3Response,
  maxBytes: number | undefined,
  tooLarge: (size: number, atLeast: boolean) => OqError,
): Promise<Uint8Array | Failure> {
  if (maxBytes === undefined) return new Uint8Array(await res.arrayBuffer());
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    return { retry: false, error: tooLarge(declared, false) };
  }
  // A client without a body stream (a fetch of one's own) is read whole and checked after.
  const body =
    res.body === undefined || res.body === null
      ? new Uint8Array(await res.arrayBuffer())
      : await readAtMost(res.body, maxBytes);
  if (body === undefined) return { retry: false, error: tooLarge(maxBytes, true) };
  if (body.length > maxBytes) return { retry: false, error: tooLarge(body.length, false) };
  return body;
}
