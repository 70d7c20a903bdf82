/**
 * The demo's "Look around" hints work as printed (issue 13 item 8): from a checkout they printed
 * `oq list ...`, but there the command is `npx tsx cli.ts ...`. The hints now name the command the
 * CLI was started with; every one of them is run here, from the checkout, exactly as printed.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliCommand } from "../../src/cli/invocation.ts";
import { cleanEnv, MANY_ROUNDS_TIMEOUT_MS, ROOT, runOq } from "../helpers/cli.ts";

const store = mkdtempSync(join(tmpdir(), "oq-demo-hints-"));
afterAll(() => rmSync(store, { recursive: true, force: true }));

/** Run a printed command line in a shell, from `cwd`. */
function sh(line: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      "sh",
      ["-c", line],
      { cwd, env: cleanEnv({ NO_COLOR: "1" }) },
      (error, stdout, stderr) =>
        done({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }),
    );
  });
}

describe("the demo's hints", () => {
  it("name the command the CLI was started with", () => {
    const at = (script: string, execPath = "/usr/bin/node", cwd = "/src/oq") =>
      cliCommand({ argv: [execPath, script], execPath, cwd });
    expect(at("/usr/local/bin/oq")).toBe("oq");
    expect(at("/home/me/app/node_modules/.bin/oq", "/usr/bin/node", "/home/me/app")).toBe("npx oq");
    expect(at("/src/oq/cli.ts")).toBe("npx tsx cli.ts");
    expect(at("/src/oq/dist/cli.js")).toBe("node dist/cli.js");
    expect(at("/src/oq/cli.ts", "/home/me/.bun/bin/bun")).toBe("bun cli.ts");
    expect(at("/src/oq/cli.ts", "/usr/bin/deno")).toBe("deno run -A cli.ts");
    expect(at("/src/oq/cli.ts", "/usr/bin/node", "/tmp")).toBe("npx tsx /src/oq/cli.ts");
    expect(at("/my dir/cli.ts", "/usr/bin/node", "/tmp")).toBe("npx tsx '/my dir/cli.ts'");
    expect(cliCommand({ argv: ["/usr/bin/node"], execPath: "/usr/bin/node", cwd: "/" })).toBe("oq");
  });

  it("run successfully from a checkout, as printed", {
    timeout: MANY_ROUNDS_TIMEOUT_MS,
  }, async () => {
    const demo = await runOq(["demo", "--url", `file:${store}`, "--count", "5", "--delay", "0"], {
      cwd: ROOT,
      env: cleanEnv({ NO_COLOR: "1" }),
    });
    expect(demo.code, demo.stderr).toBe(0);
    const hints = demo.stdout
      .split("Look around:\n")[1]!
      .split("\n")
      .filter((line) => line.startsWith("  "))
      .map((line) => line.trim());
    expect(hints.map((h) => h.split(" ").slice(0, 4).join(" "))).toEqual([
      "npx tsx cli.ts list",
      expect.stringMatching(/^npx tsx cli\.ts history$/),
      "npx tsx cli.ts stats",
    ]);
    for (const hint of hints) {
      const r = await sh(hint, ROOT);
      expect({ hint, code: r.code, stderr: r.stderr }).toMatchObject({ hint, code: 0 });
      expect(r.stdout).not.toBe("");
    }
  });
});
