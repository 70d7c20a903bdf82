/**
 * Running oq's own valibot schemas (records read from the bucket, options people pass in) and
 * turning what they reject into one readable line per problem, such as
 * `lease.expiresAt must be a string (was a number)`: the field, what it must be, what it was.
 * Every schema in src/ is checked through {@link validate}, so messages read alike everywhere.
 *
 * A schema or action given a message (`v.number("a whole number >= 0")`) states what is
 * expected in words; one without is described from its kind (`a string`, `an integer`). A
 * transformation issue without `expected` is a whole statement about the value, printed after
 * the path (`ttlSeconds: "10x" is not a duration; ...`).
 *
 * @module
 */
import * as v from "valibot";

/**
 * Valibot's messages are looked up under this language, which no application registers
 * (`v.setGlobalMessage` and friends are global, shared with the user's own valibot schemas), and
 * an issue without a message of its own gets `""`, so {@link issueSummary} knows to describe it.
 */
const CONFIG: v.Config<v.BaseIssue<unknown>> = {
  lang: "oq-internal",
  abortEarly: false,
  abortPipeEarly: true,
  message: () => "",
};

/** What {@link validate} returns: the schema's output, or a summary of what is wrong. */
export type Validated<T> = { ok: true; value: T } | { ok: false; summary: string };

/** Check `value` against `schema`: its output, or {@link issueSummary} of the problems. */
export function validate<S extends v.GenericSchema>(
  schema: S,
  value: unknown,
): Validated<v.InferOutput<S>> {
  const result = v.safeParse(schema, value, CONFIG);
  if (result.success) return { ok: true, value: result.output };
  return { ok: false, summary: issueSummary(schema, result.issues) };
}

/**
 * One line per problem, joined by `; `: `path must be <expected> (was <value>)`, or
 * `path: <statement>` for a transformation's own statement.
 */
export function issueSummary(
  schema: v.GenericSchema,
  issues: readonly v.BaseIssue<unknown>[],
): string {
  const lines = issues.map((issue) => issueLine(schema, issue));
  return [...new Set(lines)].join("; ");
}

type AnyIssue = v.BaseIssue<unknown>;

function issueLine(root: v.GenericSchema, issue: AnyIssue): string {
  const path = pathText(issue.path);
  const subject = path === "" ? "" : `${path} `;
  if (issue.kind === "transformation" && issue.expected === null) {
    return path === "" ? issue.message : `${path}: ${issue.message}`;
  }
  if (issue.kind === "schema" && issue.expected === "never") {
    return `${subject}must be removed (not a known key)`;
  }
  if (isMissingKey(issue)) {
    const entry = schemaAt(root, issue.path);
    return `${subject}must be ${entry === undefined ? "present" : described(entry)} (was missing)`;
  }
  return `${subject}must be ${expectedText(root, issue)} (was ${wasText(issue)})`;
}

/** An object schema's issue for a key it requires that the input lacks. */
function isMissingKey(issue: AnyIssue): boolean {
  const last = issue.path?.at(-1);
  return issue.kind === "schema" && last?.origin === "key" && issue.input === undefined;
}

function expectedText(root: v.GenericSchema, issue: AnyIssue): string {
  if (issue.message !== "") return issue.message;
  if (issue.kind === "schema") {
    // The schema at the path says more than the issue: `an object or null`, not `an object`.
    const at = schemaAt(root, issue.path);
    return at === undefined ? words(issue.expected ?? "valid") : described(at);
  }
  const requirement = String(issue.requirement);
  switch (issue.type) {
    case "integer":
      return "an integer";
    case "min_value":
      return `at least ${requirement}`;
    case "gt_value":
      return `greater than ${requirement}`;
    case "max_value":
      return `at most ${requirement}`;
    case "min_length":
      return `at least ${requirement} long`;
    case "max_length":
      return `at most ${requirement} long`;
    default:
      return words(issue.expected ?? "valid");
  }
}

/** What an issue's input was: its value for a wrong value, its kind for a wrong type. */
function wasText(issue: AnyIssue): string {
  const input = issue.input;
  const valueMatters =
    issue.kind !== "schema" || ["literal", "picklist", "enum", "union"].includes(issue.type);
  if (valueMatters && (typeof input === "string" || typeof input === "number")) {
    const text = typeof input === "string" ? JSON.stringify(input) : String(input);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
  }
  return kindOf(input);
}

/** What kind of value `value` is, as messages say it: `null`, `an array`, `a string`, ... */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "missing";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "object":
      return value instanceof Date ? "a Date" : "an object";
    case "boolean":
      return `${value}`;
    case "string":
      return "a string";
    case "number":
      return Number.isNaN(value) ? "NaN" : "a number";
    default:
      return `a ${typeof value}`;
  }
}

/** `lease.expiresAt`, `history[0].at`, `shards["a b"]`. */
function pathText(path: AnyIssue["path"]): string {
  let out = "";
  for (const item of path ?? []) {
    const key = item.key;
    if (typeof key === "number") out += `[${key}]`;
    else if (typeof key === "string" && /^[A-Za-z_$][\w$]*$/.test(key))
      out += out === "" ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** A schema's expectation in words: its own message, or its kind. */
function described(schema: v.GenericSchema): string {
  const message = (schema as { message?: unknown }).message;
  return typeof message === "string" && message !== "" ? message : words(schema.expects);
}

const WORDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "a boolean",
  Object: "an object",
  Array: "an array",
  Date: "a Date",
  Function: "a function",
  unknown: "present",
};

/** Valibot's `expects` (`(Object | null)`, `"a" | "b"`) in words: `an object or null`. */
function words(expects: string): string {
  const named = expects.replace(/[()]/g, "").split(" | ");
  // `undefined` is how valibot spells an optional key; a present value must be one of the rest.
  const parts = [...new Set(named.filter((part) => part !== "undefined"))].map(
    (part) => WORDS[part] ?? part,
  );
  if (parts.length === 1) return parts[0]!;
  return `${parts.slice(0, -1).join(", ")} or ${parts.at(-1)}`;
}

type Wrapper = { wrapped: v.GenericSchema };
type WithEntries = { entries: Record<string, v.GenericSchema> };

/** The schema that checks the value at `path` below `root`, where it is one (not in a union). */
function schemaAt(root: v.GenericSchema, path: AnyIssue["path"]): v.GenericSchema | undefined {
  let schema: v.GenericSchema | undefined = root;
  for (const item of path ?? []) {
    schema = unwrapped(schema);
    if (schema === undefined) return undefined;
    if ("entries" in schema) schema = (schema as WithEntries).entries[String(item.key)];
    else if (schema.type === "array")
      schema = (schema as unknown as { item: v.GenericSchema }).item;
    else if (schema.type === "record")
      schema = (schema as unknown as { value: v.GenericSchema }).value;
    else return undefined;
  }
  return schema;
}

/** The schema inside `optional`, `nullable` and the like (their entry holds the wrapper). */
function unwrapped(schema: v.GenericSchema | undefined): v.GenericSchema | undefined {
  let s = schema;
  while (s !== undefined && "wrapped" in s) s = (s as Wrapper).wrapped;
  return s;
}

/**
 * `T` without the `[key: string]: unknown` that `v.looseObject` adds to the type of its output,
 * at any depth: the declared fields, to compare with the written-out types (their `Same` checks).
 */
export type Declared<T> = T extends readonly (infer U)[]
  ? Declared<U>[]
  : T extends object
    ? {
        [K in keyof T as string extends K ? (unknown extends T[K] ? never : K) : K]: Declared<T[K]>;
      }
    : T;
