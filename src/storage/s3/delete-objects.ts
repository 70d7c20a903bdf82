/**
 * The body and the answer of S3 `DeleteObjects` (`POST ?delete`), in quiet mode: what to send
 * for a batch of keys or of versions, and which of the answer's errors are real (a key or version
 * already gone counts as deleted).
 *
 * @module
 */
import {
  AccessDeniedError,
  type OqError,
  type OqErrorDetails,
  StorageError,
} from "../../errors.ts";
import type { VersionTarget } from "../storage.ts";
import { CREDENTIALS_HINT } from "./errors.ts";
import { children, escapeXml, text, type XmlElement } from "./xml.ts";

/** Most objects one `DeleteObjects` request may name (S3's limit). */
export const MAX_BATCH_DELETE = 1000;

/** A key to delete (a delete marker on a versioned bucket), or one version to remove for good. */
export type DeleteTarget = string | VersionTarget;

/** The key a target names. */
export function targetKey(target: DeleteTarget): string {
  return typeof target === "string" ? target : target.key;
}

/** The XML body of one `DeleteObjects` request for `targets`. */
export function deleteObjectsBody(targets: readonly DeleteTarget[]): Uint8Array {
  const objects = targets.map((t) =>
    typeof t === "string"
      ? `<Object><Key>${escapeXml(t)}</Key></Object>`
      : `<Object><Key>${escapeXml(t.key)}</Key><VersionId>${escapeXml(t.versionId)}</VersionId></Object>`,
  );
  return new TextEncoder().encode(
    '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>' +
      objects.join("") +
      "</Delete>",
  );
}

/**
 * The error for a `DeleteResult` whose `<Error>` entries hold failures (a missing key or version
 * counts as deleted), naming how many of `total` failed and the first; `undefined` when none did.
 */
export function notDeletedError(
  result: XmlElement,
  total: number,
  context: { where: string; status: number; redact: (text: string) => string },
): OqError | undefined {
  const failed = children(result, "Error").filter((e) => {
    const code = text(e, "Code").trim();
    return code !== "NoSuchKey" && code !== "NoSuchVersion";
  });
  const first = failed[0];
  if (first === undefined) return undefined;
  const key = text(first, "Key");
  const code = context.redact(text(first, "Code").trim());
  const message = `${context.where}: ${failed.length} of ${total} keys were not deleted, e.g. ${key}: ${code}: ${context.redact(text(first, "Message").trim())}`;
  const details: OqErrorDetails = { status: context.status, s3Code: code, key };
  return code === "AccessDenied"
    ? new AccessDeniedError(`${message}; ${CREDENTIALS_HINT}`, details)
    : new StorageError(message, details);
}
