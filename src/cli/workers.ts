/**
 * `oq workers`: the workers that wrote a heartbeat under `workers/`, with the ones that stopped
 * writing marked stale (no heartbeat for 3 of their intervals: they likely died without
 * deleting theirs).
 *
 * @module
 */

import { readWorkers } from "../queue/workers.ts";
import { oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { log, out, outJson, relative, styles, table } from "./output.ts";

export default oqCommand({
  name: "workers",
  description: "List live workers from their heartbeats; stale ones stopped reporting.",
  examples: ["oq workers", "oq workers --json | jq '.[] | select(.stale)'"],
  args: {
    json: { type: "boolean", description: "Print the workers as a JSON array" },
  },
  async run(args) {
    const queue = await openQueue(args);
    const workers = await readWorkers(queue);
    if (args.json) return outJson(workers);
    if (workers.length === 0) {
      log().info("No workers have a heartbeat in this queue.");
      return;
    }
    const s = styles();
    const now = queue.now();
    const rows = workers.map((w) => [
      w.id,
      w.types.length === 0 ? s.dim("(monitor)") : w.types.join(","),
      `${w.active.length}/${w.concurrency ?? "?"}`,
      relative(Date.parse(w.seenAt), now),
      w.stale ? s.red("stale") : s.green("live"),
    ]);
    for (const line of table([
      ["ID", "TYPES", "ACTIVE", "HEARTBEAT", "STATE"].map((h) => s.bold(h)),
      ...rows,
    ]))
      out(line);
  },
});
