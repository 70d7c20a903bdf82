/**
 * `oq retention`: show how long finished tasks are kept (per type and status, with where each
 * value comes from), or set it for the queue or one type (docs/protocol.md, "Retention").
 *
 * @module
 */
import { formatDuration } from "../duration.ts";
import type { Manifest } from "../queue/manifest.ts";
import { FINISHED_STATUSES, retentionHoldEnds, retentionMs } from "../queue/retention.ts";
import { oqCommand, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { log, out, outJson, table } from "./output.ts";
import { retentionFlags, retentionFromFlags } from "./retention-flags.ts";

const shown = (ms: number) =>
  ms === Number.POSITIVE_INFINITY ? "forever" : ms === 0 ? "0" : formatDuration(ms);

/** One row per type with settings (and one for every other type): the retention in effect. */
function rows(manifest: Manifest): string[][] {
  const types = ["(every type)", ...Object.keys(manifest.retention?.types ?? {}).sort()];
  return [
    ["TYPE", ...FINISHED_STATUSES.map((s) => s.toUpperCase())],
    ...types.map((type) => [
      type,
      ...FINISHED_STATUSES.map((status) =>
        shown(retentionMs(manifest.retention, type === "(every type)" ? "" : type, status)),
      ),
    ]),
  ];
}

export default oqCommand({
  name: "retention",
  description: "Show or set how long finished tasks are kept before workers prune them.",
  examples: [
    "oq retention",
    "oq retention --completed 1d --failed 90d",
    "oq retention --type video --completed 0",
    "oq retention --type video --completed default   # back to the queue's setting",
  ],
  args: {
    ...taskTypeArg("Set it for this task type only"),
    ...retentionFlags,
    json: { type: "boolean", description: "Print the manifest's retention settings as JSON" },
  },
  async run(args) {
    const queue = await openQueue(args);
    const given = retentionFromFlags(args);
    const manifest =
      given === undefined
        ? await queue.manifest()
        : await queue.setRetention(given, args.type === undefined ? {} : { type: args.type });
    if (args.json) return outJson(manifest.retention ?? {});
    for (const line of table(rows(manifest))) out(line);
    if (given === undefined) return;
    log().success(
      `retention of ${args.type ?? "every type"} set; workers prune with it within 10 minutes.`,
    );
    // A raise holds replays back: say until when, rather than let the next replay find out.
    // (No type is named "": the queue's own setting governs it.)
    const until = retentionHoldEnds(manifest.retentionRaisedAt, args.type ?? "", queue.now());
    if (until !== undefined)
      log().info(
        `Replays of ${args.type ?? "any"} tasks wait until ${new Date(until).toISOString()}: the retention was raised, and a prune that read the earlier setting may still be deleting them.`,
      );
  },
});
