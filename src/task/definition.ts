/**
 * Typed task definitions: a task type defined once with the schema of its input (and optionally
 * of its output) and its default options, so that `queue.submit(definition, input)` and
 * `worker.task(definition, handler)` are typed from it and the input is validated where it is
 * submitted and again where it is run.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { checkTaskType } from "../keys.ts";
import { checkOptions, taskOptionsSchema } from "../options.ts";
import type { SubmitOptions } from "../queue/types.ts";
import type { TaskRecord } from "./record.ts";
import {
  describeIssues,
  isStandardSchema,
  runSchema,
  type StandardSchemaV1,
  type StandardSchemaV1Input,
  type StandardSchemaV1Output,
} from "./standard-schema.ts";

/** The task options a definition may set as defaults for every task submitted with it. */
export type TaskDefinitionDefaults = Pick<
  SubmitOptions,
  "maxRetries" | "timeoutSeconds" | "ttlSeconds" | "backoff"
>;

/**
 * What {@link defineTask} takes: the input schema, optionally the output schema, and defaults of
 * the task options (a submit's own options win).
 */
export interface TaskDefinitionOptions<
  InputSchema extends StandardSchemaV1,
  OutputSchema extends StandardSchemaV1 | undefined,
> extends TaskDefinitionDefaults {
  /** The schema of the input (any Standard Schema v1 validator: arktype, zod, valibot, ...). */
  input: InputSchema;
  /** The schema of the handler's return value; without it the output is not checked. */
  output?: OutputSchema;
}

/**
 * A task type with the schema of its input and output and its default options, made by
 * {@link defineTask}. Pass it where a type string goes: `queue.submit`, `queue.submitMany`,
 * `worker.task`.
 */
export interface TaskDefinition<
  Type extends string = string,
  InputSchema extends StandardSchemaV1 = StandardSchemaV1,
  OutputSchema extends StandardSchemaV1 | undefined = StandardSchemaV1 | undefined,
> {
  /** The task type, as stored and as workers select it. */
  readonly type: Type;
  /** The schema of the input. */
  readonly input: InputSchema;
  /** The schema of the handler's return value, if any. */
  readonly output: OutputSchema;
  /** Default task options, checked when defined. */
  readonly defaults: Readonly<TaskDefinitionDefaults>;
}

/** Any task definition. */
// biome-ignore lint/suspicious/noExplicitAny: the widest definition, for constraints only.
export type AnyTaskDefinition = TaskDefinition<string, any, any>;

/** What `submit` takes as the input of a task of definition `D` (its schema's input type). */
export type TaskInput<D extends AnyTaskDefinition> = StandardSchemaV1Input<D["input"]>;

/** What the handler of `D` gets: the input as its schema returns it (defaults, transforms). */
export type HandlerInput<D extends AnyTaskDefinition> = StandardSchemaV1Output<D["input"]>;

/** What the handler of `D` must return: the output schema's input type (or anything). */
export type HandlerResult<D extends AnyTaskDefinition> = D["output"] extends StandardSchemaV1
  ? StandardSchemaV1Input<D["output"]>
  : unknown;

/** The stored output of a completed task of `D`: the output schema's output type (or unknown). */
export type TaskOutput<D extends AnyTaskDefinition> = D["output"] extends StandardSchemaV1
  ? StandardSchemaV1Output<D["output"]>
  : unknown;

/**
 * A task record whose input and output are typed: what `queue.submit(definition, ...)` returns
 * and `queue.wait(task)` returns again once the task finished. `output` is `null` until completed.
 */
export type TypedTaskRecord<Input, Output> = Omit<TaskRecord, "input" | "output"> & {
  /** The input as validated and stored. */
  input: Input;
  /** The handler's validated result once completed, else null. */
  output: Output | null;
};

/** The record type of a task of `D`. */
export type TaskRecordOf<D extends AnyTaskDefinition> = TypedTaskRecord<
  HandlerInput<D>,
  TaskOutput<D>
>;

