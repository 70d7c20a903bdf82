/**
 * The portable entry points (mod.ts, and schedule.ts, metrics.ts and dashboard.ts beside it) must
 * run on any runtime with web-standard globals: nothing reachable from them may import `node:` (or
 * bare Node built-in) modules or touch the `process`, `Bun` or `Deno` globals. Checked twice:
 * statically, walking the import graph from each entry with the TypeScript parser, and by
 * bundling each with esbuild for a platform without Node built-ins (which also covers the npm
 * dependencies they pull in).
 */
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import {
  PORTABLE_ENTRIES,
  PORTABLE_PACKAGES,
  WORKER_BUILD_OPTIONS,
} from "../../scripts/bench-bundle.ts";
import { ROOT } from "./helpers.ts";

/** Globals that exist only on some runtimes. */
const FORBIDDEN_GLOBALS = new Set([
  "process",
  "Bun",
  "Deno",
  "Buffer",
  "require",
  "module",
  "__dirname",
  "__filename",
  "global",
  "setImmediate",
  "clearImmediate",
]);
const NODE_BUILTINS = new Set(builtinModules);

interface Finding {
  file: string;
  line: number;
  what: string;
}

interface Graph {
  files: string[];
  packages: Set<string>;
  findings: Finding[];
}

function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith("node:") || NODE_BUILTINS.has(specifier.split("/")[0]!);
}

