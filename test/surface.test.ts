/**
 * The public surface: what `oq` (mod.ts), `oq/file` (file.ts), `oq/schedule`, `oq/metrics` and
 * `oq/dashboard` export is exactly what the README's API section lists, every export has TSDoc,
 * and no test helper or internal leaks out.
 *
 * The README's API section is a list of bullets `` - `Name`, `Other` — what they are ``; the
 * names before the dash are the ones it lists. Its `oq/file` subsection lists what that entry
 * adds to (or replaces in) `oq` (it re-exports the rest); the `oq/schedule`, `oq/metrics` and
 * `oq/dashboard` subsections list everything their entry exports; every other subsection lists
 * `oq` exports.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import * as dashboardEntry from "../dashboard.ts";
import * as fileEntry from "../file.ts";
import * as metricsEntry from "../metrics.ts";
import * as modEntry from "../mod.ts";
import * as scheduleEntry from "../schedule.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Export {
  name: string;
  /** True when the name exists at runtime (a class, function or constant), not only as a type. */
  value: boolean;
  /** The TSDoc summary on its declaration ("" when missing). */
  doc: string;
  /** Where it is declared, relative to the repository root. */
  file: string;
}

/**
 * The TSDoc text on a declaration. A file's `@module` comment does not count, although the
 * compiler attaches it to the first statement when nothing else comes between them.
 */
function docOf(declaration: ts.Declaration): string {
  return ts
    .getJSDocCommentsAndTags(declaration)
    .filter(ts.isJSDoc)
    .filter((doc) => !doc.tags?.some((tag) => tag.tagName.text === "module"))
    .map((doc) => ts.getTextOfJSDocComment(doc.comment) ?? "")
    .join(" ")
    .trim();
}

/** The entry points, by name: their file and the module as imported. */
const ENTRIES = {
  mod: { file: "mod.ts", module: modEntry },
  file: { file: "file.ts", module: fileEntry },
  schedule: { file: "schedule.ts", module: scheduleEntry },
  metrics: { file: "metrics.ts", module: metricsEntry },
  dashboard: { file: "dashboard.ts", module: dashboardEntry },
} as const;
type EntryName = keyof typeof ENTRIES;
/** The entries whose README subsection lists every export (not only additions to `oq`). */
const OWN_ENTRIES = ["schedule", "metrics", "dashboard"] as const;

