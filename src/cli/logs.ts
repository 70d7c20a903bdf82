/**
 * The log lines of the long-running commands (`oq worker`, `oq monitor`, `oq schedule run`):
 * the `--log-format text|json` flag, defined once, and the switch that sends every log entry of
 * the process (the core's, through {@link queueLogger}, and the CLI's own lines) through
 * one formatter to stderr. stdout stays for data, as in every command.
 *
 * One-shot commands are not switched: they keep the plain display for people, without fields.
 *
 * @module
 */
import process from "node:process";
import { formatWithOptions } from "node:util";
import type { ArgsDef } from "citty";
import type { LogFields, Logger } from "../logger.ts";
import { redactor, redactUrls } from "../util/redact.ts";
import { usageError } from "./errors.ts";
import {
  formatJsonLine,
  formatTextLine,
  type LogEntry,
  type LogFormatOptions,
  type LogLevel,
} from "./log-format.ts";
import { type CliLogType, colorsEnabled, log, styles } from "./output.ts";

/** The values `--log-format` accepts. */
export const LOG_FORMATS = ["text", "json"] as const;

/** A log line format: `text` (timestamp, level, message, `key=value` fields) or `json`. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The `--log-format` flag of the long-running commands. */
export const logFormatArg = {
  "log-format": {
    type: "string",
    description:
      "Log lines on stderr as text (ISO time, level, message, key=value fields) or json (one object a line)",
    default: "text",
    valueHint: "text|json",
  },
} as const satisfies ArgsDef;

/** `--log-format`'s value, checked: a usage error (exit 2) names the allowed values. */
export function parseLogFormat(value: string | undefined): LogFormat {
  const format = value ?? "text";
  if ((LOG_FORMATS as readonly string[]).includes(format)) return format as LogFormat;
  throw usageError(`Invalid --log-format "${format}": use ${LOG_FORMATS.join(" or ")}.`);
}

/** Our level for a CLI log line's type: a success is news, as any info. */
function levelOf(type: CliLogType): LogLevel {
  return type === "success" ? "info" : type;
}

/**
 * What removes credentials from every log line: the values of the credential variables, and
 * the user info and signature or token parameters of any URL.
 */
export function logRedactor(env: Record<string, string | undefined>): (text: string) => string {
  const secrets = redactor(
    ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "OQ_DASHBOARD_TOKEN"].map(
      (name) => env[name] ?? "",
    ),
  );
  return (text) => redactUrls(secrets(text));
}

/** The format the process's log lines are switched to, once a long-running command started. */
let active: { format: LogFormat; options: LogFormatOptions } | undefined;

/** Write one entry in the active format (call only when {@link active} is set). */
function write(entry: LogEntry): void {
  // Debug lines are the core's detail for tests and tracing, not for a worker's log.
  if (active === undefined || entry.level === "debug") return;
  const line =
    active.format === "json"
      ? formatJsonLine(entry, active.options)
      : formatTextLine(entry, active.options);
  process.stderr.write(`${line}\n`);
}

/**
 * Switch this process's log lines to `format`, as a long-running command does first thing:
 * every line gets its ISO time and level (a worker runs for days; its log is read later), and
 * the core's fields. Stacks are included when `DEBUG` is set, as for the CLI's own errors.
 */
export function configureLogs(
  format: LogFormat,
  env: Record<string, string | undefined> = process.env,
): void {
  const s = styles(process.stderr);
  const paint = (part: "time" | LogLevel, text: string): string =>
    part === "time" || part === "debug"
      ? s.dim(text)
      : part === "error"
        ? s.red(text)
        : part === "warn"
          ? s.yellow(text)
          : text;
  active = {
    format,
    options: {
      redact: logRedactor(env),
      stacks: env.DEBUG !== undefined && env.DEBUG !== "",
      ...(format === "text" && colorsEnabled(process.stderr) ? { paint } : {}),
    },
  };
  log().setReporter((record) =>
    write({
      time: record.date,
      level: levelOf(record.type),
      msg: formatWithOptions({ colors: false }, ...record.args),
    }),
  );
}

/** Check `--log-format` and switch the process's log lines to it (see {@link configureLogs}). */
export function useLogFormat(value: string | undefined): void {
  configureLogs(parseLogFormat(value));
}

/**
 * The core's {@link Logger} seam for the CLI. Once {@link configureLogs} ran, entries keep their
 * fields in the chosen format; before (one-shot commands) they are plain lines for people, where
 * the messages stand alone: a task's completion shows as a success.
 */
export function queueLogger(): Logger {
  const redact = logRedactor(process.env);
  const entry =
    (level: LogLevel) =>
    (message: string, fields?: LogFields): void => {
      if (active !== undefined) {
        write({ time: new Date(), level, msg: message, fields });
        return;
      }
      if (level === "debug") return;
      log()[fields?.event === "completed" ? "success" : level](redact(message));
    };
  return { debug: entry("debug"), info: entry("info"), warn: entry("warn"), error: entry("error") };
}