/** Module specifiers of a file: static imports/exports, `import type`, and `import("...")`. */
function specifiers(source: ts.SourceFile): { text: string; node: ts.Node }[] {
  const out: { text: string; node: ts.Node }[] = [];
  const visit = (node: ts.Node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      out.push({ text: node.moduleSpecifier.text, node });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined
    ) {
      const arg = node.arguments[0];
      out.push({
        text: ts.isStringLiteralLike(arg) ? arg.text : `<dynamic: ${arg.getText(source)}>`,
        node,
      });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const lit = node.argument.literal;
      if (ts.isStringLiteral(lit)) out.push({ text: lit.text, node });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Uses of a forbidden global as a value or type, including `globalThis.process`. */
function globalUses(source: ts.SourceFile): { name: string; node: ts.Node }[] {
  const out: { name: string; node: ts.Node }[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isIdentifier(node) && FORBIDDEN_GLOBALS.has(node.text)) {
      const p = node.parent;
      const isName =
        (ts.isPropertyAccessExpression(p) && p.name === node) ||
        (ts.isQualifiedName(p) && p.right === node) ||
        ((ts.isPropertyAssignment(p) ||
          ts.isPropertyDeclaration(p) ||
          ts.isPropertySignature(p) ||
          ts.isMethodDeclaration(p) ||
          ts.isMethodSignature(p) ||
          ts.isGetAccessorDeclaration(p) ||
          ts.isSetAccessorDeclaration(p) ||
          ts.isEnumMember(p) ||
          ts.isBindingElement(p) ||
          ts.isParameter(p) ||
          ts.isVariableDeclaration(p) ||
          ts.isFunctionDeclaration(p)) &&
          p.name === node) ||
        ts.isImportSpecifier(p) ||
        ts.isExportSpecifier(p) ||
        ts.isLabeledStatement(p);
      if (!isName) out.push({ name: node.text, node });
    }
    if (
      ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      (node.expression.text === "globalThis" || node.expression.text === "self") &&
      FORBIDDEN_GLOBALS.has(node.name.text)
    ) {
      out.push({ name: `${node.expression.text}.${node.name.text}`, node });
    }
    if (
      ts.isElementAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === "globalThis" &&
      ts.isStringLiteralLike(node.argumentExpression) &&
      FORBIDDEN_GLOBALS.has(node.argumentExpression.text)
    ) {
      out.push({ name: `globalThis["${node.argumentExpression.text}"]`, node });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Walk the relative import graph from `entry`. */
function walk(...entries: string[]): Graph {
  const graph: Graph = { files: [], packages: new Set(), findings: [] };
  const seen = new Set<string>();
  const queue = entries.map((entry) => resolve(ROOT, entry));
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    graph.files.push(relative(ROOT, file));
    const text = readFileSync(file, "utf8");
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const at = (node: ts.Node) =>
      source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    for (const { text: spec, node } of specifiers(source)) {
      if (spec.startsWith("<dynamic")) {
        graph.findings.push({ file: relative(ROOT, file), line: at(node), what: spec });
      } else if (spec.startsWith("./") || spec.startsWith("../")) {
        const target = resolve(dirname(file), spec);
        if (!existsSync(target)) {
          graph.findings.push({
            file: relative(ROOT, file),
            line: at(node),
            what: `unresolved ${spec}`,
          });
        } else queue.push(target);
      } else if (isNodeBuiltin(spec)) {
        graph.findings.push({ file: relative(ROOT, file), line: at(node), what: `import ${spec}` });
      } else {
        graph.packages.add(
          spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!,
        );
      }
    }
    for (const { name, node } of globalUses(source)) {
      graph.findings.push({ file: relative(ROOT, file), line: at(node), what: `global ${name}` });
    }
  }
  return graph;
}

const show = (findings: Finding[]) => findings.map((f) => `${f.file}:${f.line}: ${f.what}`);

describe("the portable entry points", () => {
  const graph = walk(...PORTABLE_ENTRIES);

  it("imports no Node built-in and uses no process/Bun/Deno global, anywhere it reaches", () => {
    expect(graph.files.length).toBeGreaterThan(10);
    expect(graph.files).toContain("src/storage/s3/driver.ts");
    expect(graph.files).toContain("src/storage/r2.ts");
    expect(graph.files).toContain("src/schedule/scheduler.ts");
    expect(graph.files).toContain("src/dashboard/handler.ts");
    expect(graph.files).toContain("src/metrics/metrics.ts");
    expect(graph.files).not.toContain("src/runtime/file/storage.ts");
    expect(show(graph.findings)).toEqual([]);
  });

  it("depends only on packages known to be web-standard", () => {
    // A new dependency of the core must be checked first (the bundle test below helps): it may
    // not need Node built-ins or read runtime globals unguarded. Then add it here.
    // @opentelemetry/api: no Node built-in, globals reached through guarded `typeof` checks.
    const portable = new Set(PORTABLE_PACKAGES);
    expect([...graph.packages].filter((p) => !portable.has(p))).toEqual([]);
    expect(graph.packages.has("valibot")).toBe(true);
    expect(graph.packages.has("croner")).toBe(true);
  });

  it("the checker sees what it must: it flags node: imports and runtime globals", () => {
    // oq/file and the CLI are allowed Node APIs; the walk must notice them there.
    const file = walk("file.ts");
    expect(show(file.findings).some((f) => f.includes("import node:fs"))).toBe(true);
    const cli = walk("cli.ts");
    expect(
      show(cli.findings).some((f) => f.includes("global process") || f.includes("node:process")),
    ).toBe(true);
  });

  it.each(PORTABLE_ENTRIES)(
    "bundles %s for a platform without Node built-ins (esbuild, like wrangler)",
    async (entry) => {
      const esbuild = await import("esbuild");
      const result = await esbuild.build({
        ...WORKER_BUILD_OPTIONS,
        entryPoints: [join(ROOT, entry)],
        write: false,
        metafile: true,
        logLevel: "silent",
      });
      const inputs = Object.keys(result.metafile!.inputs);
      expect(inputs.filter((i) => i.startsWith("node:") || i.includes("(disabled)"))).toEqual([]);
      const imports = Object.values(result.metafile!.outputs).flatMap((o) =>
        o.imports.map((i) => i.path),
      );
      // A fully self-contained bundle: no import left for the runtime to resolve.
      expect(imports).toEqual([]);
      const code = result.outputFiles[0]!.text;
      // Dependencies may feature-detect runtimes (croner: `typeof Deno < "u" && Deno.unrefTimer`),
      // but nothing may read the process environment or exit.
      expect(code).not.toMatch(/\bprocess\.(env|argv|exit|cwd)\b/);
    },
  );
});
