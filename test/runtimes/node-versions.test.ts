/**
 * What CI tests is what the package claims: the Node versions of .ci/node-versions are
 * package.json's engines and the README's runtime table, and the Bun, Deno and miniflare
 * versions in that table are the devDependencies the runtime tests run.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers.ts";

const nodeVersions = readFileSync(join(ROOT, ".ci/node-versions"), "utf8")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"));
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};
const runtimeTable = (() => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Runtimes"));
  return section.slice(0, section.indexOf("\n\n", section.indexOf("| Runtime")));
})();
const row = (runtime: string) =>
  runtimeTable.split("\n").find((line) => line.startsWith(`| ${runtime}`)) ?? "";

describe("the runtimes CI tests", () => {
  it("Node: .ci/node-versions pins one version each of 20, 22 and 24", () => {
    expect(nodeVersions.map((v) => v.split(".")[0])).toEqual(["20", "22", "24"]);
    for (const v of nodeVersions) expect(v).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("Node: engines is exactly those versions' release lines, from the tested patch on", () => {
    expect(pkg.engines.node).toBe(nodeVersions.map((v) => `^${v}`).join(" || "));
  });

  it("Node: the README's runtime table names each tested version", () => {
    for (const v of nodeVersions) expect(row("Node")).toContain(v);
  });

  it("Bun, Deno and miniflare: the README's table names the devDependency versions", () => {
    expect(row("Bun")).toContain(`Bun ${pkg.devDependencies.bun}`);
    expect(row("Deno")).toContain(`Deno ${pkg.devDependencies.deno}`);
    expect(row("Cloudflare Workers")).toContain(`miniflare ${pkg.devDependencies.miniflare}`);
  });
});
