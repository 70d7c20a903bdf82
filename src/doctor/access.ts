/**
 * Check: connectivity, credentials and the bucket (one LIST under the doctor prefix), and the
 * server clock's offset. When it fails, the later checks are skipped.
 *
 * @module
 */
import { isOqError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import { CheckFailed, describeError } from "./probe.ts";
import { doctorPrefix } from "./verdict.ts";

/** Run the check, pushing evidence; throws `CheckFailed` when the storage cannot be used. */
export async function checkAccess(queue: Queue, evidence: string[]): Promise<undefined> {
  const listing = `LIST prefix=${doctorPrefix(queue)} max-keys=1`;
  try {
    const page = await queue.storage.list({ prefix: doctorPrefix(queue), maxKeys: 1 });
    evidence.push(`${listing} -> 200 (${page.objects.length} object(s))`);
  } catch (error) {
    evidence.push(`${listing} -> ${describeError(error)}`);
    throw new CheckFailed(accessProblem(error), false, accessFix(error), error);
  }
  const offset = queue.clock.offsetMs();
  evidence.push(
    `server clock ${offset >= 0 ? "+" : ""}${Math.round(offset / 1000)}s from the local clock (oq uses the server's)`,
  );
  return undefined;
}

function accessProblem(error: unknown): string {
  if (isOqError(error, "UNAVAILABLE")) return "The storage could not be reached.";
  if (isOqError(error, "ACCESS_DENIED")) return "The credentials were refused or lack permission.";
  if (isOqError(error, "NOT_FOUND")) return "The bucket does not exist.";
  if (isOqError(error, "CONFIG")) return "The configuration is unusable.";
  return `The storage answered an error: ${describeError(error)}`;
}

function accessFix(error: unknown): string {
  if (isOqError(error, "UNAVAILABLE")) {
    return "Check OQ_ENDPOINT (scheme, host, port), the network and that the server is running.";
  }
  if (isOqError(error, "ACCESS_DENIED")) {
    return "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), OQ_REGION, and that the key may GET, PUT, DELETE and LIST in the bucket.";
  }
  if (isOqError(error, "NOT_FOUND")) {
    return "Check OQ_BUCKET, or create the bucket (aws s3 mb s3://<bucket>) with versioning enabled.";
  }
  return "Check the OQ_* settings (oq --help lists them).";
}
