/**
 * `oq limit`: show or set a task type's fleet-wide limits, at most N running across all workers
 * and at most R starts per second (docs/protocol.md, "Concurrency and rate limits").
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import {
  CONCURRENCY_LIMIT_RULE,
  isConcurrencyLimit,
  isRateLimit,
  type LimitsInput,
  RATE_LIMIT_RULE,
  type TypeLimits,
} from "../queue/limits.ts";
import { oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { log, out, outJson } from "./output.ts";

/** How a limit flag's number is written: plain decimal digits, as every other numeric flag. */
const WHOLE = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/**
 * A limit flag's value: a number within `rule`, or `none` to remove the limit. Checked here, so
 * the message names the flag and its `none` (the library's names the option and its `null`).
 * The digits are checked before `Number()`, which also reads `0x10` and `1e3`.
 */
function limitValue(
  value: string | undefined,
  flag: string,
  form: RegExp,
  valid: (n: number) => boolean,
  rule: string,
): number | null | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === "none") return null;
  const n = Number(value.trim());
  if (!form.test(value.trim()) || !valid(n))
    throw new ValidationError(
      `Invalid --${flag} ${JSON.stringify(value)}: use ${rule}, or "none" to remove the limit.`,
    );
  return n;
}

/** One line per type: its limits and their use now. */
export function formatLimits(limits: TypeLimits): string {
  const parts = [limits.type];
  parts.push(
    limits.concurrency === null
      ? "concurrency -"
      : `concurrency ${limits.concurrency} (${limits.running} running)`,
  );
  parts.push(
    limits.ratePerSecond === null
      ? "rate -"
      : `rate ${limits.ratePerSecond}/s (${limits.recentStarts} started in the last ${limits.ratePerSecond >= 1 ? 1 : 1 / limits.ratePerSecond} s)`,
  );
  return parts.join("\t");
}

export default oqCommand({
  name: "limit",
  description: "Show or set a task type's limits across all workers (running at once, starts/s).",
  examples: [
    "oq limit",
    "oq limit video",
    "oq limit video --concurrency 3",
    "oq limit email --rate 10",
    "oq limit email --rate 0.5 --concurrency none",
  ],
  args: {
    type: { type: "positional", description: "Task type to show or limit", required: false },
    concurrency: {
      type: "string",
      description: "At most this many running at once across all workers (none: no limit)",
      valueHint: "n|none",
    },
    rate: {
      type: "string",
      description: "At most this many starts per second across all workers (none: no limit)",
      valueHint: "r|none",
    },
    json: { type: "boolean", description: "Print the limits as JSON" },
  },
  async run(args) {
    const given: LimitsInput = {};
    const concurrency = limitValue(
      args.concurrency,
      "concurrency",
      WHOLE,
      isConcurrencyLimit,
      CONCURRENCY_LIMIT_RULE,
    );
    const rate = limitValue(args.rate, "rate", DECIMAL, isRateLimit, RATE_LIMIT_RULE);
    if (concurrency !== undefined) given.concurrency = concurrency;
    if (rate !== undefined) given.ratePerSecond = rate;
    const setting = concurrency !== undefined || rate !== undefined;
    if (setting && args.type === undefined)
      throw new ValidationError("Name the task type to limit: oq limit TYPE --concurrency 3");
    const queue = await openQueue(args);
    const limits = setting
      ? [await queue.setLimits(args.type!, given)]
      : await queue.limits(args.type);
    if (args.json) return outJson(args.type === undefined ? limits : limits[0]);
    if (limits.length === 0) out("no type has limits");
    for (const l of limits) out(formatLimits(l));
    if (setting)
      log().success(
        `Limits of ${args.type} set. Workers apply them at their next claim of ${args.type}; workers that did not know ${args.type} was limited, within 10 minutes (or restart them).`,
      );
  },
});
