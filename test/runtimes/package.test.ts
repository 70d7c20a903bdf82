/**
 * The npm package as users get it, and Node as it runs it: `npm pack` (which builds dist/ first),
 * installed into an empty project from the tarball (dependencies from the registry or npm's
 * cache), then `npx oq --help`, a CLI submit/worker round trip on the file store, TypeScript
 * consumers of the types, the lifecycle scenario importing `oq` and `oq/file` on Node (file store,
 * and MinIO when it is there) and on Bun, `bunx oq`, and examples/node/app.mjs.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { FileStorage } from "../../src/runtime/file/storage.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import { removePrefix } from "../helpers/targets.ts";
import {
  BUN,
  expectScenario,
  FIXTURES,
  minio,
  minioEnv,
  ok,
  ROOT,
  run,
  runScenario,
  show,
  start,
  tempDir,
  uniquePrefix,
} from "./helpers.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const npx = process.platform === "win32" ? "npx.cmd" : "npx";

let project: { dir: string; remove: () => void };
let packDir: { dir: string; remove: () => void };
let packed: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };

beforeAll(async () => {
  packDir = tempDir("pack");
  project = tempDir("consumer");
  // `npm pack` runs prepack, which builds dist/ from the sources.
  const out = await ok(npm, ["pack", "--json", "--pack-destination", packDir.dir], {
    timeoutMs: 240_000,
  });
  packed = (JSON.parse(out.slice(out.indexOf("["))) as (typeof packed)[])[0]!;
  console.log(
    `npm package ${packed.filename}: ${(packed.size / 1024).toFixed(1)} kB packed, ${(packed.unpackedSize / 1024).toFixed(1)} kB unpacked, ${packed.files.length} files`,
  );
  writeFileSync(
    join(project.dir, "package.json"),
    `${JSON.stringify({ name: "oq-consumer", private: true, type: "module" }, null, 2)}\n`,
  );
  await ok(
    npm,
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      "--loglevel=error",
      join(packDir.dir, packed.filename),
    ],
    { cwd: project.dir, timeoutMs: 240_000 },
  );
  for (const f of ["scenario.mjs", "scenario-node.mjs", "tasks.mjs", "otel-global.mjs"]) {
    copyFileSync(join(FIXTURES, f), join(project.dir, f));
  }
  copyFileSync(join(ROOT, "examples/node/app.mjs"), join(project.dir, "app.mjs"));
}, 480_000);

afterAll(() => {
  project?.remove();
  packDir?.remove();
});

describe("the npm package", () => {
  it("ships the build and nothing else: ESM, declarations, the CLI with its shebang", () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths).toContain("dist/mod.js");
    expect(paths).toContain("dist/mod.d.ts");
    expect(paths).toContain("dist/file.js");
    expect(paths).toContain("dist/cli.js");
    expect(paths).toContain("README.md");
    expect(paths.filter((p) => !/^(dist\/|package\.json$|README\.md$|LICENSE$)/.test(p))).toEqual(
      [],
    );
    expect(paths.filter((p) => p.endsWith(".ts") && !p.endsWith(".d.ts"))).toEqual([]);
    const installed = join(project.dir, "node_modules/oq");
    const cli = readFileSync(join(installed, "dist/cli.js"), "utf8");
    expect(cli.startsWith("#!/usr/bin/env node\n")).toBe(true);
    // Sub-commands stay lazy imports, of chunks of the build (scripts/build.ts).
    expect(cli).toMatch(/import\("\.\/chunk-[A-Z0-9]+\.js"\)/);
    expect(cli).not.toMatch(/\.ts"\)/);
    const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
      version: string;
    };
    expect(pkg.version).toBe(
      (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version,
    );
  });

  it("ships no test-only code: every compiled file comes from an entry point or src/", () => {
    const dist = packed.files.map((f) => f.path).filter((p) => p.startsWith("dist/"));
    // The entries package.json exports (oq, oq/file, oq/schedule, ...), each a .js and a .d.ts.
    const { exports } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      exports: Record<string, string | { types: string; default: string }>;
    };
    const entries = Object.values(exports)
      .flatMap((target) => (typeof target === "string" ? [target] : [target.types, target.default]))
      .map((path) => path.replace(/^\.\//, ""))
      .filter((path) => path.startsWith("dist/"));
    expect(entries).toContain("dist/schedule.js");
    expect(
      dist.filter(
        (p) =>
          !entries.includes(p) && !/^dist\/(cli\.js|chunk-[A-Z0-9]+\.js|src\/.+\.d\.ts)$/.test(p),
      ),
    ).toEqual([]);
    // Every entry package.json names is in the package.
    expect(entries.filter((p) => !dist.includes(p))).toEqual([]);
    // Each compiled file has its source in src/ (no leftovers of a stale build), so nothing under
    // test/ or scripts/ can reach the package.
    const orphans = dist
      .filter((p) => p.startsWith("dist/src/"))
      .map((p) => p.slice("dist/".length).replace(/\.(d\.ts|js)$/, ".ts"))
      .filter((source) => !existsSync(join(ROOT, source)));
    expect(orphans).toEqual([]);
    // The fault injector (FaultyStorage) is test-only code.
    // It lives in test/support/faulty.ts; the constant keeps the check from switching itself off.
    const faultInjectorMoved = true;
    const installed = join(project.dir, "node_modules/oq");
    const bundled = (p: string) =>
      p.endsWith(".js") && readFileSync(join(installed, p), "utf8").includes("class FaultyStorage");
    if (faultInjectorMoved) expect(dist.filter((p) => /faulty/i.test(p) || bundled(p))).toEqual([]);
  });

  it("every compiled import names a .js file: none still names a .ts source (oq schedule run failed so)", () => {
    const installed = join(project.dir, "node_modules/oq");
    const broken: string[] = [];
    for (const path of packed.files.map((f) => f.path).filter((p) => p.endsWith(".js"))) {
      const code = readFileSync(join(installed, path), "utf8");
      // Static and dynamic relative imports alike: `from "./x.ts"`, `import("./x.ts")`.
      for (const m of code.matchAll(/(?:from\s*|import\s*\(\s*)["'](\.{1,2}\/[^"']+)["']/g))
        if (!m[1]!.endsWith(".js")) broken.push(`${path}: ${m[1]}`);
    }
    expect(broken).toEqual([]);
  });

  it("imports at run time only the packages it leaves unbundled (valibot and the OpenTelemetry API are bundled; scripts/build.ts says why)", () => {
    const installed = join(project.dir, "node_modules/oq");
    const packages = new Set<string>();
    for (const path of packed.files.map((f) => f.path).filter((p) => p.endsWith(".js"))) {
      const code = readFileSync(join(installed, path), "utf8");
      // esbuild writes each import statement on a line of its own; dynamic ones are `import("x")`.
      const statements = /^(?:import|export)\b[^;]*?["']([^"'./][^"']*)["'];$/gm;
      const dynamic = /\bimport\(\s*["']([^"'./][^"']*)["']\s*\)/g;
      for (const m of [...code.matchAll(statements), ...code.matchAll(dynamic)])
        if (!m[1]!.startsWith("node:")) packages.add(m[1]!.split("/")[0]!);
    }
    expect([...packages].sort()).toEqual(["citty", "croner"]);
  });

  it("runs on the Node under test: the `node` that npm, npx and the oq bin start is this one", async () => {
    // CI runs this file on each Node of .ci/node-versions with that Node first on PATH; a PATH
    // left pointing elsewhere would test the package on another Node than the one reported.
    const r = await run("node", ["--version"], { cwd: project.dir });
    expect(r.stdout.trim(), show(r)).toBe(process.version);
    console.log(`the npm package on Node ${process.version}`);
  });

  it("npx oq --help", async () => {
    const r = await run(npx, ["--no-install", "oq", "--help"], { cwd: project.dir });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/submit/);
    expect(r.stdout + r.stderr).toMatch(/worker/);
  });

  it("oq submit, oq worker and oq status round-trip on the file store", async () => {
    const env = { OQ_URL: "file:./queue" };
    const id = (
      await ok(npx, ["--no-install", "oq", "submit", "-t", "echo", "-i", '{"n":7}'], {
        cwd: project.dir,
        env,
      })
    ).trim();
    expect(id).toMatch(/^\S+$/);
    const refused = (
      await ok(npx, ["--no-install", "oq", "submit", "-t", "refuse", "--max-retries", "3"], {
        cwd: project.dir,
        env,
      })
    ).trim();
    const cache = (
      await ok(npx, ["--no-install", "oq", "submit", "-t", "compileCache"], {
        cwd: project.dir,
        env,
      })
    ).trim();
    // The installed bin itself rather than npx, so that SIGTERM reaches the worker (npx dies of it).
    const worker = start(
      join(project.dir, "node_modules/.bin/oq"),
      ["worker", "./tasks.mjs", "--grace", "2s"],
      { cwd: project.dir, env },
    );
    try {
      const queue = new Queue({ storage: new FileStorage({ root: join(project.dir, "queue") }) });
      for (let i = 0; i < 200 && (await queue.get(id)).status !== "completed"; i++)
        await sleep(100);
      expect((await queue.get(id)).status).toBe("completed");
      for (let i = 0; i < 200 && (await queue.get(refused)).status !== "failed"; i++)
        await sleep(100);
      // Failed for good at once: a PermanentError from the tasks module's `oq` is the CLI's own.
      expect(await queue.get(refused)).toMatchObject({ status: "failed", attempt: 1 });
      for (let i = 0; i < 200 && (await queue.get(cache)).status !== "completed"; i++)
        await sleep(100);
      // Node 22.1 and later cache compiled code when asked (Node 20 cannot): `oq` asks.
      const { output } = await queue.get(cache);
      const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
      const cached = major > 22 || (major === 22 && minor >= 1);
      expect(output).toMatchObject({ node: process.versions.node });
      expect((output as { dir: string | null }).dir === null).toBe(!cached);
      worker.child.kill("SIGTERM");
      const r = await worker.done;
      expect(r.code, show(r)).toBe(0);
    } finally {
      worker.child.kill("SIGKILL");
    }
    const status = JSON.parse(
      await ok(npx, ["--no-install", "oq", "status", id, "--json"], { cwd: project.dir, env }),
    ) as { status: string; output: unknown };
    expect(status).toMatchObject({ status: "completed", output: { echoed: { n: 7 }, attempt: 1 } });
  });

  it("type-checks a TypeScript consumer against the shipped declarations", async () => {
    writeFileSync(
      join(project.dir, "consumer.ts"),
      [
        'import { connect, R2Storage, type TaskRecord, VERSION, Worker } from "oq";',
        'import { FileStorage } from "oq/file";',
        'import { createDashboard } from "oq/dashboard";',
        'import { Metrics } from "oq/metrics";',
        'import { type ScheduleRecord, Scheduler } from "oq/schedule";',
        'const queue = await connect({ storage: new FileStorage({ root: "./q" }) });',
        "export const serve: (request: Request) => Promise<Response> = createDashboard(queue);",
        "export const metrics: Metrics = new Metrics();",
        'export const schedule: Promise<ScheduleRecord> = new Scheduler(queue).create({ id: "s", type: "email", cron: "@daily" });',
        'const task: TaskRecord = await queue.submit("email", { to: "a@example.com" });',
        'new Worker(queue).task("email", async (input: { to: string }, ctx) => ctx.attempt + input.to.length);',
        "export const v: string = VERSION;",
        "export const r2: typeof R2Storage = R2Storage;",
        "export const id: string = task.id;",
        "// @ts-expect-error: the types are real, not any",
        "export const wrong: number = task;",
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(project.dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2023", "DOM"],
          types: [],
          strict: true,
          noEmit: true,
        },
        files: ["consumer.ts"],
      }),
    );
    const r = await run(
      process.execPath,
      [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "."],
      {
        cwd: project.dir,
      },
    );
    expect(r.code, show(r)).toBe(0);
  });

  it("records into the meter provider an application registers through its own @opentelemetry/api (oq's build bundles its copy of the API)", async () => {
    const installed = join(project.dir, "node_modules/oq/dist");
    const js = packed.files.map((f) => f.path).filter((p) => p.endsWith(".js"));
    // Bundled: no compiled file imports the package at run time (scripts/build.ts says why).
    expect(
      js.filter((p) =>
        /from\s*["']@opentelemetry\/api["']/.test(readFileSync(join(installed, "..", p), "utf8")),
      ),
    ).toEqual([]);
    const out = await ok(process.execPath, ["otel-global.mjs"], { cwd: project.dir });
    const { created, added } = JSON.parse(out.trim().split("\n").pop()!) as {
      created: string[];
      added: [string, number][];
    };
    expect(created).toContain("oq.tasks.submitted");
    expect(added).toContainEqual(["oq.tasks.submitted", 1]);
  });

  it("imports `oq/schedule`, `oq/metrics` and `oq/dashboard` from the installed package, sharing `oq`'s classes", async () => {
    const script = [
      'import { MemoryStorage, Queue, ValidationError } from "oq";',
      'import { createDashboard } from "oq/dashboard";',
      'import { Metrics } from "oq/metrics";',
      'import { Scheduler } from "oq/schedule";',
      "const queue = new Queue({ storage: new MemoryStorage(), metrics: new Metrics() });",
      'await new Scheduler(queue).create({ id: "nightly", type: "report", cron: "0 3 * * *" });',
      "const listed = await new Scheduler(queue).list();",
      'const page = await createDashboard(queue)(new Request("http://localhost/schedules"));',
      'let refused = "";',
      'try { await new Scheduler(queue).create({ id: "bad", type: "report", cron: "not cron" }); }',
      "catch (error) { refused = error instanceof ValidationError ? error.code : String(error); }",
      'console.log(JSON.stringify({ ids: listed.map((s) => s.id), status: page.status, html: (await page.text()).includes("nightly"), refused }));',
    ].join("\n");
    writeFileSync(join(project.dir, "entries.mjs"), script);
    const out = await ok(process.execPath, ["entries.mjs"], { cwd: project.dir });
    expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({
      ids: ["nightly"],
      status: 200,
      html: true,
      refused: "VALIDATION",
    });
  });

  it("runs submit, claim, complete, retry and cancel on Node via `oq` and `oq/file`", async () => {
    const { dir, remove } = tempDir("node-file");
    try {
      const { report, exitLagMs } = await runScenario(process.execPath, ["scenario-node.mjs"], {
        cwd: project.dir,
        env: { OQ_RT_STORE: "file", OQ_RT_ROOT: dir },
      });
      expectScenario(report, /^node v(2\d|[3-9]\d)\./, "file");
      expect(exitLagMs, "exits on its own once the worker stopped").toBeLessThan(3000);
    } finally {
      remove();
    }
  });

  if (minio !== undefined) {
    it("runs submit, claim, complete, retry and cancel on Node against MinIO", async () => {
      const prefix = uniquePrefix("node");
      try {
        const { report, exitLagMs } = await runScenario(process.execPath, ["scenario-node.mjs"], {
          cwd: project.dir,
          env: { OQ_RT_STORE: "s3", ...minioEnv(prefix) },
        });
        expectScenario(report, /^node v/, "s3");
        expect(exitLagMs, "exits on its own once the worker stopped").toBeLessThan(3000);
      } finally {
        await removePrefix(
          new S3Storage({
            endpoint: minio!.endpoint,
            bucket: minio!.bucket,
            region: minio!.region,
            accessKeyId: minio!.accessKeyId,
            secretAccessKey: minio!.secretAccessKey,
          }),
          prefix,
        );
      }
    });
  }

  it("works on Bun from the installed package too: the scenario, bunx oq submit and bunx oq worker", async () => {
    const { dir, remove } = tempDir("bun-pkg");
    try {
      const { report } = await runScenario(BUN, ["scenario-node.mjs"], {
        cwd: project.dir,
        env: { OQ_RT_STORE: "file", OQ_RT_ROOT: dir },
      });
      expectScenario(report, /^bun 1\./, "file");
    } finally {
      remove();
    }
    const help = await run(join(ROOT, "node_modules/.bin/bunx"), ["oq", "--help"], {
      cwd: project.dir,
    });
    expect(help.code, show(help)).toBe(0);
    expect(help.stdout + help.stderr).toMatch(/submit/);

    // bunx oq submit, then bunx --bun oq worker (the CLI itself on Bun) until SIGTERM.
    const bunx = join(ROOT, "node_modules/.bin/bunx");
    const env = { OQ_URL: "file:./bunx-queue" };
    const id = (
      await ok(bunx, ["oq", "submit", "-t", "echo", "-i", '{"n":8}'], { cwd: project.dir, env })
    ).trim();
    const worker = start(bunx, ["--bun", "oq", "worker", "./tasks.mjs", "--grace", "1s"], {
      cwd: project.dir,
      env,
    });
    const queue = new Queue({
      storage: new FileStorage({ root: join(project.dir, "bunx-queue") }),
    });
    try {
      for (let i = 0; i < 300 && (await queue.get(id)).status !== "completed"; i++)
        await sleep(100);
      worker.child.kill("SIGTERM");
      const r = await worker.done;
      expect(r.code, show(r)).toBe(0);
    } finally {
      worker.child.kill("SIGKILL");
    }
    expect(await queue.get(id)).toMatchObject({
      status: "completed",
      output: { echoed: { n: 8 } },
    });
  });

  it("runs examples/node/app.mjs until SIGTERM", async () => {
    const { dir, remove } = tempDir("node-example");
    const app = start(process.execPath, ["app.mjs"], {
      cwd: project.dir,
      env: { OQ_URL: `file:${dir}` },
    });
    try {
      await app.waitFor(/completed send-email[\s\S]*completed send-email[\s\S]*/, 30_000);
      await app.waitFor(/failed send-email \S+: invalid address not-an-address/, 30_000);
      app.child.kill("SIGTERM");
      const r = await app.done;
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toMatch(/stopped: .*"completed":2.*"failed":1/);
    } finally {
      app.child.kill("SIGKILL");
      remove();
    }
  });
});
