/**
 * `oq pause`: pause a task type. Workers stop claiming its tasks within one poll; running tasks
 * finish; submits still work and their tasks wait for `oq resume` (docs/protocol.md, "Pause").
 *
 * @module
 */
import { oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { usageError } from "./errors.ts";
import { log } from "./output.ts";

/** The type a pause or resume names: `--type`/`-t`, or the one positional. */
export function typeToPause(
  args: { type?: string | undefined; name?: string | undefined },
  verb: string,
): string {
  const positional = args.name;
  if (positional !== undefined && args.type !== undefined && positional !== args.type)
    throw usageError(`Give the type once: oq ${verb} ${args.type}`);
  const type = args.type ?? positional;
  if (type === undefined) throw usageError(`Give the type to ${verb}: oq ${verb} --type email`);
  return type;
}

export default oqCommand({
  name: "pause",
  description: "Pause a task type: workers stop claiming it; its tasks wait until oq resume.",
  examples: ["oq pause --type email", "oq pause email"],
  args: {
    name: { type: "positional", description: "Task type (or --type)", required: false },
    ...taskTypeArg("Task type to pause"),
  },
  async run(args) {
    const type = typeToPause(args, "pause");
    const queue = await openQueue(args);
    await queue.pause(type);
    log().success(
      `${type} is paused: workers stop claiming it within one poll; running tasks finish. Resume with: oq resume ${type}`,
    );
  },
});
