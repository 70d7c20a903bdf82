/**
 * Bucket lifecycle rules that keep a versioned queue bucket from growing without bound: the rule
 * oq sets for a queue's prefix, merging it into a bucket's other rules, and telling whether a
 * bucket's rules already cover a queue (docs/protocol.md, "Lifecycle rules").
 *
 * On a versioned bucket every task write leaves the previous version behind and every delete
 * leaves a delete marker; nothing removes either but a lifecycle rule. oq's rule, filtered on the
 * queue's prefix, expires non-current versions after `NoncurrentDays` (the task history `oq
 * history` shows is kept that long), removes delete markers that no longer hide anything, and
 * aborts multipart uploads left incomplete (oq never starts one; a tool in the bucket may).
 *
 * Rules are kept as parsed XML elements, so a rule oq does not know (transitions, tag filters,
 * a provider's own elements) is written back exactly as the bucket sent it.
 *
 * @module
 */
import { StorageError, ValidationError } from "../errors.ts";
import { children, element, parseXml, text, writeXml, type XmlElement } from "./s3/xml.ts";

/** Days a version stays after it stopped being current, unless told otherwise. */
export const DEFAULT_NONCURRENT_DAYS = 1;
/** Days after which an incomplete multipart upload under the prefix is aborted. */
export const ABORT_MULTIPART_DAYS = 1;
/** S3's longest rule ID. */
const MAX_RULE_ID = 255;
const ID_PREFIX = "oq-retention:";

/** One lifecycle rule, as parsed from (and written back to) S3's XML `<Rule>` element. */
export type LifecycleRule = XmlElement;

/** The ID of oq's rule for a queue prefix: `oq-retention:{prefix}`. */
export function lifecycleRuleId(prefix: string): string {
  const id = `${ID_PREFIX}${prefix}`;
  if (id.length > MAX_RULE_ID) {
    throw new ValidationError(
      `The queue prefix is too long for a lifecycle rule ID (at most ${MAX_RULE_ID - ID_PREFIX.length} characters): use a shorter prefix, or write the rule yourself.`,
    );
  }
  return id;
}

/** oq's rule for a queue prefix, keeping non-current versions `noncurrentDays` days. */
export function queueLifecycleRule(prefix: string, noncurrentDays: number): LifecycleRule {
  if (!Number.isInteger(noncurrentDays) || noncurrentDays < 1) {
    throw new ValidationError(
      `Non-current days must be a whole number of at least 1, not ${noncurrentDays}.`,
    );
  }
  return element("Rule", [
    element("ID", lifecycleRuleId(prefix)),
    element("Filter", [element("Prefix", prefix)]),
    element("Status", "Enabled"),
    element("NoncurrentVersionExpiration", [element("NoncurrentDays", String(noncurrentDays))]),
    element("Expiration", [element("ExpiredObjectDeleteMarker", "true")]),
    element("AbortIncompleteMultipartUpload", [
      element("DaysAfterInitiation", String(ABORT_MULTIPART_DAYS)),
    ]),
  ]);
}

/** The rules of a `<LifecycleConfiguration>` document (none when `xml` is `undefined`). */
export function parseLifecycle(xml: string | undefined): LifecycleRule[] {
  if (xml === undefined) return [];
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (cause) {
    throw new StorageError(`The bucket's lifecycle configuration is not valid XML: ${cause}`);
  }
  if (root.name !== "LifecycleConfiguration") {
    throw new StorageError(
      `The bucket's lifecycle configuration has <${root.name}> where <LifecycleConfiguration> belongs.`,
    );
  }
  return children(root, "Rule");
}

/** What {@link mergeLifecycle} did. */
export interface LifecycleMerge {
  /** The bucket's rules with oq's in place: the configuration to write. */
  rules: LifecycleRule[];
  /** True when a rule with oq's ID was there and was replaced (in its place). */
  replaced: boolean;
  /** The IDs of the other rules, kept as they were. */
  kept: string[];
}

/**
 * Put `ours` among a bucket's rules: replace the rule with its ID, keep every other rule as it
 * is, and add it at the end when it was not there.
 */
