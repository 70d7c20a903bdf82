/**
 * Argument checks shared by the local drivers (memory, file), so both refuse exactly what S3
 * refuses and stay interchangeable in tests.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import type { PutOptions } from "./storage.ts";

/** S3's largest page. */
export const MAX_KEYS = 1000;
/** S3's longest key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
const utf8 = new TextEncoder();

/** Refuse keys S3 would refuse or not round-trip. */
export function checkKey(key: string): void {
  if (typeof key !== "string" || key === "") {
    throw new ValidationError("object key must be a non-empty string");
  }
  // A lone surrogate has no UTF-8 form: it would not round-trip through S3 (stored as U+FFFD) or a file name.
  if (/\p{Cs}/u.test(key)) {
    throw new ValidationError(
      `object key ${JSON.stringify(key)} is not valid Unicode (lone surrogate)`,
    );
  }
  if (utf8.encode(key).length > MAX_KEY_BYTES) {
    throw new ValidationError(
      `object key is longer than ${MAX_KEY_BYTES} UTF-8 bytes; shorten it`,
      {
        key,
      },
    );
  }
}

/** Refuse contradictory or unsupported conditions. */
export function checkPutOptions(key: string, options: PutOptions): void {
  if (options.ifMatch !== undefined && options.ifNoneMatch !== undefined) {
    throw new ValidationError(`put ${key}: pass ifMatch or ifNoneMatch, not both`, { key });
  }
  if (options.ifNoneMatch !== undefined && options.ifNoneMatch !== "*") {
    throw new ValidationError(`put ${key}: ifNoneMatch only supports "*" (create if absent)`, {
      key,
    });
  }
}

/** The page size to use for `maxKeys`, capped as S3 caps it. */
export function pageSize(maxKeys: number | undefined): number {
  if (maxKeys === undefined) return MAX_KEYS;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) {
    throw new ValidationError(`maxKeys must be an integer from 1 to ${MAX_KEYS}, not ${maxKeys}`);
  }
  // S3 silently caps larger pages; doing the same keeps drivers interchangeable.
  return Math.min(maxKeys, MAX_KEYS);
}
