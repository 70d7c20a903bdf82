/**
 * `oq shards`: show how many hash shards each task type's part of the ready index has, or split a
 * hot type into more (docs/protocol.md, "The manifest").
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { log, out, outJson } from "./output.ts";

export default oqCommand({
  name: "shards",
  description: "Show the shards of each task type, or split a hot type into more.",
  examples: ["oq shards", "oq shards video 8"],
  args: {
    type: { type: "positional", description: "Task type to split", required: false },
    count: {
      type: "positional",
      description: "Shards for the type (1-256; can only grow)",
      required: false,
    },
    json: { type: "boolean", description: "Print the manifest as JSON" },
  },
  async run(args) {
    const queue = await openQueue(args);
    if (args.type !== undefined && args.count === undefined) {
      throw new ValidationError(
        `Give the number of shards for ${args.type}: oq shards ${args.type} 8`,
      );
    }
    if (args.count !== undefined && !/^\d+$/.test(args.count)) {
      throw new ValidationError(
        `Invalid shard count ${JSON.stringify(args.count)}: use an integer from 1 to 256.`,
      );
    }
    const manifest =
      args.type === undefined
        ? await queue.manifest()
        : await queue.setShards(args.type, Number(args.count));
    if (args.json) return outJson(manifest);
    const types = Object.entries(manifest.shards);
    if (types.length === 0) out("every type has 1 shard");
    for (const [type, shards] of types) out(`${type}\t${shards}`);
    if (args.type !== undefined)
      log().success(
        `${args.type} now has ${manifest.shards[args.type] ?? 1} shards; workers pick this up within 10 minutes.`,
      );
  },
});
