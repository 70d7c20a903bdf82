/**
 * `--help` of every command, in-process through `runCli` (the same path `cli.ts` takes): each
 * command and sub-command prints its own help and exits 0, also as `oq help <command>`, whatever
 * flags come with it. Commands are found from cli.ts, so commands added later are held to it too.
 */
import { type ArgsDef, type CommandDef, defineCommand } from "citty";
import { afterEach, describe, expect, it, vi } from "vitest";
import { commonArgs } from "../../src/cli/connection.ts";
import { runCli } from "../../src/cli/run.ts";
import { allCommands } from "../helpers/commands.ts";

/** Run `oq line...` in-process; what it wrote to stdout and stderr, and its exit code. */
async function run(main: CommandDef<ArgsDef>, line: string[]) {
  let stdout = "";
  let stderr = "";
  const write = (into: "out" | "err") => (chunk: string | Uint8Array) => {
    if (into === "out") stdout += String(chunk);
    else stderr += String(chunk);
    return true;
  };
  vi.spyOn(process.stdout, "write").mockImplementation(write("out"));
  vi.spyOn(process.stderr, "write").mockImplementation(write("err"));
  const code = await runCli(main, line);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

afterEach(() => vi.restoreAllMocks());

describe("help of every command (issue 13 item 8)", () => {
  it("every command's --help, -h and `oq help <command>` print that command's own help, exit 0", async () => {
    const commands = await allCommands();
    const main = defineCommand<ArgsDef>({
      meta: { name: "oq" },
      args: commonArgs,
      subCommands: Object.fromEntries(
        commands.filter((c) => c.words.length === 1).map((c) => [c.words[0]!, c.cmd]),
      ),
    });
    expect(commands.length).toBeGreaterThan(20);
    for (const { words } of commands) {
      const name = `oq ${words.join(" ")}`;
      for (const line of [
        [...words, "--help"],
        ["--url", "memory:", ...words, "-h"],
        ["help", ...words],
        [...words, "--json", "--help"],
      ]) {
        const r = await run(main, line);
        expect({ line, code: r.code, stderr: r.stderr }).toEqual({ line, code: 0, stderr: "" });
        expect(r.stdout).toContain(`(${name})\n\nUSAGE ${name}`);
      }
    }
  });
});
