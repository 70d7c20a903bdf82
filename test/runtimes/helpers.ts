/**
 * Shared by the runtime tests: where the runtimes' binaries are (installed from npm as
 * devDependencies), running a subprocess with a deadline, the MinIO settings, and bundling a
 * Worker script the way wrangler does (esbuild) for miniflare.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { WORKER_BUILD_OPTIONS } from "../../scripts/bench-bundle.ts";

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** This directory's fixtures. */
export const FIXTURES = join(ROOT, "test/runtimes/fixtures");

const bin = (name: string) => join(ROOT, "node_modules/.bin", name);
/** The Bun binary from the `bun` devDependency. */
export const BUN = bin("bun");
/** The Deno binary from the `deno` devDependency. */
export const DENO = bin("deno");

/** The version a devDependency of package.json pins (bun, deno, miniflare). */
export function devDependency(name: string): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    devDependencies: Record<string, string>;
  };
  return pkg.devDependencies[name]!;
}

/** MinIO settings (from `scripts/minio.sh start`), or undefined when the S3 suite is off. */
export const minio = (() => {
  const e = process.env;
  if (
    !e.OQ_TEST_S3_ENDPOINT ||
    !e.OQ_TEST_S3_BUCKET ||
    !e.OQ_TEST_S3_ACCESS_KEY_ID ||
    !e.OQ_TEST_S3_SECRET_ACCESS_KEY
  ) {
    return undefined;
  }
  return {
    endpoint: e.OQ_TEST_S3_ENDPOINT,
    bucket: e.OQ_TEST_S3_BUCKET,
    region: e.OQ_TEST_S3_REGION ?? "us-east-1",
    accessKeyId: e.OQ_TEST_S3_ACCESS_KEY_ID,
    secretAccessKey: e.OQ_TEST_S3_SECRET_ACCESS_KEY,
  };
})();

/** A fresh queue prefix inside the test bucket. */
export function uniquePrefix(label: string): string {
  return `rt-${label}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}/`;
}

/** The `OQ_*` / `AWS_*` variables that point `connect({ env })` at MinIO under `prefix`. */
export function minioEnv(prefix: string): Record<string, string> {
  const m = minio!;
  return {
    OQ_BUCKET: m.bucket,
    OQ_ENDPOINT: m.endpoint,
    OQ_REGION: m.region,
    OQ_PREFIX: prefix,
    AWS_ACCESS_KEY_ID: m.accessKeyId,
    AWS_SECRET_ACCESS_KEY: m.secretAccessKey,
  };
}

/** A temporary directory, removed by the returned function. */
export function tempDir(label: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `oq-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What a finished subprocess did. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Options of {@link run} and {@link start}. */
export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Kill the process (SIGKILL) after this long. Default 60 s. */
  timeoutMs?: number;
  input?: string;
}

/** The environment a child gets: ours, minus what would change its behaviour, plus `extra`. */
function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", FORCE_COLOR: undefined };
  // Vitest's own variables would make a child Node think it runs under vitest.
  for (const k of Object.keys(env)) if (k.startsWith("VITEST")) delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** A running subprocess with its output so far. */
export interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when it exits (never rejects). */
  done: Promise<RunResult>;
  /** Resolves with the first stdout line matching `re` (rejects when the process exits first). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

/** Start a subprocess; see {@link run} to wait for it. */
export function start(command: string, args: string[], options: RunOptions = {}): Started {
  const began = Date.now();
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
    for (const l of listeners) l();
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  else child.stdin!.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  const done = new Promise<RunResult>((resolveDone) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      for (const l of listeners) l();
      resolveDone({ code, signal, stdout, stderr, ms: Date.now() - began });
    };
    child.on("exit", (code, signal) => {
      // Let the pipes drain before reporting.
      setTimeout(() => finish(code, signal), 20);
    });
    child.on("error", (error) => {
      stderr += String(error);
      finish(null, null);
    });
  });
  let exited = false;
  void done.then(() => {
    exited = true;
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolveWait, reject) => {
        const check = () => {
          const m = re.exec(stdout);
          if (m !== null) {
            cleanup();
            resolveWait(m);
          } else if (exited) {
            cleanup();
            reject(
              new Error(`exited before printing ${re}; stdout:\n${stdout}\nstderr:\n${stderr}`),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`no ${re} within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        void done.then(check);
        check();
      });
    },
  };
}

