/**
 * One version everywhere: package.json, deno.json and src/version.ts (exported as `VERSION`)
 * agree, and scripts/version.ts catches drift and fixes it.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VERSION } from "../../mod.ts";
import { ROOT, run, show, tempDir } from "./helpers.ts";

const TSX = join(ROOT, "node_modules/.bin/tsx");
const read = (dir: string, file: string) => readFileSync(join(dir, file), "utf8");

describe("version", () => {
  it("is the same in package.json, deno.json and the code", () => {
    const pkg = JSON.parse(read(ROOT, "package.json")) as { version: string };
    const deno = JSON.parse(read(ROOT, "deno.json")) as { version: string };
    expect(deno.version).toBe(pkg.version);
    expect(VERSION).toBe(pkg.version);
  });

  it("scripts/version.ts --check fails on drift, and setting a version fixes it", async () => {
    const { dir, remove } = tempDir("version");
    try {
      mkdirSync(join(dir, "scripts"));
      mkdirSync(join(dir, "src"));
      for (const f of ["package.json", "package-lock.json", "deno.json", "src/version.ts"]) {
        copyFileSync(join(ROOT, f), join(dir, f));
      }
      copyFileSync(join(ROOT, "scripts/version.ts"), join(dir, "scripts/version.ts"));
      const script = join(dir, "scripts/version.ts");
      const original = read(dir, "package.json");
      const check = await run(TSX, [script, "--check"], { cwd: dir });
      expect(check.code, show(check)).toBe(0);

      writeFileSync(join(dir, "deno.json"), read(dir, "deno.json").replace(VERSION, "9.9.9"));
      const drift = await run(TSX, [script, "--check"], { cwd: dir });
      expect(drift.code).toBe(1);
      expect(drift.stderr).toMatch(/deno\.json: 9\.9\.9/);

      const bad = await run(TSX, [script, "not-a-version"], { cwd: dir });
      expect(bad.code).toBe(2);

      const set = await run(TSX, [script, "1.2.3-beta.1"], { cwd: dir });
      expect(set.code, show(set)).toBe(0);
      expect((await run(TSX, [script, "--check"], { cwd: dir })).code).toBe(0);
      expect(read(dir, "src/version.ts")).toContain('export const VERSION = "1.2.3-beta.1";');
      const lock = JSON.parse(read(dir, "package-lock.json")) as {
        version: string;
        packages: Record<string, { version?: string }>;
      };
      expect(lock.version).toBe("1.2.3-beta.1");
      expect(lock.packages[""]?.version).toBe("1.2.3-beta.1");
      // Only the version changed: the rest of package.json is byte for byte the same.
      expect(read(dir, "package.json").replace("1.2.3-beta.1", VERSION)).toBe(original);
    } finally {
      remove();
    }
  });
});
