/**
 * Every version and delete marker under a prefix, page after page of `ListObjectVersions`: the
 * one pager that task history, tests and the benchmark read versions through.
 *
 * @module
 */
import type { Storage, VersionInfo } from "./storage.ts";

/**
 * Yield every version and delete marker under `prefix` (keys in byte order, each key's versions
 * newest first), one LIST per page.
 */
export async function* versionsUnder(
  storage: Pick<Storage, "listVersions">,
  prefix: string,
): AsyncGenerator<VersionInfo> {
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await storage.listVersions({
      prefix,
      ...(keyMarker === undefined ? {} : { keyMarker }),
      ...(versionIdMarker === undefined ? {} : { versionIdMarker }),
    });
    yield* page.versions;
    if (!page.isTruncated) return;
    keyMarker = page.nextKeyMarker;
    versionIdMarker = page.nextVersionIdMarker;
  }
}
