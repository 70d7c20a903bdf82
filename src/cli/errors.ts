/**
 * The CLI's one error type and the mapping from library errors to messages and exit codes.
 *
 * Commands throw; only the entry (`cli.ts`) turns the exit code into `process.exit`, so every
 * command stays callable (and testable) without ending the process.
 *
 * @module
 */
import { stripVTControlCharacters } from "node:util";
import { OqError } from "../errors.ts";

/** Exit code of a command that did what it was asked. */
export const EXIT_OK = 0;
/** Exit code of a command that failed (storage trouble, an unknown task, a refused change). */
export const EXIT_FAILURE = 1;
/** Exit code of a command given bad input: an unknown flag, bad JSON, a bad date or duration. */
export const EXIT_USAGE = 2;

/** An error the CLI reports as a message (no stack) and an exit code. */
export class CliError extends Error {
  /** The process exit code to end with. */
  readonly exitCode: number;

  constructor(message: string, exitCode: number = EXIT_FAILURE) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** A usage error (exit 2): the command line itself is wrong. */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT_USAGE);
}

/**
 * Turn anything thrown into a message and an exit code. Library errors carry a stable `code`;
 * their messages already say what to fix and never contain credentials, so they are shown as
 * they are; the code decides the exit status, and is appended where the message may not say
 * what kind of failure it was.
 */
export function describeError(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CliError) return { message: error.message, exitCode: error.exitCode };
  if (error instanceof OqError) {
    switch (error.code) {
      case "VALIDATION":
        return { message: error.message, exitCode: EXIT_USAGE };
      // A stored object failed validation: the command line was fine, the bucket is not.
      case "MALFORMED":
        return { message: `Invalid object in storage: ${error.message}`, exitCode: EXIT_FAILURE };
      case "CONFIG":
        return { message: `Configuration problem: ${error.message}`, exitCode: EXIT_FAILURE };
      // The drivers' messages already say what to check (credentials, endpoint, status).
      case "ACCESS_DENIED":
      case "UNAVAILABLE":
      case "NOT_FOUND":
      case "INVALID_STATE":
        return { message: error.message, exitCode: EXIT_FAILURE };
      default:
        return { message: `${error.message} [${error.code}]`, exitCode: EXIT_FAILURE };
    }
  }
  // citty reports a missing argument or an unknown command with its own (unexported) class.
  if (error instanceof Error && error.name === "CLIError") {
    return { message: stripVTControlCharacters(error.message), exitCode: EXIT_USAGE };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { message: `Unexpected error: ${message}`, exitCode: EXIT_FAILURE };
}
