/**
 * The handler `worker.task(definition, handler)` registers: it validates the stored input
 * before calling the user's handler and the handler's return value after, and fails the
 * attempt permanently (no retries) when either does not validate.
 *
 * @module
 */
import type { AnyTaskDefinition } from "../task/definition.ts";
import { describeIssues, runSchema } from "../task/standard-schema.ts";
import { type Handler, PermanentError } from "./options.ts";

/**
 * A stored input or a handler's output that its task definition's schema rejects. It extends
 * {@link PermanentError}: retrying cannot make the same value valid. Its `name` (`InvalidInput`
 * or `InvalidOutput`) is what the task's `lastError.name` records.
 */
export class SchemaMismatchError extends PermanentError {
  constructor(name: "InvalidInput" | "InvalidOutput", message: string) {
    super(message);
    this.name = name;
  }
}

/** `handler` behind the input and output checks of `definition`. */
export function validatingHandler(definition: AnyTaskDefinition, handler: Handler): Handler {
  const { type, input: inputSchema, output: outputSchema } = definition;
  return async (stored, ctx) => {
    const input = await runSchema(inputSchema, stored);
    if (input.issues !== undefined)
      throw new SchemaMismatchError(
        "InvalidInput",
        `the stored input does not match the input schema of ${type}, so the handler was not called: ${describeIssues(input.issues)}`,
      );
    const output = await handler(input.value, ctx);
    if (outputSchema === undefined) return output;
    const checked = await runSchema(outputSchema, output);
    if (checked.issues !== undefined)
      throw new SchemaMismatchError(
        "InvalidOutput",
        `the handler's return value does not match the output schema of ${type}: ${describeIssues(checked.issues)}`,
      );
    return checked.value;
  };
}
