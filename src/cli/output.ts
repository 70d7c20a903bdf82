/**
 * Output: logs go to stderr through consola, data (tables, ids, JSON) to stdout, so
 * `oq submit ... | xargs oq status` and `oq list --json | jq` see only data.
 *
 * @module
 */
import { stripVTControlCharacters } from "node:util";
import { type ConsolaInstance, createConsola, type InputLogObject } from "consola";
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

let consolaInstance: ConsolaInstance | undefined;

/** The CLI's logger: consola writing to stderr, fancy only on a colour terminal. */
export function log(): ConsolaInstance {
  if (consolaInstance === undefined) {
    const level = process.env.CONSOLA_LEVEL;
    consolaInstance = createConsola({
      // consola lowers its level under NODE_ENV=test; the CLI's progress lines are its output.
      level: level !== undefined && level !== "" ? Number.parseInt(level, 10) : 3,
      stdout: process.stderr,
      stderr: process.stderr,
      fancy: colorsEnabled(process.stderr),
      // Badges put blank lines around every warning: too loud for a worker's stream of events.
      // (`badge` is read by the fancy reporter but missing from consola's types.)
      defaults: { badge: false } as InputLogObject,
      formatOptions: { colors: colorsEnabled(process.stderr), date: false, compact: true },
    });
  }
  return consolaInstance;
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
