/**
 * The portable bundle a Cloudflare Worker ships: an entry bundled the way wrangler bundles it
 * (esbuild, ESM, platform neutral, the workerd/worker/browser export conditions, no Node
 * built-ins), minified; its size raw and gzipped, its biggest inputs, and whatever in it lies
 * outside the portable core. scripts/bench.ts measures it (section `bundle`), the report renders
 * it, and test/runtimes/bundle.test.ts fails when something outside the core gets in.
 */
import { gzipSync } from "node:zlib";
import type { BuildOptions, Metafile } from "esbuild";

/** esbuild options that bundle like wrangler: what a Worker script is built with. */
export const WORKER_BUILD_OPTIONS = {
  bundle: true,
  format: "esm",
  platform: "neutral",
  conditions: ["workerd", "worker", "browser", "import"],
  mainFields: ["module", "main"],
  target: "es2022",
} as const satisfies BuildOptions;

/**
 * The npm packages the portable core may reach, each checked to need no Node built-in and to
 * read runtime globals only behind `typeof` guards. A new one is checked first, then added here.
 */
export const PORTABLE_PACKAGES: readonly string[] = ["@opentelemetry/api", "croner", "valibot"];

/**
 * The portable entry points: `oq`, `oq/schedule`, `oq/metrics` and `oq/dashboard`. Each runs on
 * any runtime with web-standard globals (test/runtimes/portable.test.ts).
 */
export const PORTABLE_ENTRIES = ["mod.ts", "schedule.ts", "metrics.ts", "dashboard.ts"] as const;

/** The entries measured: the whole portable API, and what the example Worker really ships. */
export const BUNDLE_ENTRIES = ["mod.ts", "examples/cloudflare/worker.ts"] as const;

/** A bundled entry: its code and esbuild's account of which input gave how many bytes. */
export interface PortableBundle {
  code: Uint8Array;
  metafile: Metafile;
}

/** Bundle `entry` (a path from the repository root) like wrangler, minified unless told not. */
export async function buildPortableBundle(
  root: string,
  entry: string,
  options: { minify?: boolean; tsconfig?: string; external?: string[] } = {},
): Promise<PortableBundle> {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    ...WORKER_BUILD_OPTIONS,
    entryPoints: [`${root}/${entry}`],
    absWorkingDir: root,
    minify: options.minify ?? true,
    write: false,
    metafile: true,
    logLevel: "silent",
    ...(options.tsconfig === undefined ? {} : { tsconfig: options.tsconfig }),
    ...(options.external === undefined ? {} : { external: options.external }),
  });
  return { code: result.outputFiles[0]!.contents, metafile: result.metafile };
}

/**
 * Where an input comes from: its npm package (`croner`, `@ark/schema`), or the repository
 * folder two levels deep (`src/queue`), or the file (`src/keys.ts`). node_modules may be a
 * symlink, so a package is recognised by the last `node_modules/` in the path.
 */
export function inputGroup(input: string): string {
  const inPackage = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(input);
  if (inPackage !== null) return inPackage[1]!;
  const parts = input.replace(/^(\.\.\/)+/, "").split("/");
  return parts.length <= 2 ? parts.join("/") : parts.slice(0, 2).join("/");
}

/**
 * What a bundle holds that the portable core must not: Node built-ins (as inputs, or as modules
 * esbuild disabled for lack of them), any import left to the runtime (a Worker's bundle is
 * self-contained), the CLI, the Node/Bun/Deno runtime adapters (file store,
 * node:http server), the `oq/file` and CLI entry points, test or script code, and any npm
 * package not in {@link PORTABLE_PACKAGES} (citty is the CLI's).
 */
export function outsideCore(metafile: Metafile): string[] {
  const leftToRuntime = Object.values(metafile.outputs).flatMap((o) =>
    o.imports.filter((i) => i.external).map((i) => i.path),
  );
  const inputs = Object.keys(metafile.inputs).filter((input) => {
    if (input.startsWith("node:") || input.includes("(disabled)")) return true;
    const group = inputGroup(input);
    if (input.includes("node_modules/")) return !PORTABLE_PACKAGES.includes(group);
    return (
      /^(src\/cli|src\/runtime|test|scripts)(\/|$)/.test(group) ||
      group === "cli.ts" ||
      group === "file.ts"
    );
  });
  return [...inputs, ...leftToRuntime];
}

