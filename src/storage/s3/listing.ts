/**
 * Parsing of S3 list responses (ListObjectsV2 and ListObjectVersions) into oq's storage types.
 *
 * @module
 */
import type { ListResult, ListVersionsResult, ObjectInfo, VersionInfo } from "../storage.ts";
import { isoDate } from "./request.ts";
import { child, children, text, type XmlElement } from "./xml.ts";

/**
 * The objects, common prefixes and continuation token of a ListBucketResult (ListObjectsV2).
 * `delimited`: the request had a delimiter, so the result carries `prefixes` (maybe empty).
 */
export function listResultOf(root: XmlElement, delimited = false): ListResult {
  const objects: ObjectInfo[] = children(root, "Contents").map((c) => ({
    key: text(c, "Key"),
    etag: text(c, "ETag"),
    size: Number(text(c, "Size") || "0"),
    lastModified: isoDate(text(c, "LastModified")),
  }));
  const result: ListResult = {
    objects,
    isTruncated: text(root, "IsTruncated").trim() === "true",
  };
  if (delimited) {
    result.prefixes = children(root, "CommonPrefixes").map((c) => text(c, "Prefix"));
  }
  const next = child(root, "NextContinuationToken");
  if (next !== undefined && next.text !== "") result.nextContinuationToken = next.text;
  return result;
}

/** The versions, delete markers and next markers of a ListVersionsResult. */
export function listVersionsResultOf(root: XmlElement): ListVersionsResult {
  const result: ListVersionsResult = {
    versions: versionsOf(root),
    isTruncated: text(root, "IsTruncated").trim() === "true",
  };
  const nextKey = child(root, "NextKeyMarker");
  if (nextKey !== undefined && nextKey.text !== "") result.nextKeyMarker = nextKey.text;
  const nextVersion = child(root, "NextVersionIdMarker");
  if (nextVersion !== undefined && nextVersion.text !== "") {
    result.nextVersionIdMarker = nextVersion.text;
  }
  return result;
}

/** The versions and delete markers of a ListVersionsResult, in history order. */
function versionsOf(root: XmlElement): VersionInfo[] {
  const versions: VersionInfo[] = [];
  // Versions and delete markers interleave; document order is the history order.
  for (const el of root.children) {
    if (el.name !== "Version" && el.name !== "DeleteMarker") continue;
    const marker = el.name === "DeleteMarker";
    const info: VersionInfo = {
      key: text(el, "Key"),
      versionId: text(el, "VersionId"),
      isLatest: text(el, "IsLatest").trim() === "true",
      isDeleteMarker: marker,
      lastModified: isoDate(text(el, "LastModified")),
      size: marker ? 0 : Number(text(el, "Size") || "0"),
    };
    const etag = child(el, "ETag");
    if (!marker && etag !== undefined) info.etag = etag.text;
    versions.push(info);
  }
  return versions;
}
