/**
 * Argument plumbing shared by every command: the task-type flag, a `defineCommand` wrapper that
 * adds the connection flags (`connection.ts`) and rejects what citty lets through (unknown flags,
 * with a did-you-mean; stray arguments; flags without a value), and parsers for numbers,
 * durations, dates and JSON that fail as usage errors (exit 2).
 *
 * citty parses non-strictly, so `--concurrncy 4` would otherwise be silently ignored.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { type ArgDef, type ArgsDef, type CommandDef, defineCommand, type ParsedArgs } from "citty";
import { MIN_POSITIVE_DURATION_MS, parseDate, parseDuration } from "../duration.ts";
import { isOqError } from "../errors.ts";
import { type CommonArgs, commonArgs } from "./connection.ts";
import { usageError } from "./errors.ts";
import { closest } from "./suggest.ts";

/**
 * The task-type flag, spelled the same in every command: `--type`, `-t`. `--task-type` (what
 * `oq cancel` used to call it) is accepted everywhere too, so no command line that worked breaks.
 *
 * Convention for every command: a flag that takes a task type is this one (spread
 * `...taskTypeArg("...")` into the command's args, never a hand-written `type` flag), and `-t`
 * means nothing else. Other shared short flags: `-i` input, `-c` concurrency, `-n` count or
 * limit, `-s` status. test/cli/flags.test.ts walks every command and holds them to it.
 */
export function taskTypeArg<const R extends boolean = false>(description: string, required?: R) {
  return {
    type: {
      type: "string" as const,
      alias: ["t", "task-type"],
      description,
      valueHint: "type",
      required: (required ?? false) as R,
    },
  };
}

/** The task-input flag of `oq submit` and `oq schedule create`: `--input`, `-i`, JSON or `@file`. */
export const taskInputArg = {
  input: {
    type: "string",
    alias: ["i"],
    description: "Task input as JSON, or @file.json (default null)",
    valueHint: "json",
  },
} as const satisfies ArgsDef;

/** The flag of the long-running commands that skips the backend check (`oq doctor`) at start. */
export const skipDoctorArg = {
  "skip-doctor": {
    type: "boolean",
    description: "Do not check first that the backend honours conditional writes (oq doctor)",
  },
} as const satisfies ArgsDef;

const examplesOf = new WeakMap<object, readonly string[]>();

/** The examples a command was defined with, for its `--help`. */
export function commandExamples(cmd: object): readonly string[] {
  return examplesOf.get(cmd) ?? [];
}

/** What {@link oqCommand} needs. */
export interface OqCommandSpec<T extends ArgsDef> {
  /** The command's name, as typed after `oq`. */
  name: string;
  /** One line for `oq --help`. */
  description: string;
  /** Complete command lines shown under EXAMPLES in `--help`. */
  examples: readonly string[];
  /** The command's own flags and positionals (the connection flags are added). */
  args: T;
  /** Accept any number of positionals (they arrive in `args._`). */
  variadic?: boolean;
  /** Runs the command; throw `CliError` (or let library errors through) to fail. */
  run(args: ParsedArgs<T & CommonArgs>): Promise<void> | void;
}

/** A citty command with the connection flags, strict flag checking and `--help` examples. */
export function oqCommand<const T extends ArgsDef>(
  spec: OqCommandSpec<T>,
): CommandDef<T & CommonArgs> {
  const args = { ...spec.args, ...commonArgs } as T & CommonArgs;
  const cmd = defineCommand<T & CommonArgs>({
    meta: { name: spec.name, description: spec.description },
    args,
    run: async ({ args: parsed }) => {
      checkArgs(parsed, args, spec.variadic === true);
      await spec.run(parsed);
    },
  });
  examplesOf.set(cmd, spec.examples);
  return cmd;
}

const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const aliases = (def: ArgDef): string[] =>
  "alias" in def && def.alias !== undefined ? [def.alias].flat() : [];

/** How a flag was probably written, for messages. */
function flagName(key: string): string {
  return key.length === 1 ? `-${key}` : `--${kebab(key)}`;
}

/**
 * Reject what citty's lenient parser accepts silently: flags the command does not define,
 * more positionals than it takes, and string flags given without a value (`--type` at the end).
 */
export function checkArgs(
  parsed: Record<string, unknown> & { _: string[] },
  def: ArgsDef,
  variadic = false,
): void {
  rejectUnknownFlags(parsed, def);
  const positionals = Object.values(def).filter((d) => d.type === "positional").length;
  if (!variadic && parsed._.length > positionals) {
    throw usageError(`Unexpected argument "${parsed._[positionals]}".`);
  }
  for (const [name, d] of Object.entries(def)) {
    if ((d.type === "string" || d.type === "enum") && parsed[name] === "") {
      throw usageError(`Option --${name} needs a value.`);
    }
  }
}

/**
 * Reject a flag `def` does not define, with a did-you-mean: `Unknown option --tpye. Did you
 * mean --type?`. Run before anything else looks at the flags, so a mistyped required flag is
 * named as the typo rather than as missing.
 */
