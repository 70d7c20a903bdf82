/**
 * Check: the scratch prefix is removed, versions included when the storage can delete them.
 *
 * @module
 */
import { describeError, type Probe } from "./probe.ts";
import type { CheckWarning } from "./run.ts";

/** Remove every object and (when the storage can) every version under the scratch prefix. */
export async function cleanup(p: Probe, evidence: string[]): Promise<void> {
  const storage = p.queue.storage;
  let deleted = 0;
  let token: string | undefined;
  for (;;) {
    const page = await storage.list({
      prefix: p.scratch,
      ...(token === undefined ? {} : { continuationToken: token }),
    });
    await Promise.all(page.objects.map((o) => storage.delete(o.key)));
    deleted += page.objects.length;
    if (!page.isTruncated) break;
    token = page.nextContinuationToken;
  }
  evidence.push(`deleted ${deleted} object(s) under ${p.scratch}`);
  if (storage.deleteVersion === undefined) {
    evidence.push("the storage cannot delete versions; delete markers and old versions remain");
    return;
  }
  let removed = 0;
  for (let pass = 0; pass < 3; pass++) {
    // Deleting versions changes the listing, so start over from the top until none is left.
    const page = await storage.listVersions({ prefix: p.scratch });
    if (page.versions.length === 0) break;
    await Promise.all(page.versions.map((v) => storage.deleteVersion!(v.key, v.versionId)));
    removed += page.versions.length;
    if (!page.isTruncated) break;
  }
  evidence.push(`removed ${removed} version(s) and delete marker(s)`);
}

/** The cleanup check: a failure is only a warning (the scratch objects are not used). */
export async function checkCleanup(
  p: Probe,
  evidence: string[],
): Promise<CheckWarning | undefined> {
  try {
    await cleanup(p, evidence);
    return undefined;
  } catch (error) {
    evidence.push(`cleanup failed: ${describeError(error)}`);
    return {
      status: "warn",
      fix: `Delete the objects under ${p.scratch} by hand; they are not used by the queue.`,
    };
  }
}
