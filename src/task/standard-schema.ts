/**
 * The Standard Schema v1 interface (https://standardschema.dev), copied as types only, as the
 * spec recommends: oq depends on no validator, and any that implements the spec (arktype 2,
 * zod 4, valibot 1, ...) can describe a task's input and output. The spec's
 * `StandardSchemaV1` namespace is flattened into prefixed names (this project has no namespaces);
 * the shapes are the spec's, so every conforming schema is assignable.
 *
 * Also here: running a schema (its `validate` may return a Promise) and describing its issues.
 *
 * @module
 */

/**
 * A Standard Schema v1 validator: any object with a `~standard` property as the spec defines it
 * (arktype 2, zod 4, valibot 1 and others implement it). `Input` is what it accepts, `Output`
 * what it returns (after defaults and transforms).
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": StandardSchemaV1Props<Input, Output>;
}

/** The properties under `~standard` of a {@link StandardSchemaV1}. */
export interface StandardSchemaV1Props<Input = unknown, Output = Input> {
  /** The version of the spec: 1. */
  readonly version: 1;
  /** The library that made the schema. */
  readonly vendor: string;
  /** Validate a value: its result, or a Promise of it for an async schema. */
  readonly validate: (
    value: unknown,
  ) => StandardSchemaV1Result<Output> | Promise<StandardSchemaV1Result<Output>>;
  /** The schema's input and output types, for inference only. */
  readonly types?: { readonly input: Input; readonly output: Output } | undefined;
}

/** The result of a validation: the (possibly transformed) value, or the issues. */
export type StandardSchemaV1Result<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: readonly StandardSchemaV1Issue[] };

/** One problem a schema found. */
export interface StandardSchemaV1Issue {
  /** What is wrong. */
  readonly message: string;
  /** Where: the keys from the root to the bad value. */
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/** The type a schema accepts. */
export type StandardSchemaV1Input<Schema extends StandardSchemaV1> = NonNullable<
  Schema["~standard"]["types"]
>["input"];

/** The type a schema returns. */
export type StandardSchemaV1Output<Schema extends StandardSchemaV1> = NonNullable<
  Schema["~standard"]["types"]
>["output"];

/** True when `value` looks like a Standard Schema v1 validator. */
export function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return false;
  const props = (value as { "~standard"?: unknown })["~standard"];
  return (
    typeof props === "object" &&
    props !== null &&
    (props as { version?: unknown }).version === 1 &&
    typeof (props as { validate?: unknown }).validate === "function"
  );
}

/** Run `schema` on `value` (awaiting an async schema). */
export async function runSchema<Output>(
  schema: StandardSchemaV1<unknown, Output>,
  value: unknown,
): Promise<StandardSchemaV1Result<Output>> {
  return await schema["~standard"].validate(value);
}

/** A path as people write it: `items[0].to`. */
function pathText(path: StandardSchemaV1Issue["path"]): string {
  let text = "";
  for (const segment of path ?? []) {
    const key = typeof segment === "object" && segment !== null ? segment.key : segment;
    if (typeof key === "number") text += `[${key}]`;
    else text += text === "" ? String(key) : `.${String(key)}`;
  }
  return text;
}

/**
 * The issues as one line, each as `path: message` (`to: must be a string (was a number)`). A
 * message that already starts with its path (arktype's do) is not given the path twice.
 */
export function describeIssues(issues: readonly StandardSchemaV1Issue[]): string {
  return issues
    .map((issue) => {
      const path = pathText(issue.path);
      if (path === "") return issue.message;
      const message = issue.message.startsWith(`${path} `)
        ? issue.message.slice(path.length + 1)
        : issue.message;
      return `${path}: ${message}`;
    })
    .join("; ");
}
