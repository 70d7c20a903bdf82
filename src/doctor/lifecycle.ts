/**
 * The lifecycle check: on a versioned bucket, do the bucket's lifecycle rules expire the queue's
 * non-current versions and delete markers? Without them the bucket keeps every version of every
 * task and a delete marker for every deleted index entry, forever. Two requests (GET ?versioning,
 * GET ?lifecycle); a warning, never a failure: it says nothing about whether oq is safe, so only
 * the operator's doctor run makes it, not the one workers need before they start.
 *
 * @module
 */
import { isOqError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import { type LifecycleRule, parseLifecycle, retentionCoverage } from "../storage/lifecycle.ts";
import { describeError } from "./probe.ts";
import type { CheckWarning } from "./run.ts";

/** Run the check, pushing evidence; returns a warning when rules are missing or unreadable. */
export async function checkLifecycle(
  queue: Queue,
  evidence: string[],
): Promise<CheckWarning | undefined> {
  const storage = queue.storage;
  if (storage.getLifecycle === undefined) {
    evidence.push(`${storage.name} has no bucket lifecycle rules; nothing to check`);
    return undefined;
  }
  const prefix = queue.keys.prefix;
  let xml: string | undefined;
  let rules: LifecycleRule[];
  let step = "GET ?versioning";
  try {
    const status = await storage.versioning();
    evidence.push(`GET ?versioning -> ${status}`);
    if (status === "Disabled") {
      evidence.push(
        "The bucket keeps no old versions and no delete markers: no lifecycle rule is needed for them.",
      );
      return undefined;
    }
    step = "GET ?lifecycle";
    xml = await storage.getLifecycle();
    rules = parseLifecycle(xml);
  } catch (error) {
    evidence.push(`${step} -> ${describeError(error)}`);
    return {
      status: "warn",
      fix: isOqError(error, "ACCESS_DENIED")
        ? "The credentials may not read the bucket's versioning or lifecycle rules (s3:GetBucketVersioning, s3:GetLifecycleConfiguration); grant it so oq can check that old versions expire, or run oq lifecycle with credentials that may."
        : "Could not read the bucket's lifecycle rules; if the backend has none, old task versions and delete markers must be removed by other means.",
    };
  }
  evidence.push(
    `GET ?lifecycle -> ${xml === undefined ? "no lifecycle configuration" : `${rules.length} rule(s)`}`,
  );
  const coverage = retentionCoverage(rules, prefix);
  const missing: string[] = [];
  if (coverage.noncurrentDays === undefined) {
    missing.push("non-current versions (every task update and delete leaves one)");
  } else {
    evidence.push(`non-current versions expire after ${coverage.noncurrentDays} day(s)`);
  }
  if (!coverage.deleteMarkers) {
    missing.push("expired delete markers (every deleted task or index entry leaves one)");
  } else {
    evidence.push("expired delete markers are removed");
  }
  if (missing.length === 0) {
    evidence.push(`covered by rule(s): ${coverage.rules.join(", ")}`);
    return undefined;
  }
  return {
    status: "warn",
    fix: `No enabled lifecycle rule removes the ${missing.join(" or the ")} under ${prefix === "" ? "the bucket" : prefix}: the bucket grows with every task and is billed for all of it. Run oq lifecycle --apply (it keeps the bucket's other rules; oq lifecycle shows the rule first).`,
  };
}
