/**
 * The README and the examples as a newcomer meets them (issue 13, item 10): every ```ts block of
 * README.md, written to its own file exactly as printed, type-checks under `strict` in an ESM
 * project (`"type": "module"`, `module: nodenext`), with `oq` and `oq/file` resolved to this
 * checkout's sources; and examples/node/app.mjs runs on the file store the same way (tsx applies
 * the same path mapping).
 */
import { readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, show, start, tempDir } from "./runtimes/helpers.ts";

/**
 * What a README block without imports may use, on one line so that line numbers stay those of
 * the block: oq's exports, a `queue`, and stand-ins for the reader's own functions.
 */
const FRAGMENT_PRELUDE = `${[
  'import { connect, defineTask, Queue, Worker } from "oq";',
  "declare const queue: Queue;",
  ...["encode", "render", "makeThumbnail", "sendEmail"].map(
    (name) => `declare function ${name}(...args: unknown[]): Promise<unknown>;`,
  ),
  "declare const base64Of5MB: string;",
  "export {};",
].join(" ")} `;

/** A fenced ```ts block of a Markdown file: its text and the line its fence is on. */
interface Snippet {
  line: number;
  code: string;
}

/** Every ```ts block of `markdown`, indented ones (inside a list) included, dedented. */
function tsBlocks(markdown: string): Snippet[] {
  const lines = markdown.split("\n");
  const blocks: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^( *)```ts\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !/^ *```\s*$/.test(lines[j]!)) body.push(lines[j++]!.slice(indent));
    blocks.push({ line: i + 1, code: `${body.join("\n")}\n` });
    i = j;
  }
  return blocks;
}

let project: { dir: string; remove: () => void };

beforeAll(() => {
  project = tempDir("readme");
  const { dir } = project;
  // Third-party imports (arktype, zod, @types/node) resolve as in a project that installed them.
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  writeFileSync(join(dir, "package.json"), '{ "name": "readme", "type": "module" }\n');
  const tsconfig = {
    compilerOptions: {
      strict: true,
      target: "es2022",
      module: "nodenext",
      moduleResolution: "nodenext",
      types: ["node"],
      noEmit: true,
      skipLibCheck: true,
      // Only for the checkout's sources, which import each other by `.ts` paths.
      allowImportingTsExtensions: true,
      paths: { oq: [join(ROOT, "mod.ts")], "oq/file": [join(ROOT, "file.ts")] },
    },
  };
  writeFileSync(join(dir, "tsconfig.json"), `${JSON.stringify(tsconfig, null, 2)}\n`);
});

afterAll(() => project?.remove());

describe("the README's TypeScript blocks", () => {
  const snippets = tsBlocks(readFileSync(join(ROOT, "README.md"), "utf8"));

  it("finds them, the library example among them", () => {
    expect(snippets.length).toBeGreaterThanOrEqual(2);
    expect(snippets.some((s) => s.code.includes("defineTask("))).toBe(true);
  });

  it("type-check as written under strict, in an ES module project", () => {
    const files = snippets.map((s) => {
      const file = join(project.dir, `readme-line-${s.line}.ts`);
      // A block without imports continues the README's story: it gets the names the story set
      // up (`queue`) and the reader's own functions, as placeholders, on its first line.
      writeFileSync(file, /^import /m.test(s.code) ? s.code : `${FRAGMENT_PRELUDE}${s.code}`);
      return file;
    });
    const parsed = ts.getParsedCommandLineOfConfigFile(
      join(project.dir, "tsconfig.json"),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => {
          throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
        },
      },
    );
    if (parsed === undefined) throw new Error("tsconfig.json did not parse");
    expect(parsed.options.strict).toBe(true);
    const program = ts.createProgram(files, parsed.options);
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
      const where =
        d.file === undefined
          ? ""
          : `${d.file.fileName.replace(`${project.dir}/`, "README.md block at ")}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: `;
      return `${where}TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    });
    expect(diagnostics).toEqual([]);
  }, 120_000);
});

describe("examples/node/app.mjs", () => {
  it("runs as written on the file store until SIGTERM", async () => {
    const queueDir = tempDir("node-app-queue");
    writeFileSync(
      join(project.dir, "app.mjs"),
      readFileSync(join(ROOT, "examples/node/app.mjs"), "utf8"),
    );
    const app = start(process.execPath, ["--import", "tsx", "app.mjs"], {
      cwd: project.dir,
      env: { OQ_URL: `file:${queueDir.dir}` },
    });
    try {
      await app.waitFor(/completed send-email[\s\S]*completed send-email/, 60_000);
      await app.waitFor(/failed send-email \S+: invalid address not-an-address/, 30_000);
      app.child.kill("SIGTERM");
      const r = await app.done;
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toMatch(/worker \S+ on file:/);
      expect(r.stdout).toMatch(/stopped: .*"completed":2.*"failed":1/);
    } finally {
      app.child.kill("SIGKILL");
      queueDir.remove();
    }
  }, 90_000);
});
