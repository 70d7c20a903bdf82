/**
 * How many bytes oq reads of an object: the one source of truth for the bounds every routine
 * read passes as `GetOptions.maxBytes`. A reader cannot know which options the writer of an
 * object ran with, so the bounds follow from the largest value any writer is allowed
 * ({@link MAX_PAYLOAD_THRESHOLD_BYTES}), not from this process's own options. An object over its
 * bound was not written by oq: it is refused unread as `MalformedObjectError`, which every reader
 * already reports once, skips and leaves in place, so one planted object of hundreds of MB
 * cannot run every worker that lists it out of memory. See docs/protocol.md, "Malformed objects".
 *
 * Portable (web-standard globals only).
 *
 * @module
 */
import { objectTooLarge } from "../storage/max-bytes.ts";
import type { GetOptions, GetResult, Storage } from "../storage/storage.ts";

/**
 * The largest `payloadThresholdBytes` a queue accepts: 4 MiB. An input or output up to the
 * threshold is kept inside the task record (and copied into each of its versions), so this is
 * what bounds a record; larger values are stored apart, where their size is not limited by it.
 */
export const MAX_PAYLOAD_THRESHOLD_BYTES = 4 * 1024 * 1024;

/**
 * Room in a document for everything but an inline input and output: 20 history entries, a last
 * error of at most `MAX_TASK_ERROR_CHARS` characters, progress (4 KiB), a lease, a cancel
 * reason, ids, dates, and fields a newer version may add. All of it is tens of KiB at most;
 * 8 MiB leaves a wide margin.
 */
const DOCUMENT_MARGIN_BYTES = 8 * 1024 * 1024;

/**
 * The largest object oq reads as a document, 16 MiB: a task record holding an input and an output
 * each of {@link MAX_PAYLOAD_THRESHOLD_BYTES}, plus a margin of 8 MiB. Schedules (whose inline
 * input is held to {@link MAX_PAYLOAD_THRESHOLD_BYTES} too), limit objects, heartbeats, the
 * manifest, finished journals and doctor verdicts are far smaller and share this bound. A
 * payload object stored apart is bounded instead by the size its reference records.
 */
export const MAX_DOCUMENT_BYTES = 2 * MAX_PAYLOAD_THRESHOLD_BYTES + DOCUMENT_MARGIN_BYTES;

/**
 * Read `key` refusing an object over `maxBytes` (default {@link MAX_DOCUMENT_BYTES}) with
 * `MalformedObjectError`: the bound is passed to the storage, so that it does not read such a
 * body at all, and checked again on the body returned, since a `Storage` of a user's own may
 * ignore the option. `options` may name a version. Throws what `Storage.get` throws.
 */
export async function getBounded(
  storage: Storage,
  key: string,
  maxBytes: number = MAX_DOCUMENT_BYTES,
  options: Omit<GetOptions, "maxBytes"> = {},
): Promise<GetResult> {
  const got = await storage.get(key, { ...options, maxBytes });
  if (got.body.byteLength > maxBytes)
    throw objectTooLarge(storage.name, key, got.body.byteLength, maxBytes);
  return got;
}
