/**
 * One version for npm, JSR and the code: `package.json`, `deno.json` and `src/version.ts` must
 * agree.
 *
 *   npx tsx scripts/version.ts            print the version
 *   npx tsx scripts/version.ts --check    exit 1 when the three disagree (CI runs this)
 *   npx tsx scripts/version.ts 0.2.0      set all three (and package-lock.json's own entries)
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const VERSION_LINE = /^export const VERSION = "([^"]*)";$/m;

interface Source {
  file: string;
  read(): string | undefined;
  write(version: string): void;
}

const path = (file: string) => join(root, file);

/** A JSON file's top-level "version", edited in place so formatting and key order survive. */
function jsonVersion(file: string): Source {
  return {
    file,
    read: () => {
      const v = (JSON.parse(readFileSync(path(file), "utf8")) as { version?: unknown }).version;
      return typeof v === "string" ? v : undefined;
    },
    write: (version) => {
      const text = readFileSync(path(file), "utf8");
      const next = text.replace(/^(\s*"version":\s*)"[^"]*"/m, `$1"${version}"`);
      if (next === text && !text.includes(`"version": "${version}"`)) {
        throw new Error(`${file}: no top-level "version" field to set`);
      }
      writeFileSync(path(file), next);
    },
  };
}

const sources: Source[] = [
  jsonVersion("package.json"),
  jsonVersion("deno.json"),
  {
    file: "src/version.ts",
    read: () => VERSION_LINE.exec(readFileSync(path("src/version.ts"), "utf8"))?.[1],
    write: (version) => {
      const text = readFileSync(path("src/version.ts"), "utf8");
      if (!VERSION_LINE.test(text)) throw new Error("src/version.ts: no VERSION line to set");
      writeFileSync(
        path("src/version.ts"),
        text.replace(VERSION_LINE, `export const VERSION = "${version}";`),
      );
    },
  },
];

/** package-lock.json repeats the root package's version twice; keep it in step when setting. */
function setLockVersion(version: string): void {
  const file = path("package-lock.json");
  const lock = JSON.parse(readFileSync(file, "utf8")) as {
    version?: string;
    packages?: Record<string, { version?: string }>;
  };
  lock.version = version;
  const self = lock.packages?.[""];
  if (self !== undefined) self.version = version;
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
}

function main(args: string[]): number {
  const found = sources.map((s) => ({ file: s.file, version: s.read() }));
  const arg = args[0];
  if (arg === undefined || arg === "--check") {
    const versions = new Set(found.map((f) => f.version));
    if (versions.size === 1 && found[0]!.version !== undefined) {
      if (arg === "--check") console.error(`version ${found[0]!.version}: all in sync`);
      else console.log(found[0]!.version);
      return 0;
    }
    console.error("version drift:");
    for (const f of found) console.error(`  ${f.file}: ${f.version ?? "(missing)"}`);
    console.error("fix with: npx tsx scripts/version.ts <version>");
    return 1;
  }
  if (arg === "--help" || arg === "-h") {
    console.log("usage: scripts/version.ts [--check | <version>]");
    return 0;
  }
  if (!SEMVER.test(arg)) {
    console.error(`not a semver version: ${arg}`);
    return 2;
  }
  for (const s of sources) s.write(arg);
  setLockVersion(arg);
  console.error(
    `version set to ${arg} in ${sources.map((s) => s.file).join(", ")}, package-lock.json`,
  );
  return 0;
}

process.exitCode = main(process.argv.slice(2));
