/**
 * Build the package's JavaScript: `mod.ts` (`oq`), `file.ts` (`oq/file`) and `cli.ts` (the `oq`
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
 * Dependencies stay imports of the installed packages.
 *
 *   npx tsx scripts/build.ts
 *
 * @module
 */
import { build } from "esbuild";

await build({
  entryPoints: ["mod.ts", "file.ts", "cli.ts"],
  outdir: "dist",
  bundle: true,
  splitting: true,
  packages: "external",
  platform: "node",
  format: "esm",
  target: "node20",
  chunkNames: "chunk-[hash]",
  legalComments: "eof",
  logLevel: "warning",
});
