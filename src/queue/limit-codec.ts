/**
 * The limit object's format (`{prefix}limits/{type}.json`): parsing, with what makes a stored
 * body not a limit object, and encoding. The objects are kept by `LimitStore` (./limits.ts).
 *
 * Portable (web-standard globals only).
 *
 * @module
 */
import * as v from "valibot";
import { MalformedObjectError, NotFoundError } from "../errors.ts";
import type { Storage } from "../storage/storage.ts";
import { getBounded } from "../store/bounds.ts";
import { validate } from "../util/schema.ts";
import { finiteNumber } from "../util/stored-values.ts";
import type { LimitDocument } from "./limits.ts";

const holderSchema = v.looseObject({ task: v.string(), worker: v.string(), until: v.string() });
const limitSchema = v.looseObject({
  oq: v.literal("limit"),
  type: v.string(),
  // Finite: JSON reads `1e999` as Infinity, which the next write would store as null (no limit).
  concurrency: v.nullable(v.pipe(finiteNumber, v.integer(), v.minValue(1))),
  ratePerSecond: v.nullable(v.pipe(finiteNumber, v.gtValue(0))),
  updatedAt: v.string(),
  holders: v.record(v.string(), holderSchema),
  starts: v.array(v.string()),
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why `body` is not a limit object (`not JSON`, the schema's summary), or its document. */
export function readLimit(body: Uint8Array): { doc: LimitDocument } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(body));
  } catch {
    return { problem: "not JSON" };
  }
  const result = validate(limitSchema, value);
  return result.ok ? { doc: result.value as LimitDocument } : { problem: result.summary };
}

/**
 * The object at `key` as {@link readLimit} reads it, with its ETag, or `undefined` when missing.
 * One larger than any document oq writes is not read: its problem says so, and its ETag comes
 * from a HEAD, so that it can be replaced like any other object that is not a limit object.
 */
export async function readLimitObject(
  storage: Storage,
  key: string,
): Promise<{ etag: string; read: ReturnType<typeof readLimit> } | undefined> {
  try {
    const got = await getBounded(storage, key);
    return { etag: got.etag, read: readLimit(got.body) };
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    if (!(error instanceof MalformedObjectError)) throw error;
    const head = await storage.head(key).catch((e: unknown) => {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    });
    return head && { etag: head.etag, read: { problem: error.message } };
  }
}

/** Parse a stored limit object; `MalformedObjectError` naming `key` and the problem otherwise. */
export function parseLimit(body: Uint8Array, key: string): LimitDocument {
  const read = readLimit(body);
  if ("doc" in read) return read.doc;
  throw new MalformedObjectError(
    `Object ${key} is not a valid limit object: ${read.problem}. Set the limits again (oq limit, queue.setLimits) to replace it.`,
    { key },
  );
}

/** A limit object as stored (deterministic: an ambiguous write is recognised by its bytes). */
export function encodeLimit(doc: LimitDocument): Uint8Array {
  return encoder.encode(`${JSON.stringify(doc)}\n`);
}
