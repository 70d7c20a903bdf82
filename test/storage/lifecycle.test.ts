/**
 * Lifecycle rules: the rule oq sets for a queue prefix, merging it into a bucket's rules without
 * losing any other rule (or any element of one), the AWS CLI JSON, and whether a bucket's rules
 * cover a queue.
 */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_NONCURRENT_DAYS,
  lifecycleJson,
  lifecycleRuleId,
  lifecycleXml,
  mergeLifecycle,
  parseLifecycle,
  queueLifecycleRule,
  retentionCoverage,
} from "../../src/storage/lifecycle.ts";
import { text, writeXml } from "../../src/storage/s3/xml.ts";

/** A bucket's configuration as MinIO/AWS send it, with rules oq knows nothing about. */
const FOREIGN = `<?xml version="1.0" encoding="UTF-8"?>
<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Rule>
    <ID>archive logs</ID>
    <Filter><And><Prefix>logs/ &amp; more</Prefix><Tag><Key>k</Key><Value>v</Value></Tag><Tag><Key>k2</Key><Value>v2</Value></Tag></And></Filter>
    <Status>Enabled</Status>
    <Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>
    <Transition><Days>90</Days><StorageClass>DEEP_ARCHIVE</StorageClass></Transition>
    <Expiration><Days>365</Days></Expiration>
  </Rule>
  <Rule>
    <ID>oq-retention:jobs/</ID>
    <Filter><Prefix>jobs/</Prefix></Filter>
    <Status>Enabled</Status>
    <NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays></NoncurrentVersionExpiration>
  </Rule>
  <Rule>
    <ID>tmp</ID>
    <Filter></Filter>
    <Status>Disabled</Status>
    <Expiration><Days>1</Days></Expiration>
  </Rule>
</LifecycleConfiguration>`;

describe("oq's lifecycle rule", () => {
  it("filters on the queue prefix and expires non-current versions, delete markers and uploads", () => {
    const rule = queueLifecycleRule("jobs/", DEFAULT_NONCURRENT_DAYS);
    expect(lifecycleJson([rule]).Rules[0]).toEqual({
      ID: "oq-retention:jobs/",
      Filter: { Prefix: "jobs/" },
      Status: "Enabled",
      NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      Expiration: { ExpiredObjectDeleteMarker: true },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
    });
    expect(lifecycleXml([queueLifecycleRule("a&b/", 7)])).toContain(
      "<ID>oq-retention:a&#38;b/</ID><Filter><Prefix>a&#38;b/</Prefix></Filter>",
    );
  });

  it("refuses days below 1 or fractional, and a prefix too long for a rule ID", () => {
    expect(() => queueLifecycleRule("jobs/", 0)).toThrow(/at least 1/);
    expect(() => queueLifecycleRule("jobs/", 1.5)).toThrow(/whole number/);
    expect(() => lifecycleRuleId("p".repeat(300))).toThrow(/too long for a lifecycle rule ID/);
  });
});

describe("merging into a bucket's rules", () => {
  it("replaces only the rule with oq's ID, in its place, and writes every other rule back whole", () => {
    const existing = parseLifecycle(FOREIGN);
    const merge = mergeLifecycle(existing, queueLifecycleRule("jobs/", 1));
    expect(merge.replaced).toBe(true);
    expect(merge.kept).toEqual(["archive logs", "tmp"]);
    expect(merge.rules.map((r) => text(r, "ID"))).toEqual([
      "archive logs",
      "oq-retention:jobs/",
      "tmp",
    ]);
    // Written and read back, the foreign rules are what the bucket sent.
    const back = parseLifecycle(lifecycleXml(merge.rules));
    expect(writeXml(back[0]!)).toBe(writeXml(existing[0]!));
    expect(writeXml(back[2]!)).toBe(writeXml(existing[2]!));
    expect(lifecycleJson(back).Rules[0]).toEqual({
      ID: "archive logs",
      Filter: {
        And: {
          Prefix: "logs/ & more",
          Tags: [
            { Key: "k", Value: "v" },
            { Key: "k2", Value: "v2" },
          ],
        },
      },
      Status: "Enabled",
      Transitions: [
        { Days: 30, StorageClass: "GLACIER" },
        { Days: 90, StorageClass: "DEEP_ARCHIVE" },
      ],
      Expiration: { Days: 365 },
    });
    expect(lifecycleJson(back).Rules[2]).toMatchObject({ ID: "tmp", Filter: {} });
  });

  it("adds oq's rule at the end when the bucket has none for this prefix, or no configuration", () => {
    const other = mergeLifecycle(parseLifecycle(FOREIGN), queueLifecycleRule("other/", 1));
    expect(other.replaced).toBe(false);
    expect(other.rules.map((r) => text(r, "ID"))).toEqual([
      "archive logs",
      "oq-retention:jobs/",
      "tmp",
      "oq-retention:other/",
    ]);
    const none = mergeLifecycle(parseLifecycle(undefined), queueLifecycleRule("", 1));
    expect(none).toMatchObject({ replaced: false, kept: [] });
    expect(none.rules).toHaveLength(1);
  });

  it("reports a configuration that is not one as a storage error", () => {
    expect(() => parseLifecycle("<Error><Code>x</Code></Error>")).toThrow(
      /has <Error> where <LifecycleConfiguration> belongs/,
    );
    expect(() => parseLifecycle("<LifecycleConfiguration>")).toThrow(/not valid XML/);
  });
});

describe("whether a bucket's rules cover a queue", () => {
  it("counts enabled rules on the queue's prefix or a shorter one, not tag-filtered or disabled ones", () => {
    const rules = parseLifecycle(FOREIGN);
    expect(retentionCoverage(rules, "jobs/")).toEqual({
      noncurrentDays: 30,
      deleteMarkers: false,
      rules: ["oq-retention:jobs/"],
    });
    expect(retentionCoverage(rules, "logs/ & more/")).toEqual({ deleteMarkers: false, rules: [] });
    const ours = [queueLifecycleRule("", 2)];
    expect(retentionCoverage(ours, "any/prefix/")).toEqual({
      noncurrentDays: 2,
      deleteMarkers: true,
      rules: ["oq-retention:"],
    });
    expect(retentionCoverage([queueLifecycleRule("jobs/a/", 1)], "jobs/")).toEqual({
      deleteMarkers: false,
      rules: [],
    });
    // The old form without <Filter>: a <Prefix> on the rule itself.
    const legacy = parseLifecycle(
      "<LifecycleConfiguration><Rule><ID>old</ID><Prefix>jo</Prefix><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule></LifecycleConfiguration>",
    );
    expect(retentionCoverage(legacy, "jobs/")).toEqual({ deleteMarkers: true, rules: ["old"] });
  });
});
