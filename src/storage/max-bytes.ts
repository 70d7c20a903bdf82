/**
 * `GetOptions.maxBytes`, shared by every driver: the check of the option, the error an object
 * over the bound is refused with, and a bounded read of a web stream ({@link readPrefix}). An
 * object that someone planted at hundreds of MB must never be read whole by a reader that only
 * expects a small document: every worker polling it would hold, decode and parse it, and run out
 * of memory.
 *
 * Portable (web-standard globals only).
 *
 * @module
 */
import { MalformedObjectError, ValidationError } from "../errors.ts";
import { joinChunks } from "../util/bytes.ts";
import type { S3Body } from "./s3/options.ts";

/** Throw `ValidationError` unless `maxBytes` is absent or a whole number of bytes, at least 0. */
export function checkMaxBytes(maxBytes: number | undefined): void {
  if (maxBytes === undefined) return;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
    throw new ValidationError(
      `Invalid maxBytes ${JSON.stringify(maxBytes)}: give a whole number of bytes, at least 0.`,
    );
}

/** True when an object of `size` bytes is over the bound `maxBytes` (none when undefined). */
export function overBound(size: number, maxBytes: number | undefined): boolean {
  return maxBytes !== undefined && size > maxBytes;
}

/**
 * The error an object over `maxBytes` is refused with: `MalformedObjectError` (code
 * `MALFORMED`), naming `key`, the size and the bound, so callers treat it as they treat any
 * object oq did not write (report it, skip it, leave it for the operator). `size` is the object's
 * size when known; `atLeast` says it is only a lower bound (a body counted until past the bound).
 * `where` names the storage (`s3://bucket`, `file:./.oq`).
 */
export function objectTooLarge(
  where: string,
  key: string,
  size: number,
  maxBytes: number,
  atLeast = false,
): MalformedObjectError {
  const sized = atLeast ? `more than ${maxBytes} bytes` : `${size} bytes`;
  return new MalformedObjectError(
    `Object ${key} in ${where} is ${sized}, over the ${maxBytes}-byte bound of this read: left unread. oq never writes an object this large where it reads one: remove it, or put back what oq wrote.`,
    { key },
  );
}

/**
 * The first `maxBytes` bytes of `stream`, and whether they are all of it (`complete`). Past the
 * bound it stops pulling at the first chunk over it and cancels the stream (the connection is
 * dropped, not drained), so no more than one chunk past the bound is ever read. Errors of the
 * stream reject as they are. Bounded GETs and error answers both read through here.
 */
export async function readPrefix(
  stream: S3Body,
  maxBytes: number,
): Promise<{ bytes: Uint8Array; complete: boolean }> {
  const reader = "getReader" in stream ? stream.getReader() : stream;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { bytes: ownBytes(chunks, total), complete: true };
    if (total + value.byteLength > maxBytes) {
      chunks.push(value.subarray(0, maxBytes - total));
      await reader.cancel().catch(() => undefined);
      return { bytes: ownBytes(chunks, maxBytes), complete: false };
    }
    chunks.push(value);
    total += value.byteLength;
  }
}

/** `chunks` (of `total` bytes) as one array of the caller's own. */
function ownBytes(chunks: Uint8Array[], total: number): Uint8Array {
  const only = chunks.length === 1 ? chunks[0]! : undefined;
  // A chunk may be a view into a larger pooled buffer: give the caller bytes of its own.
  if (only !== undefined) return only.byteLength === only.buffer.byteLength ? only : only.slice();
  return joinChunks(chunks, total);
}
