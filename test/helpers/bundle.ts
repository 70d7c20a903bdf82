/**
 * A TypeScript entry point bundled into one ES module, for tests that start it as a subprocess
 * many times: `node --import tsx entry.ts` spends 1-2 s of every start on tsx's loader thread and
 * one transform per module; the bundle starts in a quarter of a second.
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSync } from "esbuild";

const built = new Map<string, string>();

/**
 * `entry` and everything it imports (dependencies too) bundled by esbuild into one ES module in
 * a temporary directory: built from the current sources on first use in each test file (vitest
 * loads this module once per file; a build takes a few hundred ms), removed when the process
 * exits. Returns the bundle's path, for `node <path>`.
 */
export function bundled(entry: string): string {
  const known = built.get(entry);
  if (known !== undefined) return known;
  const dir = mkdtempSync(join(tmpdir(), "oq-test-bundle-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const outfile = join(dir, "entry.mjs");
  buildSync({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
  });
  built.set(entry, outfile);
  return outfile;
}
