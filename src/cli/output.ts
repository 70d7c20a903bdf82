/**
 * Output: logs go to stderr through {@link log}, data (tables, ids, JSON) to stdout, so
 * `oq submit ... | xargs oq status` and `oq list --json | jq` see only data.
 *
 * @module
 */
import { formatWithOptions, stripVTControlCharacters } from "node:util";
import { formatDuration } from "../duration.ts";
import type { TaskStatus } from "../task/record.ts";

/** True when ANSI colours may be written to `stream`: a terminal, and no `NO_COLOR`. */
export function colorsEnabled(stream: { isTTY?: boolean } = process.stdout): boolean {
  const env = process.env;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "" && env.FORCE_COLOR !== "0")
    return true;
  return stream.isTTY === true && env.TERM !== "dumb";
}

/** A text style: identity when colours are off. */
export type Style = (text: string) => string;

/** The styles the CLI uses, for one stream. */
export interface Styles {
  bold: Style;
  dim: Style;
  red: Style;
  green: Style;
  yellow: Style;
  cyan: Style;
}

/** Styles for `stream`, plain when it is not a terminal. */
export function styles(stream: { isTTY?: boolean } = process.stdout): Styles {
  const on = colorsEnabled(stream);
  const sgr =
    (open: number, close: number): Style =>
    (text) =>
      on ? `\u001B[${open}m${text}\u001B[${close}m` : text;
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    red: sgr(31, 39),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
  };
}

/** The kinds of line the CLI logs: a finished step is a success. */
export type CliLogType = "info" | "success" | "warn" | "error";

/** One line the CLI logs, before it is formatted. */
export interface CliLogRecord {
  type: CliLogType;
  date: Date;
  /** What was logged, formatted as `console.log` formats its arguments. */
  args: unknown[];
}

/** Where the CLI's log lines go (replaced by `configureLogs` for long-running commands). */
export type CliLogReporter = (record: CliLogRecord) => void;

/**
 * The CLI's logger: lines for people on stderr (stdout is for data). Its own few lines rather
 * than a library's: the worker pays every module it loads at each start (issue 15).
 */
export interface CliLog {
  info(...args: unknown[]): void;
  success(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  /** Send every line to `report` from now on. */
  setReporter(report: CliLogReporter): void;
}

/**
 * The plain look of a line: `[type] message`, or on a colour terminal an icon in the type's
 * colour, as people read a one-shot command's progress.
 */
function forPeople(record: CliLogRecord): string {
  const text = formatWithOptions({ colors: colorsEnabled(process.stderr) }, ...record.args);
  if (!colorsEnabled(process.stderr)) return `[${record.type}] ${text}`;
  const s = styles(process.stderr);
  const icon = { info: s.cyan("ℹ"), success: s.green("✔"), warn: s.yellow("⚠"), error: s.red("✖") };
  return `${icon[record.type]} ${text}`;
}

let cliLog: CliLog | undefined;

/** The CLI's logger (see {@link CliLog}). */
export function log(): CliLog {
  if (cliLog !== undefined) return cliLog;
  let report: CliLogReporter = (record) => process.stderr.write(`${forPeople(record)}\n`);
  const at =
    (type: CliLogType) =>
    (...args: unknown[]): void =>
      report({ type, date: new Date(), args });
  cliLog = {
    info: at("info"),
    success: at("success"),
    warn: at("warn"),
    error: at("error"),
    setReporter: (next) => {
      report = next;
    },
  };
  return cliLog;
}

/** Write one line of data to stdout. */
export function out(line = ""): void {
  process.stdout.write(`${line}\n`);
}

/** Write a value as pretty JSON to stdout (the `--json` output of every command). */
export function outJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/**
 * Align rows into columns (two spaces apart). Widths ignore ANSI codes, so coloured cells line
 * up; the last column is not padded, so lines carry no trailing spaces.
 */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, stripVTControlCharacters(cell).length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) =>
        i === row.length - 1
          ? cell
          : cell + " ".repeat(widths[i]! - stripVTControlCharacters(cell).length),
      )
      .join("  ")
      .trimEnd(),
  );
}

/** A coarse human span: `12s`, `5m 3s`, `2h 10m`, `3d 4h`. */
export function span(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 60_000) return `${Math.floor(abs / 1000)}s`;
  return formatDuration(abs);
}

/** `when` relative to `now`: `just now`, `12s ago`, `in 5m 3s`. */
export function relative(when: number, now: number): string {
  const diff = now - when;
  if (Math.abs(diff) < 1000) return "just now";
  return diff > 0 ? `${span(diff)} ago` : `in ${span(diff)}`;
}

/** A task status, coloured by what it means for the operator. */
export function paintStatus(status: TaskStatus, s: Styles): string {
  switch (status) {
    case "completed":
      return s.green(status);
    case "failed":
      return s.red(status);
    case "running":
      return s.cyan(status);
    case "pending":
      return s.yellow(status);
    default:
      return s.dim(status);
  }
}
