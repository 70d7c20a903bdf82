/**
 * Reading the body of a GET that succeeded, within `GetOptions.maxBytes`: an object over the
 * bound is refused by its `Content-Length` before any of the body is read, and, when that header
 * is absent or understates it, by counting the bytes of the body stream, which is cancelled at
 * the first chunk past the bound (the connection is dropped, not drained). And reading an error
 * answer's body, of which only the first {@link MAX_ERROR_BODY_BYTES} are ever pulled.
 *
 * Portable (web-standard globals only).
 *
 * @module
 */
import type { OqError } from "../../errors.ts";
import { readPrefix } from "../max-bytes.ts";
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
  if (res.body === undefined || res.body === null) {
    const body = new Uint8Array(await res.arrayBuffer());
    return body.length > maxBytes ? { retry: false, error: tooLarge(body.length, false) } : body;
  }
  const { bytes, complete } = await readPrefix(res.body, maxBytes);
  return complete ? bytes : { retry: false, error: tooLarge(maxBytes, true) };
}

/**
 * The most of an error answer's body the driver reads, in bytes. S3's error XML is well under
 * 1 KiB; a proxy's or a broken server's error page can be any size, and every failed request
 * (each retry of it) would download it whole.
 */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

const decoder = new TextDecoder();

/**
 * The text of an error answer's body, at most its first {@link MAX_ERROR_BODY_BYTES}: past them
 * the stream is cancelled (the connection is dropped, not drained). `""` when the body cannot be
 * read. A client without a body stream (a fetch of one's own) is read whole.
 */
export async function readErrorText(res: S3Response): Promise<string> {
  try {
    if (res.body === undefined || res.body === null) return await res.text();
    return decoder.decode((await readPrefix(res.body, MAX_ERROR_BODY_BYTES)).bytes);
  } catch {
    return "";
  }
}
