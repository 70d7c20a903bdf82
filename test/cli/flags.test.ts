/**
 * The flags every command shares, in-process: the connection flags and the one mapping from
 * them (and the environment) to `connect()` options, the task-type flag's spellings, the
 * "did you mean" suggestions, and the timestamped text log lines of long-running commands.
 */
import { parseArgs } from "citty";
import { afterEach, describe, expect, it } from "vitest";
import { checkArgs, taskTypeArg } from "../../src/cli/args.ts";
import { commonArgs, connectOptions, setRootFlags } from "../../src/cli/connection.ts";
import { describeError } from "../../src/cli/errors.ts";
import { closest, editDistance } from "../../src/cli/suggest.ts";
import { allCommands } from "../helpers/commands.ts";

const usageMessage = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    return describeError(error).message;
  }
  throw new Error("expected a usage error");
};

describe("connection flags", () => {
  afterEach(() => setRootFlags({}));

  it("turns every connection flag into the connect() option of the same (camel-cased) name", () => {
    const env = { OQ_BUCKET: "from-env" };
    const parsed = parseArgs<typeof commonArgs>(
      [
        "--url",
        "s3://b/p",
        "--bucket",
        "b",
        "--endpoint",
        "http://localhost:9000",
        "--region",
        "eu-west-1",
        "--prefix",
        "jobs/",
        "--allow-no-versioning",
      ],
      commonArgs,
    );
    expect(connectOptions(parsed, env)).toEqual({
      env,
      url: "s3://b/p",
      bucket: "b",
      endpoint: "http://localhost:9000",
      region: "eu-west-1",
      prefix: "jobs/",
      allowNoVersioning: true,
    });
  });

  it("leaves what no flag sets to the environment, and falls back to flags before the command", () => {
    const env = { OQ_URL: "memory:" };
    expect(connectOptions(parseArgs<typeof commonArgs>([], commonArgs), env)).toEqual({ env });
    setRootFlags(parseArgs<typeof commonArgs>(["--prefix", "root/", "--region", "r1"], commonArgs));
    const own = parseArgs<typeof commonArgs>(["--prefix", "own/"], commonArgs);
    expect(connectOptions(own, env)).toEqual({ env, prefix: "own/", region: "r1" });
  });
});

describe("the task-type flag", () => {
  it("is --type, -t, or the old --task-type, in every command that takes one", () => {
    const def = { ...taskTypeArg("Only tasks of this type") };
    for (const line of [
      ["--type", "email"],
      ["-t", "email"],
      ["--task-type", "email"],
    ]) {
      const parsed = parseArgs<typeof def>(line, def);
      expect(() => checkArgs(parsed, def)).not.toThrow();
      expect(parsed.type).toBe("email");
    }
    expect(usageMessage(() => checkArgs(parseArgs(["--task-type"], def), def))).toBe(
      "Option --type needs a value.",
    );
  });
});

describe("did you mean", () => {
  it("measures edits, counting a swap of neighbours as one", () => {
    expect(editDistance("list", "list")).toBe(0);
    expect(editDistance("lsit", "list")).toBe(1);
    expect(editDistance("concurrncy", "concurrency")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
  });

  it("suggests a close name or the one name it starts, and nothing for a far one", () => {
    const commands = ["demo", "submit", "status", "list", "history", "cancel", "replay"];
    expect(closest("lsit", commands)).toBe("list");
    expect(closest("sumbit", commands)).toBe("submit");
    expect(closest("STATUS", commands)).toBe("status");
    expect(closest("hist", commands)).toBe("history");
    expect(closest("repair", commands)).toBeUndefined();
    expect(closest("frobnicate", commands)).toBeUndefined();
    expect(closest("x", commands)).toBeUndefined();
  });

  it("an unknown flag on a known command names the flag it resembles", () => {
    const def = {
      concurrency: { type: "string" },
      "summary-interval": { type: "string" },
      ...commonArgs,
    } as const;
    const check =
      (...line: string[]) =>
      () =>
        checkArgs(parseArgs(line, def), def);
    expect(usageMessage(check("--concurrncy", "4"))).toBe(
      "Unknown option --concurrncy. Did you mean --concurrency?",
    );
    expect(usageMessage(check("--summaryIntervall", "5m"))).toBe(
      "Unknown option --summary-intervall. Did you mean --summary-interval?",
    );
    expect(usageMessage(check("--endpiont", "http://x"))).toBe(
      "Unknown option --endpiont. Did you mean --endpoint?",
    );
    expect(usageMessage(check("--frobnicate"))).toBe("Unknown option --frobnicate.");
    expect(usageMessage(check("-q"))).toBe("Unknown option -q.");
  });
});

describe("one spelling of each shared flag across every command (issue 13 item 8)", () => {
  it("every flag that takes a task type is taskTypeArg (-t, --type), and -t means nothing else", async () => {
    const commands = await allCommands();
    expect(commands.map((c) => c.words.join(" "))).toEqual(
      expect.arrayContaining(["submit", "list", "cancel", "stats", "replay", "prune", "retention"]),
    );
    const { type: typeFlag } = taskTypeArg("");
    const wrong: string[] = [];
    for (const { words, cmd } of commands) {
      const args = (typeof cmd.args === "function" ? await cmd.args() : await cmd.args) ?? {};
      for (const [name, def] of Object.entries(args)) {
        if (def.type === "positional") continue; // `oq shards email 8` names it in place
        const alias = "alias" in def && def.alias !== undefined ? [def.alias].flat() : [];
        const takesType = name === "type" || def.valueHint === "type" || alias.includes("t");
        if (takesType && (name !== "type" || String(alias) !== String(typeFlag.alias))) {
          wrong.push(`oq ${words.join(" ")} --${name} (alias ${alias.join(",") || "none"})`);
        }
      }
    }
    // prune and retention took --type without -t.
    expect(wrong).toEqual([]);
  });
});
