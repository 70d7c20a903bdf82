/**
 * The schema of an option given in seconds that also takes a duration string (`ttlSeconds: "30m"`,
 * `leaseSeconds: "2m"`, `timeoutSeconds: 90`). It normalizes the value to a number of seconds
 * once, at the boundary where options are checked (src/options.ts), so everything past it (and
 * every stored record) sees numbers only. Strings are read by the one duration parser
 * ({@link durationTextMs}); numbers pass through unchanged.
 *
 * @module
 */
import * as v from "valibot";
import { durationTextMs } from "./duration.ts";

/** The schema {@link secondsOption} returns: a number or a duration string in, seconds out. */
export type SecondsOption = v.GenericSchema<number | string, number>;

/**
 * An option in seconds: a number, or a duration string (`"90"`, `"45s"`, `"1h30m"`), normalized to
 * seconds. `bounds` is the number schema of the accepted range and `range` says it in words
 * (`"from 0 to 100 years"`), for the message of a value out of range.
 */
export function secondsOption(bounds: v.GenericSchema<number>, range: string): SecondsOption {
  const expected = `a number of seconds ${range}, or a duration like "30m"`;
  return v.pipe(
    v.union([v.number(), v.string()], expected),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const value = dataset.value;
      const seconds = typeof value === "number" ? value : toSeconds(value);
      if (seconds === undefined) {
        // A string that is no duration: say so, rather than that it is out of range. An issue
        // without `expected` is a statement (src/util/schema.ts).
        addIssue({
          message: `${JSON.stringify(value)} is not a duration; use seconds or e.g. "30m"`,
        });
        return NEVER;
      }
      if (!v.is(bounds, seconds)) {
        addIssue({ message: expected, expected });
        return NEVER;
      }
      return seconds;
    }),
  );
}

function toSeconds(text: string): number | undefined {
  const ms = durationTextMs(text);
  return ms === undefined ? undefined : ms / 1000;
}
