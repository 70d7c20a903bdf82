/**
 * Turning any thrown value into text for a message or a log line.
 *
 * @module
 */

/** The message of an `Error`, or the thrown value as a string (code may throw anything). */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
