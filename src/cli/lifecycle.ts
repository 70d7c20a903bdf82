/**
 * `oq lifecycle`: show, and with `--apply` set, the bucket lifecycle rule that expires the
 * queue's non-current versions and delete markers (docs/protocol.md, "Lifecycle rules"). The rule is
 * merged into the bucket's other rules: only the rule with oq's ID for this prefix is replaced.
 *
 * @module
 */
import {
  DEFAULT_NONCURRENT_DAYS,
  lifecycleJson,
  lifecycleRuleId,
  lifecycleXml,
  mergeLifecycle,
  parseLifecycle,
  queueLifecycleRule,
} from "../storage/lifecycle.ts";
import { S3Storage } from "../storage/s3/driver.ts";
import type { Storage } from "../storage/storage.ts";
import { intArg, oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { CliError, EXIT_FAILURE } from "./errors.ts";
import { log, out, outJson } from "./output.ts";

/** A word for a POSIX shell, in single quotes. */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The AWS CLI command that writes the same configuration (all of it: it replaces the bucket's). */
function awsCommand(storage: Storage, configuration: unknown): string {
  const words = ["aws", "s3api", "put-bucket-lifecycle-configuration"];
  words.push("--bucket", storage.location?.bucket ?? storage.name);
  if (
    storage instanceof S3Storage &&
    !/(^|\.)amazonaws\.com$/.test(new URL(storage.endpoint).hostname)
  ) {
    words.push("--endpoint-url", storage.endpoint);
  }
  words.push("--lifecycle-configuration", shellQuote(JSON.stringify(configuration)));
  return words.join(" ");
}

export default oqCommand({
  name: "lifecycle",
  description:
    "Show, or --apply, the bucket lifecycle rule that expires the queue's old versions and delete markers.",
  examples: [
    "oq lifecycle",
    "oq lifecycle --apply",
    "oq lifecycle --apply --noncurrent-days 7",
    "oq lifecycle --json",
  ],
  args: {
    apply: {
      type: "boolean",
      description: "Set the rule on the bucket, keeping its other rules",
    },
    "noncurrent-days": {
      type: "string",
      description: `Days to keep a task's old versions, its history (default ${DEFAULT_NONCURRENT_DAYS})`,
      valueHint: "days",
    },
    json: { type: "boolean", description: "Print what would be (or was) set as JSON" },
  },
  async run(args) {
    const days =
      intArg(args["noncurrent-days"], "noncurrent-days", 1, 36_500) ?? DEFAULT_NONCURRENT_DAYS;
    // Versioning is not required here: the rule is harmless on an unversioned bucket.
    const queue = await openQueue(args, { skipVersioningCheck: true });
    const storage = queue.storage;
    if (storage.getLifecycle === undefined || storage.putLifecycle === undefined) {
      throw new CliError(
        `${storage.name} has no bucket lifecycle rules (only S3 buckets have them), so there is nothing to set. oq lifecycle works on an s3:// queue.`,
        EXIT_FAILURE,
      );
    }
    const ours = queueLifecycleRule(queue.keys.prefix, days);
    const merge = mergeLifecycle(parseLifecycle(await storage.getLifecycle()), ours);
    const xml = lifecycleXml(merge.rules);
    const configuration = lifecycleJson(merge.rules);
    const command = awsCommand(storage, configuration);
    const id = lifecycleRuleId(queue.keys.prefix);
    if (args.apply) await storage.putLifecycle(xml);
    if (args.json) {
      return outJson({
        storage: storage.name,
        prefix: queue.keys.prefix,
        ruleId: id,
        applied: args.apply === true,
        replaced: merge.replaced,
        kept: merge.kept,
        configuration,
        xml,
        command,
      });
    }
    const kept =
      merge.kept.length === 0
        ? "the bucket has no other rules"
        : `kept the bucket's ${merge.kept.length} other rule(s): ${merge.kept.join(", ")}`;
    if (args.apply) {
      log().success(
        `${merge.replaced ? "Replaced" : "Added"} lifecycle rule ${id} on ${storage.name} (non-current versions expire after ${days} day(s), expired delete markers are removed, incomplete uploads aborted after 1 day); ${kept}.`,
      );
      return;
    }
    out(`# The lifecycle configuration oq lifecycle --apply would set on ${storage.name}`);
    out(`# (${merge.replaced ? "replacing" : "adding"} rule ${id}; ${kept}):`);
    out(xml);
    out();
    out("# The same with the AWS CLI (it replaces the bucket's whole configuration):");
    out(command);
  },
});
