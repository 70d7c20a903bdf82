/**
 * `oq stats`: per task type, pending (due, delayed) and running tasks, the oldest due task's age,
 * tasks finished in the last hour and day, and throughput (`queue.stats()`). Its cost does not
 * grow with the number of finished tasks.
 *
 * @module
 */
import type { TypeStats } from "../queue/stats.ts";
import { oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { formatLimits } from "./limit.ts";
import { log, out, outJson, span, styles, table } from "./output.ts";

/** The heading line of one type's table. */
function heading(t: TypeStats): string {
  const oldest = t.oldestDueAgeMs === null ? "" : ` (oldest due ${span(t.oldestDueAgeMs)} ago)`;
  const atLeast = t.capped ? "at least " : "";
  const paused = t.paused ? "PAUSED, " : "";
  return `${paused}${atLeast}${t.pending.due} due${oldest}, ${atLeast}${t.pending.delayed} delayed, ${atLeast}${t.running} running, ${t.throughputPerMinute.toFixed(1)}/min`;
}

export default oqCommand({
  name: "stats",
  description:
    "Count tasks per type: pending, running, finished in the last hour and day, throughput.",
  examples: ["oq stats", "oq stats --type email", "oq stats --json | jq '.types[].pending'"],
  args: {
    ...taskTypeArg("Only this task type (and list only its markers)"),
    json: { type: "boolean", description: "Print the counts as JSON (queue.stats())" },
  },
  async run(args) {
    const queue = await openQueue(args);
    const stats = await queue.stats(args.type === undefined ? {} : { types: [args.type] });
    if (args.json) return outJson(stats);
    if (stats.types.length === 0) {
      log().info("No tasks pending or running, and none finished in the last day.");
      return;
    }
    const s = styles();
    for (const [i, t] of stats.types.entries()) {
      if (i > 0) out();
      out(`${s.bold(t.type)}  ${heading(t)}`);
      const row = (name: string, w: TypeStats["finished"]["lastHour"]) => [
        name,
        String(w.completed),
        String(w.failed),
        String(w.cancelled),
        String(w.expired),
      ];
      for (const line of table([
        ["", "COMPLETED", "FAILED", "CANCELLED", "EXPIRED"].map((h) => s.bold(h)),
        row("last hour", t.finished.lastHour),
        row("last day", t.finished.lastDay),
      ]))
        out(`  ${line}`);
    }
    // Fleet-wide limits (oq limit): 1 GET for the manifest, 1 per limited type.
    const limits = (await queue.limits()).filter(
      (l) => args.type === undefined || l.type === args.type,
    );
    if (limits.length > 0) out(`\n${s.bold("limits")}`);
    for (const l of limits) out(`  ${formatLimits(l)}`);
    if (stats.capped)
      log().warn("Some types have more markers than were read: their counts are lower bounds.");
    log().info(`${stats.requests.LIST} LIST and ${stats.requests.GET} GET requests.`);
  },
});
