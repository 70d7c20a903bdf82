/**
 * Every `oq` command, found the way `cli.ts` names them (its `subCommands` map of lazy imports),
 * with its nested sub-commands: for the tests that hold every command to a convention, including
 * commands added later.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ArgsDef, CommandDef } from "citty";
import { ROOT } from "./cli.ts";

/** A command and the words that name it after `oq` (`["schedule", "run"]`). */
export interface NamedCommand {
  words: string[];
  cmd: CommandDef<ArgsDef>;
}

type Lazy<T> = T | Promise<T> | (() => T | Promise<T>);
const resolve = async <T>(value: Lazy<T>): Promise<T> =>
  typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;

/** The top-level commands of `cli.ts`: name and module path. */
function topLevel(): [string, string][] {
  const source = readFileSync(join(ROOT, "cli.ts"), "utf8");
  const found = [
    ...source.matchAll(/^\s*([\w-]+): \(\) => import\("\.\/(src\/cli\/[\w-]+\.ts)"\)/gm),
  ];
  return found.map((m) => [m[1]!, m[2]!]);
}

/** Every command and sub-command (`schedule` and `schedule run` both), loaded in-process. */
export async function allCommands(): Promise<NamedCommand[]> {
  const out: NamedCommand[] = [];
  const walk = async (words: string[], cmd: CommandDef<ArgsDef>): Promise<void> => {
    out.push({ words, cmd });
    const subs = cmd.subCommands === undefined ? {} : await resolve(cmd.subCommands);
    for (const [name, sub] of Object.entries(subs)) {
      await walk([...words, name], (await resolve(sub)) as CommandDef<ArgsDef>);
    }
  };
  for (const [name, path] of topLevel()) {
    const mod = (await import(join(ROOT, path))) as { default: CommandDef<ArgsDef> };
    await walk([name], mod.default);
  }
  return out;
}
