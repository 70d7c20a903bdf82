/**
 * Argument plumbing shared by every command: the connection flags, a `defineCommand` wrapper
 * that rejects what citty lets through (unknown flags, stray arguments, flags without a value),
 * and parsers for numbers, durations, dates and JSON that fail as usage errors (exit 2).
 *
 * citty parses non-strictly, so `--concurrncy 4` would otherwise be silently ignored.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { type ArgDef, type ArgsDef, type CommandDef, defineCommand, type ParsedArgs } from "citty";
import { parseDate, parseDuration } from "../duration.ts";
import { isOqError } from "../errors.ts";
import { usageError } from "./errors.ts";

/** The flags that say where the queue lives; every command accepts them. */
export const commonArgs = {
  url: {
    type: "string",
    description:
      "Queue location: s3://bucket/prefix?endpoint=...&region=..., file:./dir or memory: (env OQ_URL; default file:./.oq)",
    valueHint: "url",
  },
  bucket: { type: "string", description: "S3 bucket (env OQ_BUCKET)", valueHint: "name" },
  endpoint: {
    type: "string",
    description: "S3 endpoint, e.g. http://localhost:9000 (env OQ_ENDPOINT; default AWS)",
    valueHint: "url",
  },
  region: { type: "string", description: "S3 region (env OQ_REGION)", valueHint: "region" },
  prefix: {
    type: "string",
    description: "Key prefix of the queue in the bucket (env OQ_PREFIX)",
    valueHint: "prefix",
  },
  "allow-no-versioning": {
    type: "boolean",
    description:
      "Run on a bucket without versioning; history is then unavailable (env OQ_ALLOW_NO_VERSIONING=1)",
  },
} as const satisfies ArgsDef;

/** The connection flags as parsed. */
export type CommonArgs = typeof commonArgs;

/** The connection flags given before the command name (`oq --url memory: demo`). */
export interface ConnectionFlags {
  url?: string | undefined;
  bucket?: string | undefined;
  endpoint?: string | undefined;
  region?: string | undefined;
  prefix?: string | undefined;
  allowNoVersioning?: boolean | undefined;
}

let rootFlags: ConnectionFlags = {};

/** Remember the connection flags the root command parsed; a command's own flags win over them. */
export function setRootFlags(flags: ConnectionFlags): void {
  rootFlags = { ...flags };
}

/** The connection flags of a command, falling back to those given before the command name. */
export function connectionFlags(args: ConnectionFlags): ConnectionFlags {
  return {
    url: args.url ?? rootFlags.url,
    bucket: args.bucket ?? rootFlags.bucket,
    endpoint: args.endpoint ?? rootFlags.endpoint,
    region: args.region ?? rootFlags.region,
    prefix: args.prefix ?? rootFlags.prefix,
    allowNoVersioning: args.allowNoVersioning ?? rootFlags.allowNoVersioning,
  };
}

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
  const known = new Set(["_"]);
  for (const [name, d] of Object.entries(def)) {
    for (const n of [name, ...aliases(d)]) {
      known.add(n);
      known.add(camel(n));
      known.add(kebab(n));
    }
  }
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) throw usageError(`Unknown option ${flagName(key)}.`);
  }
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
  if (ms <= 0) throw usageError(`Invalid --${name} "${value}": it must be longer than zero.`);
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
