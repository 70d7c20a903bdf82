/**
 * `oq resume`: resume a task type paused with `oq pause`; its waiting tasks run again.
 *
 * @module
 */
import { oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { log } from "./output.ts";
import { typeToPause } from "./pause.ts";

export default oqCommand({
  name: "resume",
  description: "Resume a task type paused with oq pause.",
  examples: ["oq resume --type email", "oq resume email"],
  args: {
    name: { type: "positional", description: "Task type (or --type)", required: false },
    ...taskTypeArg("Task type to resume"),
  },
  async run(args) {
    const type = typeToPause(args, "resume");
    const queue = await openQueue(args);
    // Asked first, so that resuming a type never paused (or misspelt) says so instead of
    // reporting a change that did not happen; the resume still runs, clearing any partial pause.
    const paused = await queue.isPaused(type);
    await queue.resume(type);
    if (paused)
      log().success(`${type} is resumed: workers claim its tasks again at their next poll.`);
    else log().info(`${type} was not paused; nothing to resume.`);
  },
});