/** Run a subprocess to the end. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return start(command, args, options).done;
}

/** Describe a result for an assertion message. */
export function show(r: RunResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ""} after ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Run and require exit 0; returns stdout. */
export async function ok(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<string> {
  const r = await run(command, args, options);
  if (r.code !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${show(r)}`);
  return r.stdout;
}

/** The last line of stdout parsed as JSON (the fixtures print their report last). */
export function lastJson<T = unknown>(stdout: string): T {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** True when the runtime binaries were installed (npm ci ran their postinstall). */
export function haveBinary(path: string): boolean {
  return existsSync(path);
}

/**
 * Bundle a Worker entry like wrangler does: esbuild, ESM, the `workerd`/`worker`/`browser`
 * export conditions, and no Node built-ins available (a `node:` import fails the build).
 */
export async function bundleWorker(entry: string, tsconfig?: string): Promise<string> {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    ...WORKER_BUILD_OPTIONS,
    entryPoints: [entry],
    write: false,
    logLevel: "silent",
    ...(tsconfig === undefined ? {} : { tsconfig }),
  });
  return result.outputFiles[0]!.text;
}

/** The compatibility date the Workers tests run with (the example's wrangler.toml's). */
export const COMPATIBILITY_DATE = "2025-07-01";

/** What fixtures/scenario.mjs prints. */
export interface ScenarioReport {
  runtime: string;
  store: string;
  storage: string;
  submitted: string;
  echo: { status: string; attempt: number; output: unknown };
  flaky: { status: string; attempt: number; output: unknown; error: string | null };
  delayed: { status: string };
  slow: { claimedStatus: string; claimedAttempt: number; afterCancel: string; status: string };
  stats: Record<string, number>;
  events: string[];
}

/** The outcomes every runtime must produce for the lifecycle scenario. */
export function expectScenario(report: ScenarioReport, runtime: RegExp, store: string): void {
  expect(report.runtime).toMatch(runtime);
  expect(report).toMatchObject({
    store,
    submitted: "pending",
    echo: {
      status: "completed",
      attempt: 1,
      output: { echoed: { hello: report.runtime }, attempt: 1 },
    },
    flaky: { status: "completed", attempt: 2, output: { attempt: 2 }, error: "transient failure" },
    delayed: { status: "cancelled" },
    slow: {
      claimedStatus: "running",
      claimedAttempt: 1,
      afterCancel: "running",
      status: "cancelled",
    },
    stats: { started: 4, completed: 2, retried: 1, cancelled: 1, failed: 0 },
  });
}

/**
 * Run a scenario fixture: its report, and how long the process took to exit after printing it.
 * The fixtures do not call exit: once the worker has stopped nothing may keep the process alive
 * (a leftover timer or socket would show up as a lag of seconds).
 */
export async function runScenario(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<{ report: ScenarioReport; exitLagMs: number }> {
  const child = start(command, args, options);
  let printedAt = Number.NaN;
  try {
    await child.waitFor(/^\{"runtime".*\}$/m, options.timeoutMs ?? 60_000);
    printedAt = Date.now();
  } catch {
    // Reported below with the full output.
  }
  const result = await child.done;
  if (result.code !== 0 || Number.isNaN(printedAt)) {
    throw new Error(`${command} ${args.join(" ")} failed: ${show(result)}`);
  }
  return { report: lastJson<ScenarioReport>(result.stdout), exitLagMs: Date.now() - printedAt };
}
