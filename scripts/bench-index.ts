/**
 * Bench section `index`: what finished tasks leave in the ready index of a versioned bucket, and
 * what a worker's LIST of it costs afterwards (src/queue/marker-deletes.ts). scripts/bench.ts
 * runs it and scripts/bench-report.ts renders it with {@link renderIndex}.
 *
 * The same drain twice, each on a fresh prefix: `tasks` no-op tasks submitted, then drained by 4
 * workers. Once with markers deleted by version, as oq does, and once on the same storage with
 * its version deletes hidden, so markers are deleted plainly: as oq did before, and as it still
 * does where the storage refuses version deletes. Then the partition is listed `lists` times, one
 * after another, as a worker's poll lists it (a LIST of up to 1,000 keys), and every version and
 * delete marker left under `ready/` is counted.
 *
 * @module
 */
import { Queue } from "../src/queue/queue.ts";
import type { Storage } from "../src/storage/storage.ts";
import { versionsUnder } from "../src/storage/versions.ts";
import { Worker } from "../src/worker/worker.ts";

/** How markers were deleted in one run. */
export type MarkerDeleteMode = "by version" | "plain";

/** One drain and the listings after it. */
export interface IndexRun {
  mode: MarkerDeleteMode;
  tasks: number;
  /** Drain throughput, tasks per second. */
  tasksPerSecond: number;
  /** Delete markers left under `ready/` once every task finished. */
  deleteMarkers: number;
  /** Other versions left under `ready/` (live markers and noncurrent versions). */
  versions: number;
  /** Keys a LIST of the partition returned. */
  keysListed: number;
  /** A LIST of the partition, median and max of `lists`, ms. */
  listMedianMs: number;
  listMaxMs: number;
}

/** The section's result. */
export interface IndexResult {
  lists: number;
  runs: IndexRun[];
}

/** `inner` without `deleteVersion` and `deleteVersions`: markers get plain deletes. */
function withoutVersionDeletes(inner: Storage): Storage {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === "deleteVersion" || prop === "deleteVersions") return undefined;
      // The target as receiver: its getters read private fields a proxy does not have.
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function drainThenList(
  storage: Storage,
  prefix: string,
  mode: MarkerDeleteMode,
  tasks: number,
  lists: number,
): Promise<IndexRun> {
  const queue = new Queue({ storage, prefix });
  await queue.submitMany(
    Array.from({ length: tasks }, (_, i) => ({ type: "noop", input: i })),
    { concurrency: 32 },
  );
  const workers = Array.from({ length: 4 }, () =>
    new Worker(queue, { concurrency: 8, heartbeatSeconds: 60, skipDoctor: true }).task(
      "noop",
      () => null,
    ),
  );
  const started = performance.now();
  await Promise.all(workers.map((w) => w.start()));
  while (workers.reduce((n, w) => n + w.stats.completed, 0) < tasks) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(workers.map((w) => w.stop()));

  const partition = `${prefix}ready/noop/0/`;
  const times: number[] = [];
  let keysListed = 0;
  for (let i = 0; i < lists; i++) {
    const t0 = performance.now();
    keysListed = (await storage.list({ prefix: partition })).objects.length;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  let deleteMarkers = 0;
  let versions = 0;
  for await (const v of versionsUnder(storage, `${prefix}ready/`)) {
    if (v.isDeleteMarker) deleteMarkers++;
    else versions++;
  }
  const round1 = (n: number) => Math.round(n * 10) / 10;
  return {
    mode,
    tasks,
    tasksPerSecond: round1(tasks / seconds),
    deleteMarkers,
    versions,
    keysListed,
    listMedianMs: round1(times[Math.floor(times.length / 2)]!),
    listMaxMs: round1(times[times.length - 1]!),
  };
}

/** Run the section: the plain drain first, then the one by version, each on its own prefix. */
export async function indexAfterDrain(
  storage: () => Storage,
  newPrefix: (name: string) => string,
  options: { tasks: number; lists: number },
): Promise<IndexResult> {
  const plain = await drainThenList(
    withoutVersionDeletes(storage()),
    newPrefix("index-plain"),
    "plain",
    options.tasks,
    options.lists,
  );
  const byVersion = await drainThenList(
    storage(),
    newPrefix("index-by-version"),
    "by version",
    options.tasks,
    options.lists,
  );
  return { lists: options.lists, runs: [byVersion, plain] };
}

/** The section in docs/benchmarks.md, when the run measured it. */
export function renderIndex(
  result: IndexResult | undefined,
  previous: IndexResult | undefined,
  was: (text: string, previous: string | undefined) => string,
): string[] {
  if (result === undefined) return [];
  const tasks = result.runs[0]?.tasks ?? 0;
  const row = (r: IndexRun) => {
    const p = previous?.runs.find((x) => x.mode === r.mode);
    const ms = (n: number | undefined) => (n === undefined ? undefined : `${n} ms`);
    return `| ${r.mode} | ${was(String(r.deleteMarkers), p === undefined ? undefined : String(p.deleteMarkers))} | ${r.keysListed} | ${was(`${r.listMedianMs} ms`, ms(p?.listMedianMs))} | ${was(`${r.listMaxMs} ms`, ms(p?.listMaxMs))} | ${was(String(r.tasksPerSecond), p === undefined ? undefined : String(p.tasksPerSecond))} |`;
  };
  const byVersion = result.runs.find((r) => r.mode === "by version");
  const plain = result.runs.find((r) => r.mode === "plain");
  return [
    "## The ready index after finished tasks (versioned bucket)",
    "",
    `${tasks.toLocaleString("en-US")} no-op tasks drained by 4 workers (8 slots each) on a fresh prefix of the versioned bucket, then the partition listed ${result.lists} times one after another, as a worker's poll lists it. "by version": markers deleted by the version id their task names, as oq does; "plain": the same storage with its version deletes hidden, as oq did before and still does where the storage refuses version deletes (no \`s3:DeleteObjectVersion\`). Every task finished, so each LIST returns no key: what it costs is the delete markers it walks past.`,
    "",
    "| marker deletes | delete markers left under `ready/` | keys listed | LIST of the partition, median | max | drain, tasks/s |",
    "|---|---:|---:|---:|---:|---:|",
    ...result.runs.map(row),
    "",
    byVersion !== undefined && plain !== undefined && byVersion.listMedianMs > 0
      ? `A LIST of a partition with every task finished took ${plain.listMedianMs} ms after plain deletes and ${byVersion.listMedianMs} ms after deletes by version (${Math.round((plain.listMedianMs / byVersion.listMedianMs) * 10) / 10}x). Delete markers stay until a lifecycle rule expires them (a day or more: "Lifecycle rules" in docs/protocol.md), so with plain deletes every poll of a busy queue, idle ones included, pays for each task finished in that time.`
      : "",
    "",
  ];
}
