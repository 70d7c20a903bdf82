/**
 * The logging seam. The core logs through this small interface so it never depends on a console
 * library; the CLI passes its own (text or JSON lines, `--log-format`), embedders pass theirs.
 *
 * @module
 */

/**
 * The structured part of a log entry: what it is about, as fields a log pipeline can filter on,
 * beside a message written for people. The well-known keys are below; any other key may be
 * added (a plain value: string, number, boolean or null). A key that does not apply is left out.
 */
export interface LogFields {
  /** The task the entry is about. */
  taskId?: string;
  /** That task's type. */
  type?: string;
  /** Its attempt: 1 for the first run, counting every claim that was not handed back. */
  attempt?: number;
  /** How long the attempt ran, in ms (on the entry that ends an attempt). */
  durationMs?: number;
  /** The id of the worker that logs the entry. */
  worker?: string;
  /**
   * The error behind the entry: an `Error` as thrown, a recorded `{name, message}`, or a message.
   * Loggers should show its name and message; a stack only when asked to.
   */
  error?: unknown;
  /**
   * What happened, for entries that report a worker event: its `WorkerEvent` kind (`started`,
   * `completed`, `retry-scheduled`, `failed`, `cancelled`, `released`, `recovered`, ...).
   */
  event?: string;
  /** Anything else the entry is about (`status`, `schedule`, `slot`, ...). */
  [key: string]: unknown;
}

/**
 * Where oq reports what it noticed (task starts and ends, recoveries, malformed objects).
 *
 * Every method takes a message for people and, optionally, {@link LogFields}. A logger written
 * before fields existed (`{ info(m) {...}, warn(m) {...}, error(m) {...} }`) still works: it
 * just does not see them.
 */
export interface Logger {
  /** Detail for finding a problem; oq may leave it out when the logger has no `debug`. */
  debug?(message: string, fields?: LogFields): void;
  /** Routine progress: a task started or finished. */
  info(message: string, fields?: LogFields): void;
  /** Something was wrong but handled: a malformed object skipped, a lease recovered, a retry. */
  warn(message: string, fields?: LogFields): void;
  /** Something failed and was not handled, or a task failed for good. */
  error(message: string, fields?: LogFields): void;
}

/** A logger that drops everything (the library default: libraries should not print). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** `console.*` with the message prefixed, and the fields (when any) as a second argument. */
const toConsole =
  (write: (...data: unknown[]) => void) =>
  (message: string, fields?: LogFields): void =>
    fields === undefined ? write(`oq: ${message}`) : write(`oq: ${message}`, fields);

/** A logger writing to the console (the fields, when any, as an object after the message). */
export const consoleLogger: Logger = {
  info: toConsole((...data) => console.log(...data)),
  warn: toConsole((...data) => console.warn(...data)),
  error: toConsole((...data) => console.error(...data)),
};