export function mergeLifecycle(
  existing: readonly LifecycleRule[],
  ours: LifecycleRule,
): LifecycleMerge {
  const id = text(ours, "ID");
  let replaced = false;
  const rules: LifecycleRule[] = [];
  for (const rule of existing) {
    if (text(rule, "ID") !== id) rules.push(rule);
    else if (!replaced) {
      rules.push(ours);
      replaced = true;
    }
  }
  if (!replaced) rules.push(ours);
  const kept = existing.filter((r) => text(r, "ID") !== id).map((r) => text(r, "ID"));
  return { rules, replaced, kept };
}

/** A `<LifecycleConfiguration>` document of these rules, as PutBucketLifecycleConfiguration takes it. */
export function lifecycleXml(rules: readonly LifecycleRule[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${rules.map((r) => writeXml(r)).join("")}</LifecycleConfiguration>`;
}

/** Elements that repeat, and the list name the AWS CLI's JSON gives them. */
const LISTS: Record<string, string> = {
  Transition: "Transitions",
  NoncurrentVersionTransition: "NoncurrentVersionTransitions",
  Tag: "Tags",
};
const NUMBERS = new Set([
  "Days",
  "NoncurrentDays",
  "NewerNoncurrentVersions",
  "DaysAfterInitiation",
  "ObjectSizeGreaterThan",
  "ObjectSizeLessThan",
]);
const CONTAINERS = new Set(["Filter", "And", "Expiration", "NoncurrentVersionExpiration"]);

function jsonOf(el: XmlElement): unknown {
  if (el.children.length === 0) {
    if (CONTAINERS.has(el.name)) return {};
    if (NUMBERS.has(el.name)) return Number(el.text.trim());
    if (el.name === "ExpiredObjectDeleteMarker") return el.text.trim() === "true";
    return el.text;
  }
  const out: Record<string, unknown> = {};
  for (const c of el.children) {
    const list = LISTS[c.name];
    if (list === undefined) out[c.name] = jsonOf(c);
    else out[list] = [...((out[list] as unknown[] | undefined) ?? []), jsonOf(c)];
  }
  return out;
}

/**
 * The configuration as the AWS CLI's JSON (`aws s3api put-bucket-lifecycle-configuration
 * --lifecycle-configuration`): element names as keys, repeated elements as lists.
 */
export function lifecycleJson(rules: readonly LifecycleRule[]): { Rules: unknown[] } {
  return { Rules: rules.map((r) => jsonOf(r)) };
}

/** What a bucket's rules do for a queue prefix. */
export interface RetentionCoverage {
  /** Days after which non-current versions expire, by the first enabled rule covering the prefix that says; `undefined` when none. */
  noncurrentDays?: number;
  /** True when an enabled rule covering the prefix removes expired delete markers. */
  deleteMarkers: boolean;
  /** IDs of the enabled rules that cover the whole prefix. */
  rules: string[];
}

/**
 * The prefix a rule applies to, or `undefined` when it applies to only some objects under it
 * (a tag or size filter): such a rule does not keep the queue from growing.
 */
function rulePrefix(rule: LifecycleRule): string | undefined {
  const filter = children(rule, "Filter")[0];
  if (filter === undefined) return text(rule, "Prefix");
  if (filter.children.length === 0) return "";
  if (filter.children.length === 1 && filter.children[0]!.name === "Prefix") {
    return filter.children[0]!.text;
  }
  return undefined;
}

/** Which of oq's retention needs a bucket's rules meet for the queue at `prefix`. */
export function retentionCoverage(
  rules: readonly LifecycleRule[],
  prefix: string,
): RetentionCoverage {
  const coverage: RetentionCoverage = { deleteMarkers: false, rules: [] };
  for (const rule of rules) {
    const from = rulePrefix(rule);
    if (
      text(rule, "Status").trim() !== "Enabled" ||
      from === undefined ||
      !prefix.startsWith(from)
    ) {
      continue;
    }
    coverage.rules.push(text(rule, "ID"));
    const noncurrent = children(rule, "NoncurrentVersionExpiration")[0];
    const days = noncurrent === undefined ? "" : text(noncurrent, "NoncurrentDays").trim();
    if (coverage.noncurrentDays === undefined && /^\d+$/.test(days)) {
      coverage.noncurrentDays = Number(days);
    }
    const expiration = children(rule, "Expiration")[0];
    if (
      expiration !== undefined &&
      text(expiration, "ExpiredObjectDeleteMarker").trim() === "true"
    ) {
      coverage.deleteMarkers = true;
    }
  }
  return coverage;
}
