/**
 * A handler's progress report (`ctx.progress(value)`): the checks a value passes before it is
 * kept. How and when it is written is the worker's (`src/worker/progress.ts`).
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { errorMessage } from "../util/errors.ts";
import { jsonText } from "../util/json-value.ts";

/**
 * The largest progress value, in bytes of its JSON text (4 KiB). Progress rides in the task
 * record, which every write of the task rewrites: a small value keeps each write small.
 */
export const MAX_PROGRESS_BYTES = 4096;

const encoder = new TextEncoder();

/**
 * `value` as it will be stored: a copy through JSON (`undefined` becomes null), so a handler
 * that changes its object afterwards does not change what is written. Throws `ValidationError`
 * for a value that is not JSON (the same check as a task's input: a Map or a Set is refused, not
 * stored as `{}`) or is larger than {@link MAX_PROGRESS_BYTES}.
 */
export function checkProgress(value: unknown): unknown {
  let text: string;
  try {
    text = jsonText(value, "progress");
  } catch (error) {
    throw new ValidationError(`ctx.progress() needs a JSON value: ${errorMessage(error)}`);
  }
  const size = encoder.encode(text).length;
  if (size > MAX_PROGRESS_BYTES)
    throw new ValidationError(
      `ctx.progress() value is ${size} bytes of JSON; the limit is ${MAX_PROGRESS_BYTES}. Report a summary (a count, a percentage) and keep large data in its own object.`,
    );
  return JSON.parse(text);
}
