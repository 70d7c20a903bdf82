/**
 * The two formats of a long-running command's log lines (`--log-format`): `text`, for people and
 * grep (`2026-11-30T09:15:00.123Z [info] message key=value ...`), and `json`, one object a line
 * for log pipelines (`{"time":...,"level":...,"msg":...,"taskId":...}`). Both keep one entry on
 * one line, whatever its message or fields hold, and pass every string through a redactor.
 *
 * @module
 */
import type { LogFields } from "../logger.ts";

/** The levels of a log entry, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One log entry, before formatting. */
export interface LogEntry {
  /** When it was logged. */
  time: Date;
  /** How severe it is. */
  level: LogLevel;
  /** The message for people. */
  msg: string;
  /** The structured part, flattened into the line. */
  fields?: LogFields | undefined;
}

/** How to format entries. */
export interface LogFormatOptions {
  /** Applied to every string written (messages, field values): removes credentials. */
  redact?: (text: string) => string;
  /** Include an error's stack (only when debugging: stacks are long and name file paths). */
  stacks?: boolean;
  /** Styles the time and the level tag of a text line (colours on a terminal). */
  paint?: (part: "time" | LogLevel, text: string) => string;
}

/** The keys every JSON line has; a field of the same name is written as `fields.<name>`. */
const RESERVED = new Set(["time", "level", "msg"]);

/**
 * An error as a log value: an `Error` (or a recorded `{name, message}`) as `{name, message}`,
 * with its `code` when it has one and its `stack` when `stacks`; anything else as it is.
 */
export function serializeError(error: unknown, stacks = false): unknown {
  if (typeof error !== "object" || error === null) return error;
  const { name, message, code, stack } = error as Record<string, unknown>;
  if (typeof message !== "string") return error;
  return {
    name: typeof name === "string" ? name : "Error",
    message,
    ...(typeof code === "string" ? { code } : {}),
    ...(stacks && typeof stack === "string" ? { stack } : {}),
  };
}

/** A JSON replacer: strings redacted, bigints as strings, errors by name and message. */
function replacer(options: LogFormatOptions): (key: string, value: unknown) => unknown {
  const redact = options.redact ?? ((t: string) => t);
  return (_key, value) => {
    if (typeof value === "string") return redact(value);
    if (typeof value === "bigint") return value.toString();
    if (value instanceof Error) return serializeError(value, options.stacks);
    return value;
  };
}

/** The fields to write, in order: undefined ones left out, reserved names moved aside. */
function fieldEntries(
  fields: LogFields | undefined,
  options: LogFormatOptions,
): [string, unknown][] {
  const entries: [string, unknown][] = [];
  for (const [key, value] of Object.entries(fields ?? {})) {
    if (value === undefined) continue;
    const name = RESERVED.has(key) ? `fields.${key}` : key;
    entries.push([name, key === "error" ? serializeError(value, options.stacks) : value]);
  }
  return entries;
}

/**
 * One JSON object on one line: `time` (ISO 8601 UTC, ms), `level`, `msg`, then the fields
 * flattened (`taskId`, `type`, `attempt`, `durationMs`, `worker`, `error: {name, message}`...).
 */
export function formatJsonLine(entry: LogEntry, options: LogFormatOptions = {}): string {
  const record: Record<string, unknown> = {
    time: entry.time.toISOString(),
    level: entry.level,
    msg: entry.msg,
  };
  for (const [key, value] of fieldEntries(entry.fields, options)) record[key] = value;
  try {
    return JSON.stringify(record, replacer(options));
  } catch {
    // A field that cannot be written as JSON (a cycle): keep the entry, say what was dropped.
    const { time, level, msg } = record;
    return JSON.stringify(
      { time, level, msg, fieldsDropped: "not serializable" },
      replacer(options),
    );
  }
}

/** A bare `key=value` value: no spaces, quotes, `=`, backslashes or control characters. */
const BARE = /^[^\s"=\\\p{Cc}]+$/u;

/** Control characters of a message, escaped, so an entry stays on its line. */
function escapeControls(text: string): string {
  return text.replace(/[\p{Cc}]/gu, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\t";
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

/** A field value as text: an error as `Name: message`, objects as JSON, quoted when needed. */
function textValue(value: unknown, options: LogFormatOptions): string {
  let text: string;
  const error = serializeError(value, options.stacks);
  if (typeof value === "string") text = value;
  else if (error !== value) {
    const e = error as { name: string; message: string; stack?: string };
    text = e.stack ?? `${e.name}: ${e.message}`;
  } else if (typeof value === "object" && value !== null && !(value instanceof Date)) {
    try {
      text = JSON.stringify(value, replacer(options));
    } catch {
      text = String(value);
    }
  } else text = value instanceof Date ? value.toISOString() : String(value);
  const redacted = options.redact === undefined ? text : options.redact(text);
  return BARE.test(redacted) ? redacted : JSON.stringify(redacted);
}

/**
 * One text line: `<ISO time> [<level>] <message> key=value ...`. Values with spaces, quotes,
 * `=` or control characters are JSON-quoted (`error="Error: boom"`); newlines in the message
 * are written as `\n`, so a message cannot forge a second entry.
 */
export function formatTextLine(entry: LogEntry, options: LogFormatOptions = {}): string {
  const paint = options.paint ?? ((_part: string, text: string) => text);
  const msg = options.redact === undefined ? entry.msg : options.redact(entry.msg);
  const parts = [
    paint("time", entry.time.toISOString()),
    paint(entry.level, `[${entry.level}]`),
    escapeControls(msg),
  ];
  for (const [key, value] of Object.entries(entry.fields ?? {})) {
    if (value === undefined) continue;
    parts.push(`${key.replace(/[^\w.-]/g, "_")}=${textValue(value, options)}`);
  }
  return parts.join(" ");
}
