/**
 * The one check of a value oq stores as JSON on a caller's behalf: a task's input (at submit), a
 * handler's output (on completion) and a progress report (`ctx.progress()`). All three refuse
 * the same values, so nothing that one accepts is silently changed by another.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { errorMessage } from "./errors.ts";
import { MAX_JSON_DEPTH } from "./stored-values.ts";

/**
 * `value` as JSON text (`undefined`, also as what a `toJSON` returns, becomes `null`). Throws
 * `ValidationError` naming the first part JSON cannot store, by its path from `root` (`input`,
 * `output.rows[2]`): a BigInt, a function or symbol, a number that is not finite, a cycle, a
 * value JSON.stringify turns into `{}` in silence (a Map, a Set, ...), or arrays and objects
 * nested deeper than `MAX_JSON_DEPTH` (128) levels, which a reader refuses (src/util/stored-values.ts). The
 * message is the bare reason; callers prefix it with what was being stored.
 */
export function jsonText(value: unknown, root: string): string {
  // The path and depth of each object met so far, for messages that name where the bad value is.
  const paths = new WeakMap<object, { path: string; depth: number }>();
  let text: string | undefined;
  try {
    text = JSON.stringify(value === undefined ? null : value, function (key, v: unknown) {
      const parent = typeof this === "object" && this !== null ? paths.get(this) : undefined;
      const path =
        parent === undefined
          ? root
          : `${parent.path}${Array.isArray(this) ? `[${key}]` : `.${key}`}`;
      if (typeof v === "object" && v !== null) {
        const depth = (parent?.depth ?? 0) + 1;
        // Checked before JSON.stringify goes deeper, so no depth overflows the stack here either.
        if (depth > MAX_JSON_DEPTH)
          throw new ValidationError(
            `${root} nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels, which oq does not store; flatten it (level ${depth} starts at ${path.length > 60 ? `${path.slice(0, 60)}…` : path})`,
          );
        paths.set(v, { path, depth });
      }
      if (typeof v === "bigint")
        throw new ValidationError(
          `${path} is a BigInt, which JSON cannot store; convert it to a string.`,
        );
      if (typeof v === "function" || typeof v === "symbol")
        throw new ValidationError(`${path} is a ${typeof v}, which JSON cannot store`);
      if (typeof v === "number" && !Number.isFinite(v))
        throw new ValidationError(`${path} is the number ${v}, which JSON cannot store`);
      const lost = flattenedKind(v);
      if (lost !== undefined)
        throw new ValidationError(
          `${path} is ${lost}, which JSON would store as {}, losing its contents; convert it to an array or a plain object`,
        );
      return v;
    });
  } catch (error) {
    // Ours, or JSON.stringify's own TypeError (a cycle, a throwing toJSON): always a
    // ValidationError, so callers branch on its code.
    throw error instanceof ValidationError ? error : new ValidationError(errorMessage(error));
  }
  return text ?? "null";
}

/**
 * The kind of a value JSON.stringify turns into `{}` in silence (its contents are not own
 * enumerable properties), or `undefined`. A Date or any object with `toJSON` has been converted
 * before the replacer sees it, and a class instance keeps its own fields, so both pass.
 */
function flattenedKind(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  for (const [kind, name] of FLATTENED) if (value instanceof kind) return name;
  return undefined;
}

const FLATTENED: [abstract new (...args: never[]) => object, string][] = [
  [Map, "a Map"],
  [Set, "a Set"],
  [WeakMap, "a WeakMap"],
  [WeakSet, "a WeakSet"],
  [RegExp, "a RegExp"],
  [Error, "an Error"],
  [Promise, "a Promise"],
  [ArrayBuffer, "an ArrayBuffer"],
];
