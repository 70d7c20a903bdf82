/**
 * The one harness for tests that run `oq` as a real subprocess: a clean environment, a
 * run-to-completion call with a shared limit on concurrent subprocesses, and a long-running `oq`
 * (worker, monitor, scheduler) whose stderr can be awaited.
 *
 * A subprocess runs `cli.ts` from its sources (`node --import tsx cli.ts ...`) when its arguments
 * need that (see {@link fromSources}), else the same sources bundled into one file
 * (test/helpers/bundle.ts): tsx's start-up took 1-2 s of every run, the bundle's a quarter of a
 * second, and the CLI suites start hundreds.
 *
 * @module
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { bundled } from "./bundle.ts";

/** The repository root. */
export const ROOT = resolve(import.meta.dirname, "../..");
/** The CLI entry, run through tsx. */
export const CLI = join(ROOT, "cli.ts");
/** The tsx loader, as a URL for `node --import`. */
export const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/**
 * True when `oq args...` must run from the sources under tsx rather than from their bundle:
 * the demo, whose hints name the command oq was started with (`npx tsx
 * cli.ts`), and a worker or any command given a module, which may import oq's sources (a bundled
 * worker's classes, `PermanentError` among them, would be other classes than the module's).
 * `OQ_TEST_CLI_SOURCES=1` runs every command from the sources.
 */
export function fromSources(args: readonly string[]): boolean {
  if (process.env.OQ_TEST_CLI_SOURCES === "1") return true;
  return args.some((a) => a === "demo" || a === "worker" || /\.[cm]?[jt]sx?$/.test(a));
}

/** The node arguments that run `oq args...` (see {@link fromSources}). */
export function nodeArgs(args: readonly string[]): string[] {
  return fromSources(args) ? ["--import", TSX, CLI, ...args] : [bundled(CLI), ...args];
}

/** How an `oq` run ended: its exit code (`null` when killed, e.g. by the timeout) and output. */
export interface OqResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment without anything that would point the CLI at a real queue (`OQ_*`, `AWS_*`) or
 * decide its colours (`FORCE_COLOR`, `NO_COLOR`), plus `extra`. Tests that want colour off
 * whatever the CLI decides pass `{ NO_COLOR: "1" }`.
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(OQ_|AWS_)/.test(k) || k === "FORCE_COLOR" || k === "NO_COLOR")
      continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * At most this many {@link runOq} subprocesses at once. The machine has two cores, shared with
 * other test files: with more, each start-up (about a second alone) slowed past the 60 s timeout
 * and tests failed at random. The count is per test file (vitest loads this module once per file).
 */
export const MAX_OQ_PROCESSES = 3;
let running = 0;
const waiting: (() => void)[] = [];

/**
 * Timeout of a test that runs several rounds of `oq` one after another. Each round takes a second
 * or two alone but far longer on a loaded machine, where such tests passed the default 60 s.
 */
export const MANY_ROUNDS_TIMEOUT_MS = 180_000;

/** Options of {@link runOq}. */
export interface RunOqOptions {
  /** Working directory of the subprocess. */
  cwd: string;
  /** Its whole environment; {@link cleanEnv}() when not given. */
  env?: Record<string, string>;
  /** Kill it after this long, ms (counted from its start, not from the wait for a slot). */
  timeoutMs?: number;
}

/** Run `oq args...` to completion, waiting for a slot when {@link MAX_OQ_PROCESSES} are running. */
export async function runOq(args: readonly string[], options: RunOqOptions): Promise<OqResult> {
  if (running >= MAX_OQ_PROCESSES) await new Promise<void>((go) => waiting.push(go));
  running++;
  try {
    return await execOq(args, options);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function execOq(args: readonly string[], options: RunOqOptions): Promise<OqResult> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      nodeArgs(args),
      { cwd: options.cwd, env: options.env ?? cleanEnv(), timeout: options.timeoutMs ?? 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** A long-running `oq` started by {@link startOq}. */
export interface RunningOq {
  /** The subprocess (stop it with `child.kill("SIGTERM")` and await {@link exited}). */
  child: ChildProcess;
  /** Its exit code once it exited and its output was read (`null` when a signal ended it). */
  exited: Promise<number | null>;
  /** Everything it wrote to stderr so far. */
  readonly stderr: string;
  /** Everything it wrote to stdout so far. */
  readonly stdout: string;
  /** Resolves once stderr matches `re`; rejects after `ms` with the stderr so far. */
  waitFor(re: RegExp, ms?: number): Promise<void>;
}

/**
 * Start `oq args...` (a worker, monitor or scheduler) without waiting for it to end. It does not
 * take a {@link runOq} slot: it lives for the whole test, and the commands it waits for need them.
 */
export function startOq(
  args: readonly string[],
  options: { cwd: string; env: Record<string, string> },
): RunningOq {
  const child: ChildProcess = spawn(process.execPath, nodeArgs(args), {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
    for (const w of [...waiters]) {
      if (w.re.test(stderr)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  // "close", not "exit": by then stdout and stderr are read to the end.
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return {
    child,
    exited,
    get stderr() {
      return stderr;
    },
    get stdout() {
      return stdout;
    },
    waitFor(re: RegExp, ms = 30_000): Promise<void> {
      if (re.test(stderr)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${re} in oq's stderr:\n${stderr}`)),
          ms,
        );
        waiters.push({
          re,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}
