/**
 * The logging seam. The core logs through this small interface so it never depends on a console
 * library; the CLI passes consola, embedders pass their own.
 *
 * @module
 */

/** Where oq reports what it noticed (malformed objects, recoveries, task starts and ends). */
export interface Logger {
  /** Routine progress: a task started or finished. */
  info(message: string): void;
  /** Something was wrong but handled: a malformed object skipped, a lease recovered. */
  warn(message: string): void;
  /** Something failed and was not handled. */
  error(message: string): void;
}

/** A logger that drops everything (the library default: libraries should not print). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** A logger writing warnings and errors to the console, for embedding without setup. */
export const consoleLogger: Logger = {
  info: (m) => console.log(`oq: ${m}`),
  warn: (m) => console.warn(`oq: ${m}`),
  error: (m) => console.error(`oq: ${m}`),
};