/** One entry as measured: sizes, inputs by group (largest first), and what is outside the core. */
export interface BundleEntryResult {
  entry: string;
  bytes: number;
  gzipBytes: number;
  inputs: number;
  groups: { group: string; bytes: number }[];
  outsideCore: string[];
}

/** What the `bundle` section of the benchmark records. */
export interface BundleResult {
  esbuild: string;
  entries: BundleEntryResult[];
}

/** Bundle and measure one entry: minified bytes, gzipped bytes (level 9), bytes per input group. */
export async function measureBundle(root: string, entry: string): Promise<BundleEntryResult> {
  const tsconfig = entry.startsWith("examples/cloudflare/")
    ? `${root}/examples/cloudflare/tsconfig.json`
    : undefined;
  const { code, metafile } = await buildPortableBundle(
    root,
    entry,
    tsconfig === undefined ? {} : { tsconfig },
  );
  const output = Object.values(metafile.outputs)[0]!;
  const byGroup = new Map<string, number>();
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const group = inputGroup(input);
    byGroup.set(group, (byGroup.get(group) ?? 0) + bytesInOutput);
  }
  return {
    entry,
    bytes: code.byteLength,
    gzipBytes: gzipSync(code, { level: 9 }).byteLength,
    inputs: Object.keys(output.inputs).length,
    groups: [...byGroup]
      .map(([group, bytes]) => ({ group, bytes }))
      .sort((a, b) => b.bytes - a.bytes),
    outsideCore: outsideCore(metafile),
  };
}

/** Every entry of {@link BUNDLE_ENTRIES}, measured. */
export async function bundleSizes(root: string): Promise<BundleResult> {
  const esbuild = await import("esbuild");
  const entries: BundleEntryResult[] = [];
  for (const entry of BUNDLE_ENTRIES) entries.push(await measureBundle(root, entry));
  return { esbuild: esbuild.version, entries };
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} kB`;
const was = (text: string, previous: string | undefined) =>
  previous === undefined ? text : `${text} (was ${previous})`;

/** The report's section on the bundle, when the run measured it. */
export function renderBundle(run: BundleResult | undefined, previous?: BundleResult): string[] {
  if (run === undefined) return [];
  const biggest = 12;
  const all = run.entries[0]!;
  const outside = run.entries.flatMap((e) => e.outsideCore.map((i) => `${e.entry}: ${i}`));
  return [
    "## The portable bundle (Cloudflare Workers)",
    "",
    `Each entry bundled as wrangler bundles a Worker: esbuild ${run.esbuild}, ESM, platform neutral, the \`workerd\`/\`worker\`/\`browser\` export conditions, no Node built-ins, minified; gzipped at level 9. \`mod.ts\` is everything the portable core (\`oq\`) exports, without \`oq/schedule\`, \`oq/metrics\` and \`oq/dashboard\` (entries of their own since issue 15; before, \`mod.ts\` held them too); the example Worker (\`examples/cloudflare/worker.ts\`: submit over \`fetch\`, drain on cron, R2 or S3) is what a Worker using the queue and a worker ships once unused exports are shaken out.`,
    "",
    "| entry | minified | gzipped | inputs |",
    "|---|---:|---:|---:|",
    ...run.entries.map((e) => {
      const o = previous?.entries.find((x) => x.entry === e.entry);
      return `| \`${e.entry}\` | ${was(kb(e.bytes), o && kb(o.bytes))} | ${was(kb(e.gzipBytes), o && kb(o.gzipBytes))} | ${e.inputs} |`;
    }),
    "",
    `The biggest inputs of \`${all.entry}\`, by npm package or source folder, as minified bytes in the output:`,
    "",
    "| input | minified | share |",
    "|---|---:|---:|",
    ...all.groups
      .slice(0, biggest)
      .map(
        (g) => `| \`${g.group}\` | ${kb(g.bytes)} | ${((100 * g.bytes) / all.bytes).toFixed(1)}% |`,
      ),
    "",
    outside.length === 0
      ? "Nothing outside the portable core is in either bundle: no `node:` module, nothing of the CLI (`src/cli/`, citty), of `oq/file` or of the Node server adapter (`src/runtime/`); test/runtimes/bundle.test.ts keeps it so."
      : `OUTSIDE the portable core, in the bundle: ${outside.join(", ")}.`,
    "",
  ];
}
