/**
 * Keeps the source readable in one sitting: no file in src/ (or the entry points) over 500 lines
 * and no function over 60 lines. Run by .ci/run beside biome and tsc; prints every offender and
 * exits 1 when there is one.
 *
 *   npx tsx scripts/check-size.ts            # src/ and the root entry points
 *   npx tsx scripts/check-size.ts --max-function 60 --max-file 500 src/worker
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import ts from "typescript";

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "max-file": { type: "string", default: "500" },
    "max-function": { type: "string", default: "60" },
  },
});
const maxFile = Number(args["max-file"]);
const maxFunction = Number(args["max-function"]);
const roots =
  positionals.length > 0
    ? positionals
    : ["src", "mod.ts", "file.ts", "schedule.ts", "metrics.ts", "dashboard.ts", "cli.ts"];

function* sourceFiles(path: string): Generator<string> {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) yield* sourceFiles(join(path, name));
  } else if (path.endsWith(".ts")) {
    yield path;
  }
}

/** A readable name for a function-like node: `Class.method`, `name`, or `(anonymous)`. */
function nameOf(node: ts.Node): string {
  const own =
    (ts.isFunctionDeclaration(node) ||
      ts.isMethodDeclaration(node) ||
      ts.isGetAccessor(node) ||
      ts.isSetAccessor(node)) &&
    node.name !== undefined
      ? node.name.getText()
      : ts.isConstructorDeclaration(node)
        ? "constructor"
        : ts.isVariableDeclaration(node.parent) || ts.isPropertyDeclaration(node.parent)
          ? node.parent.name.getText()
          : ts.isPropertyAssignment(node.parent)
            ? node.parent.name.getText()
            : "(anonymous)";
  const owner = ts.isClassLike(node.parent) && node.parent.name ? `${node.parent.name.text}.` : "";
  return `${owner}${own}`;
}

const problems: string[] = [];
for (const root of roots) {
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, "utf8");
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (lines > maxFile) problems.push(`${file}: ${lines} lines (at most ${maxFile})`);
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
        const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
        const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
        const length = end - start + 1;
        if (length > maxFunction) {
          problems.push(
            `${relative(".", file)}:${start + 1}: ${nameOf(node)} is ${length} lines (at most ${maxFunction})`,
          );
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
}

if (problems.length > 0) {
  console.error(
    `${problems.length} place(s) too large to read in one sitting:\n  ${problems.join("\n  ")}`,
  );
  process.exit(1);
}
console.log(`check-size: every file <= ${maxFile} lines, every function <= ${maxFunction} lines`);
