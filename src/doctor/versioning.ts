/**
 * Check: bucket versioning, which version history (`getVersions`) relies on. Off is a warning, not a failure.
 *
 * @module
 */
import { isOqError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import { describeError } from "./probe.ts";
import type { CheckWarning } from "./run.ts";

/** Run the check, pushing evidence; returns a warning when versioning is off or unreadable. */
export async function checkVersioning(
  queue: Queue,
  evidence: string[],
): Promise<CheckWarning | undefined> {
  try {
    const status = await queue.storage.versioning();
    evidence.push(`GET ?versioning -> ${status}`);
    if (status !== "Enabled") {
      return {
        status: "warn",
        fix: `Versioning is ${status}: version history (oq history --versions) is unavailable and connect() refuses the bucket unless OQ_ALLOW_NO_VERSIONING=1. Enable it: aws s3api put-bucket-versioning --bucket <bucket> --versioning-configuration Status=Enabled`,
      };
    }
    return undefined;
  } catch (error) {
    evidence.push(`GET ?versioning -> ${describeError(error)}`);
    if (isOqError(error, "ACCESS_DENIED")) {
      return {
        status: "warn",
        fix: "The credentials may not read the bucket's versioning (s3:GetBucketVersioning); grant it so oq can check that version history is kept.",
      };
    }
    throw error;
  }
}
