/**
 * Build the package's JavaScript: the entry points `mod.ts` (`oq`), `file.ts` (`oq/file`),
 * `schedule.ts`, `metrics.ts` and `dashboard.ts` (`oq/schedule`, ...) and `cli.ts` (the `oq`
 * bin) bundled by esbuild into `dist/`, with the code they share in chunks of their own
 * (`dist/chunk-*.js`). `tsc` writes the type declarations beside them (`npm run build`).
 *
 * Why bundles: Node spends most of a CLI start loading modules one by one (resolving, reading and
 * compiling the 150 or so files `oq worker` used to load), and a worker process started by a
 * deploy or an autoscaler pays that before it takes its first task (issue 15: 450-650 ms from
 * spawn to the first handler, against bare Node's 40 ms). Why shared chunks rather than one file
 * per entry: a tasks module given to `oq worker` imports `oq` too, and must get the very classes
 * the CLI's worker uses (a `PermanentError` it throws is told by `instanceof`), not a second copy.
 * Sub-commands stay lazy: each is a chunk of its own, loaded when its command runs.
 * Dependencies stay imports of the installed packages, but for two that are bundled, each still a
 * dependency for the types `oq`'s declarations name:
 * - `@opentelemetry/api`: `oq` needs one function of it (the global meter provider), and importing
 *   the package loads dozens of files, 20-30 ms of every start of a process whose tasks module
 *   imports `oq`. Bundled, it is 4 kB. The API finds the provider an application registered
 *   through its own copy anyway: its global is keyed by major version, shared by every copy
 *   (test/runtimes/package.test.ts checks it).
 * - `valibot`: the package is one 206 kB module, and `oq` uses a tenth of it. Node 20 has no
 *   compile cache, so every worker start compiled all of it: bundled (tree-shaken, 25 kB), a start
 *   of `oq worker` on Node 20 took about 30 ms less CPU (median of 12 alternated starts, 266
 *   against 298 ms). oq's schemas pass their own config to every parse (src/util/schema.ts), so
 *   a private copy behaves as the shared one did.
 *
 *   npx tsx scripts/build.ts
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { build } from "esbuild";

const BUNDLED = ["@opentelemetry/api", "valibot"];
const { dependencies } = JSON.parse(readFileSync("package.json", "utf8")) as {
  dependencies: Record<string, string>;
};
const external = Object.keys(dependencies).filter((name) => !BUNDLED.includes(name));

await build({
  entryPoints: ["mod.ts", "file.ts", "schedule.ts", "metrics.ts", "dashboard.ts", "cli.ts"],
  outdir: "dist",
  bundle: true,
  splitting: true,
  external,
  platform: "node",
  format: "esm",
  target: "node20",
  chunkNames: "chunk-[hash]",
  legalComments: "eof",
  logLevel: "warning",
});
