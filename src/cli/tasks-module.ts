/**
 * Loading the handlers `oq worker <module>` runs. A tasks module either default-exports an
 * object `{ [type]: handler }` or exports handlers under their task types' names; a value may
 * also be `{ handler, leaseSeconds?, timeoutSeconds?, concurrency? }` to set per-type options
 * (`concurrency`: at most that many tasks of the type at once in this worker).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import type { Handler, HandlerOptions } from "../worker/worker.ts";
import { CliError, EXIT_FAILURE, usageError } from "./errors.ts";

/** A handler with its per-type options. */
export interface HandlerEntry {
  handler: Handler;
  options: HandlerOptions;
}

function entryOf(value: unknown): HandlerEntry | undefined {
  if (typeof value === "function") return { handler: value as Handler, options: {} };
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.handler !== "function") return undefined;
  const options: HandlerOptions = {};
  // Passed on as given (seconds or a duration string like "2m"): Worker.task checks them and
  // says what to fix, where a value of the wrong kind was once dropped without a word.
  if (v.leaseSeconds !== undefined) options.leaseSeconds = v.leaseSeconds as number | string;
  if (v.timeoutSeconds !== undefined) options.timeoutSeconds = v.timeoutSeconds as number | string;
  if (typeof v.concurrency === "number") options.concurrency = v.concurrency;
  return { handler: v.handler as Handler, options };
}

/**
 * The handlers a module's exports define, by task type. Entries of a default-exported object
 * must all be handlers (a typo there is a bug); other named exports that are not handlers are
 * ignored, as modules often export helpers and constants too.
 */
export function handlersOf(mod: Record<string, unknown>, path: string): Map<string, HandlerEntry> {
  const handlers = new Map<string, HandlerEntry>();
  const def = mod.default;
  if (typeof def === "function") {
    throw new CliError(
      `${path}: the default export is a function; export an object { [taskType]: handler } or one named function per task type.`,
      EXIT_FAILURE,
    );
  }
  if (typeof def === "object" && def !== null) {
    for (const [type, value] of Object.entries(def)) {
      const entry = entryOf(value);
      if (entry === undefined) {
        throw new CliError(
          `${path}: default export entry "${type}" is not a handler (a function, or { handler }).`,
          EXIT_FAILURE,
        );
      }
      handlers.set(type, entry);
    }
  }
  for (const [name, value] of Object.entries(mod)) {
    if (name === "default") continue;
    const entry = entryOf(value);
    if (entry === undefined) continue;
    if (handlers.has(name)) {
      throw new CliError(
        `${path}: task type "${name}" is both a named export and in the default export.`,
        EXIT_FAILURE,
      );
    }
    handlers.set(name, entry);
  }
  return handlers;
}

/** Import a tasks module given on the command line (relative to the working directory). */
export async function loadTasksModule(path: string): Promise<Map<string, HandlerEntry>> {
  const absolute = resolve(process.cwd(), path);
  if (!existsSync(absolute)) throw usageError(`Tasks module ${path} not found (${absolute}).`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "ERR_UNKNOWN_FILE_EXTENSION") {
      throw new CliError(
        `Cannot load ${path}: this Node cannot import TypeScript by itself. Run oq with a loader (node --import tsx cli.ts worker ${path}), or compile the module to JavaScript.`,
        EXIT_FAILURE,
      );
    }
    throw new CliError(
      `Loading tasks module ${path} failed: ${error instanceof Error ? error.message : String(error)}`,
      EXIT_FAILURE,
    );
  }
  const handlers = handlersOf(mod, path);
  if (handlers.size === 0) {
    throw new CliError(
      `${path} exports no handlers: default-export { [taskType]: handler } or export functions named after task types. For a worker without handlers use "oq monitor".`,
      EXIT_FAILURE,
    );
  }
  return handlers;
}
