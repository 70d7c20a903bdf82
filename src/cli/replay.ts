/**
 * `oq replay`: run a failed, expired or cancelled task again with a fresh retry budget.
 *
 * @module
 */
import { oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { log, out, outJson } from "./output.ts";

export default oqCommand({
  name: "replay",
  description: "Put a failed, expired or cancelled task back to pending with fresh retries.",
  examples: [
    "oq replay 3f2a9c0d4e5b6a7c8d9e0f1a2b3c4d5e",
    "oq list --status failed --json | jq -r '.tasks[].id' | xargs -n1 oq replay",
  ],
  args: {
    id: { type: "positional", description: "Task id", required: true },
    json: { type: "boolean", description: "Print the task record after the replay as JSON" },
  },
  async run(args) {
    const queue = await openQueue(args);
    const task = await queue.replay(args.id);
    if (args.json) outJson(task);
    else out(task.id);
    log().success(
      `Replayed ${task.type} task ${task.id}: pending again, ${task.maxRetries + 1} attempts left.`,
    );
  },
});