export function rejectUnknownFlags(parsed: Record<string, unknown>, def: ArgsDef): void {
  const known = new Set(["_"]);
  for (const [name, d] of Object.entries(def)) {
    for (const n of [name, ...aliases(d)]) {
      known.add(n);
      known.add(camel(n));
      known.add(kebab(n));
    }
  }
  for (const key of Object.keys(parsed)) {
    if (known.has(key)) continue;
    const longNames = [...known].filter((n) => n.length > 1 && n !== "_" && n === kebab(n));
    const match = key.length > 1 ? closest(kebab(key), longNames) : undefined;
    throw usageError(
      `Unknown option ${flagName(key)}.${match === undefined ? "" : ` Did you mean --${match}?`}`,
    );
  }
}

/**
 * Reject a flag given more than once in `rawArgs` (up to `--`), by any of its spellings:
 * `-t x -t y`, `--delay 5s --delay 1h`, `--monitor --no-monitor`. citty keeps the last value
 * without a word, so the first was silently dropped. No oq flag is meant to repeat. The message
 * names the spellings used, never the values (a repeated `--url` may hold a secret).
 */
export function rejectRepeatedFlags(rawArgs: readonly string[], def: ArgsDef): void {
  const mainName = new Map<string, string>();
  for (const [name, d] of Object.entries(def)) {
    if (d.type === "positional") continue;
    for (const n of [name, ...aliases(d)])
      for (const v of [n, camel(n), kebab(n)]) mainName.set(v, name);
  }
  const seen = new Map<string, string[]>();
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break;
    if (!arg.startsWith("-") || arg === "-") continue;
    const long = arg.startsWith("--");
    const written = long ? arg.slice(2).split("=")[0]! : arg.slice(1, 2);
    const negated = long && written.startsWith("no-") && !mainName.has(written);
    const name = mainName.get(negated ? written.slice(3) : written);
    if (name === undefined) continue;
    const takesValue = def[name]!.type === "string" || def[name]!.type === "enum";
    // The value of `--type x` or `-t x` is the next word, whatever it looks like.
    if (takesValue && !negated && (long ? !arg.includes("=") : arg.length === 2)) i++;
    const spellings = seen.get(name) ?? [];
    spellings.push(long ? `--${written}` : `-${written}`);
    seen.set(name, spellings);
  }
  for (const [name, spellings] of seen) {
    if (spellings.length < 2) continue;
    const used = [...new Set(spellings)].join(", ");
    throw usageError(
      `Option --${name} is given ${spellings.length} times (${used}): give it once.`,
    );
  }
}

/** Index of the sub-command name in `rawArgs` (skipping flags and their values), or -1. */
export function subCommandIndex(rawArgs: readonly string[], def: ArgsDef): number {
  const valueFlags = new Set<string>();
  for (const [name, d] of Object.entries(def)) {
    if (d.type !== "string" && d.type !== "enum") continue;
    for (const n of [name, ...aliases(d)]) {
      valueFlags.add(n.length === 1 ? `-${n}` : `--${n}`);
      valueFlags.add(`--${camel(n)}`);
    }
  }
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") return -1;
    if (arg.startsWith("-")) {
      if (!arg.includes("=") && valueFlags.has(arg)) i++;
      continue;
    }
    return i;
  }
  return -1;
}

/** A whole number flag within bounds; `undefined` when not given. */
export function intArg(
  value: string | undefined,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw usageError(`Invalid --${name} "${value}": expected a whole number ${range}.`);
  }
  return n;
}

/** A duration flag in milliseconds (`90`, `45s`, `1h30m`); `undefined` when not given. */
export function durationArg(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  return rethrowAsUsage(() => parseDuration(value, `--${name}`));
}

/** A positive duration flag in seconds, as the library's `*Seconds` options take it. */
export function secondsArg(value: string | undefined, name: string): number | undefined {
  const ms = durationArg(value, name);
  if (ms === undefined) return undefined;
  // The library's rule for positive durations (src/duration.ts), in the flag's words.
  if (ms < MIN_POSITIVE_DURATION_MS)
    throw usageError(`Invalid --${name} "${value}": it must be at least 1ms (0.001 seconds).`);
  return ms / 1000;
}

/** A date flag in epoch ms (ISO 8601 with a timezone, or epoch ms); `undefined` when not given. */
export function dateArg(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  return rethrowAsUsage(() => parseDate(value, `--${name}`));
}

/** A JSON flag: inline JSON, or `@path` to read it from a file. */
export function jsonArg(value: string | undefined, name: string): unknown {
  if (value === undefined) return null;
  let text = value;
  let source = `--${name}`;
  if (value.startsWith("@")) {
    source = `--${name} file ${value.slice(1)}`;
    try {
      text = readFileSync(value.slice(1), "utf8");
    } catch (error) {
      throw usageError(
        `Cannot read ${source}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw usageError(
      `Invalid JSON in ${source}: ${error instanceof Error ? error.message : String(error)}. Quote it for the shell, e.g. -i '{"to":"a@example.com"}'.`,
    );
  }
}

function rethrowAsUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (isOqError(error, "VALIDATION")) throw usageError(error.message);
    throw error;
  }
}
