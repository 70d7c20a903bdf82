/**
 * Running the command tree: `--help`, `--version`, and the mapping of every failure to a message
 * on stderr and an exit code. Returns the exit code instead of exiting, so `cli.ts` stays the one
 * place that ends the process.
 *
 * citty's own `runMain` exits by itself and uses 1 for usage errors; oq promises 2.
 *
 * @module
 */
import process from "node:process";
import { stripVTControlCharacters } from "node:util";
import { type ArgsDef, type CommandDef, parseArgs, renderUsage, runCommand } from "citty";
import { VERSION } from "../version.ts";
import {
  checkArgs,
  commandExamples,
  rejectRepeatedFlags,
  rejectUnknownFlags,
  subCommandIndex,
} from "./args.ts";
import { CliError, describeError, EXIT_OK, EXIT_USAGE, usageError } from "./errors.ts";
import { colorsEnabled, log, out } from "./output.ts";
import { closest } from "./suggest.ts";

/** Any command: the tree is walked without knowing each command's flags. */
type AnyCommand = CommandDef<ArgsDef>;

async function resolve<T>(value: T | Promise<T> | (() => T | Promise<T>)): Promise<T> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

/** Where `rawArgs` leads in the command tree. */
export interface ResolvedCommand {
  /** The deepest command named. */
  cmd: AnyCommand;
  /** Its full name (`oq schedule run`). */
  name: string;
  /** The arguments after its name (its own flags and positionals). */
  rest: readonly string[];
  /** A word given where a sub-command of `cmd` was expected that names none, and the names. */
  unknown?: { word: string; known: string[] };
}

/** The command `rawArgs` names (following sub-commands) and its full name (`oq schedule run`). */
export async function resolveCommand(
  cmd: AnyCommand,
  rawArgs: readonly string[],
  names: readonly string[] = [],
): Promise<ResolvedCommand> {
  const here = [...names, (await resolve(cmd.meta ?? {})).name ?? "oq"];
  const subs = cmd.subCommands === undefined ? undefined : await resolve(cmd.subCommands);
  if (subs !== undefined) {
    const args = await resolve(cmd.args ?? {});
    const index = subCommandIndex(rawArgs, args);
    const word = index < 0 ? undefined : rawArgs[index];
    if (word !== undefined && Object.hasOwn(subs, word)) {
      const sub = (await resolve(subs[word]!)) as AnyCommand;
      return resolveCommand(sub, rawArgs.slice(index + 1), here);
    }
    if (word !== undefined) {
      // `oq --endpiont http://x list` reads as command "http://x": the flag is the mistake.
      checkArgs(parseArgs(rawArgs.slice(0, index), args), args);
      return {
        cmd,
        name: here.join(" "),
        rest: rawArgs,
        unknown: { word, known: Object.keys(subs) },
      };
    }
  }
  return { cmd, name: here.join(" "), rest: rawArgs };
}

/**
 * Reject flags the command does not define before citty parses them: citty reports a missing
 * required flag first, so `oq submit --tpye email` said "Missing required argument: --type"
 * instead of naming the typo. Required flags are left to citty, which checks them next.
 */
async function precheckFlags(
  { cmd, rest }: ResolvedCommand,
  main: AnyCommand,
  rawArgs: readonly string[],
): Promise<void> {
  const args = await resolve(cmd.args ?? {});
  const optional: ArgsDef = {};
  for (const [name, def] of Object.entries(args)) optional[name] = { ...def, required: false };
  rejectUnknownFlags(parseArgs([...rest], optional), args);
  // The whole line: a connection flag before the command name and again after it is repeated.
  rejectRepeatedFlags(rawArgs, { ...(await resolve(main.args ?? {})), ...args });
}

/** `oq help [command...]` reads as `oq [command...] --help`. */
function helpCommand(rawArgs: string[]): string[] {
  return rawArgs[0] === "help" ? [...rawArgs.slice(1), "--help"] : rawArgs;
}

/** The usage error for a word that names no command: `Unknown command 'x'. Did you mean 'y'?` */
function unknownCommand({ word, known }: { word: string; known: string[] }): CliError {
  const match = closest(word, known);
  return usageError(
    `Unknown command '${word}'.${match === undefined ? "" : ` Did you mean '${match}'?`}`,
  );
}

/**
 * The flags as `--help` shows them. citty prints every alias with one dash, so long aliases kept
 * for old spellings (`--task-type`) are named in the description instead.
 */
function helpArgs(args: ArgsDef): ArgsDef {
  const shown: ArgsDef = {};
  for (const [name, def] of Object.entries(args)) {
    const all = "alias" in def && def.alias !== undefined ? [def.alias].flat() : [];
    const long = all.filter((a) => a.length > 1);
    shown[name] =
      long.length === 0
        ? def
        : ({
            ...def,
            alias: all.filter((a) => a.length === 1),
            description: `${def.description ?? ""} (also ${long.map((a) => `--${a}`).join(", ")})`,
          } as typeof def);
  }
  return shown;
}

/** The `--help` text of a command: citty's usage plus our examples, plain when not a TTY. */
export async function helpText(
  cmd: AnyCommand,
  name: string,
  stream: { isTTY?: boolean } = process.stdout,
): Promise<string> {
  // citty names a command after its parent and itself only; give it the whole path as the
  // parent's name so nested commands read `oq schedule run`. (It also pads every column,
  // leaving trailing spaces on each line.)
  const words = name.split(" ");
  const parent: AnyCommand | undefined =
    words.length > 1 ? { meta: { name: words.slice(0, -1).join(" ") } } : undefined;
  const shown = { ...cmd, args: helpArgs(await resolve(cmd.args ?? {})) };
  let text = await renderUsage(shown, parent);
  const examples = commandExamples(cmd);
  if (examples.length > 0) {
    text += `\n\n\u001B[4m\u001B[1mEXAMPLES\u001B[22m\u001B[24m\n\n${examples.map((e) => `  ${e}`).join("\n")}`;
  }
  if (!colorsEnabled(stream)) text = stripVTControlCharacters(text);
  return text
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd();
}

/** Run the command line `rawArgs` against `main`. Resolves to the exit code. */
export async function runCli<T extends ArgsDef>(
  command: CommandDef<T>,
  rawArgs: string[],
): Promise<number> {
  const main = command as unknown as AnyCommand;
  rawArgs = helpCommand(rawArgs);
  const beforeDashes = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
  try {
    const target = await resolveCommand(main, rawArgs);
    if (target.unknown !== undefined) throw unknownCommand(target.unknown);
    if (beforeDashes.includes("--help") || beforeDashes.includes("-h")) {
      out(await helpText(target.cmd, target.name));
      return EXIT_OK;
    }
    if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
      out(VERSION);
      return EXIT_OK;
    }
    await precheckFlags(target, main, rawArgs);
    if (rawArgs.length === 0) {
      process.stderr.write(`${await helpText(main, "oq", process.stderr)}\n`);
      return EXIT_USAGE;
    }
    await runCommand(main, { rawArgs });
    return EXIT_OK;
  } catch (error) {
    const { message, exitCode } = describeError(error);
    log().error(message);
    if (exitCode === EXIT_USAGE) {
      const { name } = await resolveCommand(main, rawArgs).catch(() => ({ name: "oq" }));
      log().info(`Run "${name} --help" for usage.`);
    } else if (!(error instanceof CliError) && process.env.DEBUG && error instanceof Error) {
      process.stderr.write(`${error.stack}\n`);
    }
    return exitCode;
  }
}