/** Every export of each entry point, types included, read with the TypeScript checker. */
function entryExports(): Record<EntryName, Export[]> {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, "tsconfig.json"),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (config === undefined) throw new Error("tsconfig.json did not parse");
  const paths = Object.values(ENTRIES).map((e) => join(ROOT, e.file));
  const program = ts.createProgram(paths, { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const read = (path: string): Export[] => {
    const source = program.getSourceFile(path);
    if (source === undefined) throw new Error(`${path} is not in the program`);
    const moduleSymbol = checker.getSymbolAtLocation(source);
    if (moduleSymbol === undefined) throw new Error(`${path} has no module symbol`);
    return checker.getExportsOfModule(moduleSymbol).map((exported) => {
      const symbol =
        exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const declaration = symbol.declarations?.[0];
      return {
        name: exported.name,
        value: (symbol.flags & ts.SymbolFlags.Value) !== 0,
        doc: declaration === undefined ? "" : docOf(declaration),
        file:
          declaration === undefined
            ? "?"
            : declaration.getSourceFile().fileName.slice(ROOT.length + 1),
      };
    });
  };
  const entries = Object.keys(ENTRIES) as EntryName[];
  return Object.fromEntries(
    entries.map((name) => [name, read(join(ROOT, ENTRIES[name].file))]),
  ) as Record<EntryName, Export[]>;
}

/** The README's API section, split into its `###` subsections, each with the names it lists. */
function readmeApi(): { heading: string; names: string[]; malformed: string[] }[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.search(/^## API$/m);
  if (start < 0) throw new Error("README.md has no `## API` section");
  const rest = readme.slice(start + "## API".length);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  return section
    .split(/^### /m)
    .slice(1)
    .map((block) => {
      const [heading = "", ...lines] = block.split("\n");
      const names: string[] = [];
      const malformed: string[] = [];
      for (const line of lines.filter((l) => l.startsWith("- "))) {
        const head = /^- ((?:`[^`]+`)(?:, `[^`]+`)*) — \S/.exec(line);
        if (head === null) {
          malformed.push(line);
          continue;
        }
        for (const m of head[1]!.matchAll(/`([^`]+)`/g)) names.push(m[1]!);
      }
      return { heading: heading.trim(), names, malformed };
    });
}

const exportsOf = entryExports();
const api = readmeApi();
const sectionOf = (entry: EntryName) => api.find((s) => s.heading === `\`oq/${entry}\``);
const fileSection = sectionOf("file");
const ownSections = OWN_ENTRIES.map((name) => sectionOf(name));
const modSections = api.filter((s) => s !== fileSection && !ownSections.includes(s));
const allExports = Object.values(exportsOf).flat();

const modNames = exportsOf.mod.map((e) => e.name).sort();
/** What `oq/file` adds to `oq` or replaces (its own `connect`). */
const fileOwnNames = exportsOf.file
  .map((e) => e.name)
  .filter(
    (name) =>
      !modNames.includes(name) ||
      (fileEntry as Record<string, unknown>)[name] !== (modEntry as Record<string, unknown>)[name],
  )
  .sort();

describe("the public surface", () => {
  it("the README's API section is a list of `Name` — description bullets", () => {
    for (const name of ["file", ...OWN_ENTRIES])
      expect(api.map((s) => s.heading)).toContain(`\`oq/${name}\``);
    expect(api.flatMap((s) => s.malformed)).toEqual([]);
  });

  it("every runtime export of every entry is listed in the README's API section", () => {
    const listed = new Set(modSections.flatMap((s) => s.names));
    expect(Object.keys(modEntry).filter((name) => !listed.has(name))).toEqual([]);
    const listedFile = new Set([...listed, ...(fileSection?.names ?? [])]);
    expect(Object.keys(fileEntry).filter((name) => !listedFile.has(name))).toEqual([]);
    for (const name of OWN_ENTRIES) {
      const own = new Set(sectionOf(name)?.names ?? []);
      const module = ENTRIES[name].module as Record<string, unknown>;
      expect(Object.keys(module).filter((n) => !own.has(n))).toEqual([]);
    }
  });

  it("the README's API section lists exactly the exports (types included), each entry's under its own heading", () => {
    // The checker agrees with what the modules export at runtime.
    expect(
      exportsOf.mod
        .filter((e) => e.value)
        .map((e) => e.name)
        .sort(),
    ).toEqual(Object.keys(modEntry).sort());
    expect([...new Set(modSections.flatMap((s) => s.names))].sort()).toEqual(modNames);
    expect([...new Set(fileSection?.names ?? [])].sort()).toEqual(fileOwnNames);
    for (const name of OWN_ENTRIES) {
      const own = exportsOf[name].map((e) => e.name).sort();
      expect([...new Set(sectionOf(name)?.names ?? [])].sort(), name).toEqual(own);
    }
  });

  it("the portable entries share nothing: `oq` exports none of what `oq/schedule`, `oq/metrics` and `oq/dashboard` do", () => {
    // Kept apart so that importing `oq` does not load them (a worker's start compiles all of it).
    const own = OWN_ENTRIES.flatMap((name) => exportsOf[name].map((e) => e.name));
    expect(own.filter((name) => modNames.includes(name))).toEqual([]);
    expect(own).toContain("Scheduler");
    expect(own).toContain("Metrics");
    expect(own).toContain("createDashboard");
  });

  it("every export has TSDoc on its declaration", () => {
    const undocumented = allExports.filter((e) => e.doc === "").map((e) => `${e.name} (${e.file})`);
    expect([...new Set(undocumented)]).toEqual([]);
  });

  it("exports no test helpers or internals (liveWorkers, Keys, resolveStorage, ...)", () => {
    const internals = [
      "liveWorkers",
      "Keys",
      "resolveStorage",
      "readVerdict",
      "CachedVerdict",
      "CATCH_UP_POLICIES",
      "countRequests",
      "parseDuration",
      "FaultyStorage",
      "internals",
    ];
    const names = new Set(allExports.map((e) => e.name));
    expect(internals.filter((name) => names.has(name))).toEqual([]);
  });

  it("exports only what is declared in the entry points or under src/ (nothing from test/ or scripts/)", () => {
    const outside = allExports.filter(
      (e) => !/^(mod|file|schedule|metrics|dashboard)\.ts$|^src\//.test(e.file),
    );
    expect(outside.map((e) => `${e.name} (${e.file})`)).toEqual([]);
  });

  it("the JSR package publishes only the entry points, src/ and the README and licence", () => {
    const deno = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")) as {
      publish: { include: string[] };
    };
    expect(
      deno.publish.include.filter(
        (p) =>
          !/^((mod|file|schedule|metrics|dashboard|cli)\.ts|src\/\*\*\/\*\.ts|README\.md|LICENSE)$/.test(
            p,
          ),
      ),
    ).toEqual([]);
  });
});
