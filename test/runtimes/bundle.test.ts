/**
 * The bundle a Cloudflare Worker ships holds the portable core and nothing else: no `node:`
 * module, nothing of the CLI (src/cli/, citty), of `oq/file` or the Node server adapter
 * (src/runtime/), no test or script code, and only the npm packages known to be portable. The
 * benchmark (`scripts/bench.ts --only bundle`) measures the same bundles' sizes.
 */
import { describe, expect, it } from "vitest";
import {
  BUNDLE_ENTRIES,
  buildPortableBundle,
  inputGroup,
  measureBundle,
  outsideCore,
} from "../../scripts/bench-bundle.ts";
import { ROOT } from "./helpers.ts";

describe("the portable bundle (Cloudflare Workers)", () => {
  for (const entry of BUNDLE_ENTRIES) {
    it(`${entry}: nothing outside the portable core, and the core is there`, async () => {
      const measured = await measureBundle(ROOT, entry);
      expect(measured.outsideCore).toEqual([]);
      const groups = measured.groups.map((g) => g.group);
      for (const core of ["src/queue", "src/worker", "src/storage", "valibot"]) {
        expect(groups).toContain(core);
      }
      expect(measured.gzipBytes).toBeLessThan(measured.bytes);
    });
  }

  it("the check sees what it must: oq/file's Node modules and the CLI's packages", async () => {
    // Node built-ins left external, as a bundler for Node would; the check must still see them.
    const file = await buildPortableBundle(ROOT, "file.ts", { external: ["node:*"] });
    const fileOutside = outsideCore(file.metafile);
    expect(fileOutside).toContain("node:fs/promises");
    expect(fileOutside.some((i) => i.startsWith("src/runtime/file/"))).toBe(true);
    const cli = await buildPortableBundle(ROOT, "cli.ts", { external: ["node:*"] });
    const cliGroups = new Set(outsideCore(cli.metafile).map(inputGroup));
    expect(cliGroups).toContain("src/cli");
    expect(cliGroups).toContain("citty");
    expect(cliGroups).toContain("cli.ts");
  });

  it("groups inputs by npm package (through a symlinked node_modules too) or source folder", () => {
    expect(inputGroup("../../main/node_modules/@ark/schema/out/node.js")).toBe("@ark/schema");
    expect(inputGroup("node_modules/croner/dist/croner.js")).toBe("croner");
    expect(inputGroup("node_modules/a/node_modules/b/index.js")).toBe("b");
    expect(inputGroup("src/queue/listing.ts")).toBe("src/queue");
    expect(inputGroup("src/keys.ts")).toBe("src/keys.ts");
    expect(inputGroup("mod.ts")).toBe("mod.ts");
  });
});
