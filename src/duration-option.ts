/**
 * The schema of an option given in seconds that also takes a duration string (`ttlSeconds: "30m"`,
 * `leaseSeconds: "2m"`, `timeoutSeconds: 90`). It normalizes the value to a number of seconds
 * once, at the boundary where options are checked (src/options.ts), so everything past it (and
 * every stored record) sees numbers only. Strings are read by the one duration parser
 * ({@link durationTextMs}); numbers pass through unchanged.
 *
 * @module
 */
import { type Out, type Type, type } from "arktype";
import { durationTextMs } from "./duration.ts";

/**
 * An option in seconds: a number, or a duration string (`"90"`, `"45s"`, `"1h30m"`), normalized to
 * seconds. `bounds` is the number schema of the accepted range and `range` says it in words
 * (`"> 0, at most 100 years"`), for the message of a value out of range.
 */
export function secondsOption(
  bounds: Type<number>,
  range: string,
): Type<(In: number | string) => Out<number>> {
  const expected = `a number of seconds ${range}, or a duration like "30m"`;
  return type("number | string")
    .describe(expected)
    .pipe((value, ctx) => {
      const seconds = typeof value === "number" ? value : toSeconds(value);
      if (seconds === undefined) {
        // A string that is no duration: say so, rather than that it is out of range.
        return ctx.error({
          message: `${ctx.propString}: ${JSON.stringify(value)} is not a duration; use seconds or e.g. "30m"`,
        } as never);
      }
      if (!bounds.allows(seconds)) {
        return ctx.error({
          expected,
          actual: typeof value === "string" ? JSON.stringify(value) : String(value),
        });
      }
      return seconds;
    }) as Type<(In: number | string) => Out<number>>;
}

function toSeconds(text: string): number | undefined {
  const ms = durationTextMs(text);
  return ms === undefined ? undefined : ms / 1000;
}