/**
 * Define a task type once: its input schema, optionally its output schema (any Standard Schema
 * v1 validator: arktype 2, zod 4, valibot 1, ...), and default task options (`maxRetries`,
 * `timeoutSeconds`, `ttlSeconds`, `backoff`). `queue.submit(definition, input)` then checks the
 * input's type at compile time and validates it before writing anything (`ValidationError`
 * naming each bad path); `worker.task(definition, handler)` types the handler, validates the
 * stored input again before calling it (a task whose input no longer validates fails at once,
 * without retries and without running the handler) and validates its return value.
 *
 * ```ts
 * const email = defineTask("email", { input: type({ to: "string.email" }), maxRetries: 5 });
 * await queue.submit(email, { to: "a@example.com" });
 * worker.task(email, async ({ to }) => send(to));
 * ```
 */
export function defineTask<
  const Type extends string,
  InputSchema extends StandardSchemaV1,
  OutputSchema extends StandardSchemaV1 | undefined = undefined,
>(
  type: Type,
  options: TaskDefinitionOptions<InputSchema, OutputSchema>,
): TaskDefinition<Type, InputSchema, OutputSchema> {
  checkTaskType(type);
  if (typeof options !== "object" || options === null)
    throw new ValidationError(`defineTask("${type}"): give the options, at least { input }.`);
  const { input, output, ...defaults } = options;
  if (!isStandardSchema(input))
    throw new ValidationError(
      `defineTask("${type}"): input must be a Standard Schema v1 validator (arktype, zod, valibot, ...).`,
    );
  if (output !== undefined && !isStandardSchema(output))
    throw new ValidationError(
      `defineTask("${type}"): output must be a Standard Schema v1 validator (arktype, zod, valibot, ...) or left out.`,
    );
  checkOptions(taskOptionsSchema, defaults, `defaults of task ${type}`);
  return Object.freeze({
    type,
    input,
    output: output as OutputSchema,
    defaults: Object.freeze({ ...defaults }),
  });
}

/** True when `value` is a task definition (not a type string). */
export function isTaskDefinition(value: unknown): value is AnyTaskDefinition {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { type?: unknown }).type === "string" &&
    isStandardSchema((value as { input?: unknown }).input)
  );
}

/**
 * A submit's options with the definition's defaults filled in. A default TTL gives way to a
 * submit's own `expiresAt`, and a default backoff is merged part by part.
 */
export function withDefaults(
  definition: AnyTaskDefinition,
  given: SubmitOptions | undefined,
): SubmitOptions {
  const defaults: TaskDefinitionDefaults = { ...definition.defaults };
  const options: SubmitOptions = { ...given };
  if (options.expiresAt !== undefined) delete defaults.ttlSeconds;
  const merged: SubmitOptions = { ...defaults };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  if (defaults.backoff !== undefined && options.backoff !== undefined)
    merged.backoff = { ...defaults.backoff, ...options.backoff };
  return merged;
}

/**
 * Validate the input of a task of `definition` at submit. Returns the validated value (with
 * the schema's defaults and transforms applied). Throws `ValidationError` naming each bad path,
 * e.g. `email input: to: must be a string (was a number)`.
 */
export async function validateSubmitted(
  definition: AnyTaskDefinition,
  input: unknown,
): Promise<unknown> {
  const result = await runSchema(definition.input, input);
  if (result.issues !== undefined)
    throw new ValidationError(`${definition.type} input: ${describeIssues(result.issues)}`);
  return result.value;
}

/**
 * Check that `stored`, the validated input as it will be stored (after its JSON round trip),
 * passes the schema again, as the worker will check it: a transform whose result its own schema
 * rejects would otherwise fail every such task at its first run.
 */
export async function checkStoredInput(
  definition: AnyTaskDefinition,
  stored: unknown,
): Promise<void> {
  const result = await runSchema(definition.input, stored);
  if (result.issues !== undefined)
    throw new ValidationError(
      `${definition.type} input: the value its schema returned does not pass the schema again once stored as JSON (workers validate the stored input), so the task could never run: ${describeIssues(result.issues)}. Make the schema accept its own output (e.g. no transform that changes the type).`,
    );
}
