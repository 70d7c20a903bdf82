/**
 * How this CLI was started, as a command to type again, so that the commands it suggests (the
 * demo's "Look around" hints) work as printed: `oq` from an installed binary, `npx oq` from a
 * project's own `node_modules`, `npx tsx cli.ts` (or `bun cli.ts`, `deno run -A cli.ts`) from a
 * checkout, where there is no `oq` on the PATH.
 *
 * @module
 */
import { basename, isAbsolute, relative, sep } from "node:path";
import process from "node:process";

/** What {@link cliCommand} reads; the defaults are this process's. */
export interface Invocation {
  /** The process's arguments: the runtime, then the script. */
  argv: readonly string[];
  /** The runtime's executable (`node`, `bun`, `deno`). */
  execPath: string;
  /** The working directory the hints will be typed in. */
  cwd: string;
}

/** A path as a shell word: quoted when it holds anything but plain characters. */
function shellWord(text: string): string {
  return /^[\w./:@%+=,-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The command that runs this CLI again from `cwd`, e.g. `oq` or `npx tsx cli.ts`. */
export function cliCommand(
  { argv, execPath, cwd }: Invocation = {
    argv: process.argv,
    execPath: process.execPath,
    cwd: process.cwd(),
  },
): string {
  const script = argv[1];
  if (script === undefined) return "oq";
  // npm links the binary as `oq` (`oq.cmd` on Windows), in a project's node_modules/.bin or globally.
  if (/^oq(\.(cmd|ps1|exe))?$/i.test(basename(script))) {
    return script.includes(`${sep}node_modules${sep}.bin${sep}`) ? "npx oq" : "oq";
  }
  const fromCwd = relative(cwd, script);
  const path = shellWord(fromCwd.startsWith("..") || isAbsolute(fromCwd) ? script : fromCwd);
  const runtime = basename(execPath).replace(/\.exe$/i, "");
  if (runtime === "bun") return `bun ${path}`;
  if (runtime === "deno") return `deno run -A ${path}`;
  return script.endsWith(".ts") ? `npx tsx ${path}` : `node ${path}`;
}
