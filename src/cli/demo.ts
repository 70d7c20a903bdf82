/**
 * `oq demo`: the first command to try. Submits example tasks of three types (some fail once and
 * are retried, one fails for good, one is delayed), runs a worker in this process until all are
 * done, and prints what happened and how many storage requests it took.
 *
 * It works under its own `oq-demo/` prefix, so it never touches real tasks in the same store.
 *
 * @module
 */
import process from "node:process";
import { connect } from "../connect.ts";
import { formatDuration } from "../duration.ts";
import { type Logger, silentLogger } from "../logger.ts";
import type { SubmitOptions } from "../queue/types.ts";
import { countRequests, type RequestCounts } from "../storage/count.ts";
import { Worker, type WorkerEvent } from "../worker/worker.ts";
import { durationArg, intArg, oqCommand } from "./args.ts";
import { openStorage } from "./config.ts";
import demoTasks from "./demo-tasks.ts";
import { CliError, EXIT_FAILURE } from "./errors.ts";
import { cliCommand } from "./invocation.ts";
import { log, out, outJson } from "./output.ts";

/** What `oq demo --json` prints. */
export interface DemoSummary {
  /** Tasks submitted. */
  tasks: number;
  /** Tasks that ended completed. */
  completed: number;
  /** Tasks that ended failed (the dead-letter state). */
  failed: number;
  /** Failed attempts that were retried. */
  retried: number;
  /** Wall time from the first submit to the last outcome, in ms. */
  elapsedMs: number;
  /** Storage requests made, by kind (GET, PUT, LIST, ...), and their total. */
  requests: RequestCounts & { total: number };
  /** The store used (never credentials). */
  store: string;
  /** The key prefix the demo used. */
  prefix: string;
}

type DemoType = keyof typeof demoTasks;

/** The example workload: a mix of types, some flaky, one bad address, the last one delayed. */
export function demoWorkload(
  count: number,
  delaySeconds: number,
): { type: DemoType; input: unknown; options?: SubmitOptions }[] {
  const cycle: DemoType[] = [
    "resize-image",
    "send-email",
    "resize-image",
    "send-email",
    "generate-report",
  ];
  const months = ["2026-01", "2026-02", "2026-03", "2026-04"];
  let emails = 0;
  return Array.from({ length: count }, (_, i) => {
    const type = cycle[i % cycle.length]!;
    const delayed = i === count - 1 && count > 1;
    const options: SubmitOptions = delayed ? { delay: delaySeconds } : {};
    if (type === "send-email") {
      emails++;
      // The 2nd email has a malformed address (fails for good); every 3rd fails once.
      const to = emails === 2 ? "not-an-address" : `user${i}@example.com`;
      return { type, input: { to, flaky: emails % 3 === 1 }, options };
    }
    if (type === "generate-report")
      return { type, input: { month: months[i % months.length] }, options };
    return { type, input: { image: `photo-${i}.jpg`, width: 320 + 160 * (i % 4) }, options };
  });
}

/** Counts of the demo's own tasks by outcome, kept from worker events. */
interface DemoTally {
  done: number;
  completed: number;
  failed: number;
  retried: number;
  /** Resolves when every one of the demo's tasks reached a terminal state. */
  allDone: Promise<void>;
  /** The worker's event handler: counts the demo's own tasks. */
  onEvent: (event: WorkerEvent) => void;
}

/** A tally of the tasks `ours` from the worker's events. */
function tallyDemo(ours: ReadonlySet<string>): DemoTally {
  let finish: () => void = () => {};
  const tally: DemoTally = {
    done: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    allDone: new Promise<void>((resolve) => {
      finish = resolve;
    }),
    onEvent: (event) => {
      if (!ours.has(event.id)) return;
      if (event.kind === "retry-scheduled") tally.retried++;
      if (event.kind === "completed") tally.completed++;
      if (event.kind === "failed") tally.failed++;
      const terminal =
        event.kind === "completed" || event.kind === "failed" || event.kind === "cancelled";
      if (terminal) tally.done++;
      if (tally.done === ours.size) finish();
    },
  };
  return tally;
}

/**
 * `base` with a progress counter (`[3/20] `) before the worker's lines about the demo's own
 * tasks (`ours`, out of `count`, as `tally` counts them). The worker reports
 * an event before it logs it, so a task's last line already counts it.
 */
function progressLogger(
  base: Logger,
  ours: ReadonlySet<string>,
  count: number,
  tally: DemoTally,
): Logger {
  const width = String(count).length;
  const progress = (taskId: unknown): string => {
    if (typeof taskId !== "string" || !ours.has(taskId)) return "";
    return `[${String(tally.done).padStart(width)}/${count}] `;
  };
  const level =
    (name: "info" | "warn" | "error"): Logger["info"] =>
    (message, fields) =>
      base[name](`${progress(fields?.taskId)}${message}`, fields);
  return { info: level("info"), warn: level("warn"), error: level("error") };
}

/** Wait for `allDone`, the timeout or a SIGINT, whichever comes first. */
async function raceDemo(
  allDone: Promise<void>,
  timeoutMs: number,
): Promise<"done" | "timeout" | "signal"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  let interrupted: (() => void) | undefined;
  const signalled = new Promise<"signal">((resolve) => {
    interrupted = () => resolve("signal");
    process.once("SIGINT", interrupted);
  });
  const outcome = await Promise.race([allDone.then(() => "done" as const), timedOut, signalled]);
  clearTimeout(timer);
  if (interrupted !== undefined) process.off("SIGINT", interrupted);
  return outcome;
}

/** Print the demo's summary for people, with commands to look around a persistent store. */
function printDemoSummary(
  summary: DemoSummary,
  counts: Readonly<RequestCounts>,
  tasks: readonly { id: string; input: unknown }[],
  args: { url?: string | undefined; bucket?: string | undefined },
): void {
  const r = summary.requests;
  out(
    `${summary.tasks} tasks in ${formatDuration(summary.elapsedMs)}: ${summary.completed} completed, ${summary.failed} failed, ${summary.retried} retried.`,
  );
  const byKind = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`);
  out(`Storage requests: ${r.total} (${byKind.join(", ")}).`);
  if (!summary.store.startsWith("memory")) {
    // Name the same store in the hints, so they work as typed.
    const where = [
      args.url === undefined ? "" : ` --url ${args.url}`,
      args.bucket === undefined ? "" : ` --bucket ${args.bucket}`,
      ` --prefix ${summary.prefix}`,
    ].join("");
    const retriedTask = tasks.find((t) => (t.input as { flaky?: boolean }).flaky === true);
    // Spelled the way this CLI was started: from a checkout there is no `oq` on the PATH.
    const oq = cliCommand();
    out("");
    out("Look around:");
    out(`  ${oq} list${where}`);
    if (retriedTask !== undefined) out(`  ${oq} history ${retriedTask.id}${where}`);
    out(`  ${oq} stats${where}`);
  }
}

export default oqCommand({
  name: "demo",
  description:
    "Submit example tasks and run them with an in-process worker (try this first; uses ./.oq).",
  examples: ["oq demo", "oq demo --url memory: --count 50 --concurrency 8", "oq demo --json"],
  args: {
    count: {
      type: "string",
      alias: ["n"],
      description: "Tasks to submit",
      default: "20",
      valueHint: "n",
    },
    concurrency: {
      type: "string",
      alias: ["c"],
      description: "Tasks the worker runs at once",
      default: "4",
      valueHint: "n",
    },
    delay: {
      type: "string",
      description: "Delay of the last task (shows scheduling)",
      default: "3s",
      valueHint: "duration",
    },
    timeout: {
      type: "string",
      description: "Give up when the tasks are not all done by then",
      default: "2m",
      valueHint: "duration",
    },
    json: { type: "boolean", description: "Print the summary as JSON" },
  },
  async run(args) {
    const count = intArg(args.count, "count", 1, 10_000)!;
    const concurrency = intArg(args.concurrency, "concurrency", 1, 1000)!;
    const delayMs = durationArg(args.delay, "delay")!;
    const timeoutMs = durationArg(args.timeout, "timeout")!;

    const { options, storage, prefix: basePrefix } = openStorage(args);
    const counted = countRequests(storage);
    const prefix = `${basePrefix === undefined || basePrefix === "" ? "" : basePrefix.replace(/\/?$/, "/")}oq-demo/`;
    const ours = new Set<string>();
    const tally = tallyDemo(ours);
    const logger = progressLogger(options.logger ?? silentLogger, ours, count, tally);
    const queue = await connect({ ...options, storage: counted, prefix, logger });

    const workload = demoWorkload(count, delayMs / 1000);
    const types = [...new Set(workload.map((t) => t.type))];
    log().info(
      `Demo on ${storage.name} (prefix ${prefix}): ${count} tasks of ${types.length} types, a worker with concurrency ${concurrency}.`,
    );
    const started = Date.now();
    const tasks = await queue.submitMany(workload);
    for (const t of tasks) ours.add(t.id);
    log().success(
      `Submitted ${tasks.length} tasks${count > 1 && delayMs > 0 ? `; the last one is delayed by ${formatDuration(delayMs)}` : ""}.`,
    );

    const worker = new Worker(queue, {
      concurrency,
      // Short polls keep the demo snappy; a real worker backs off further when idle.
      minPollMs: 100,
      maxPollMs: 500,
      onEvent: tally.onEvent,
    });
    for (const type of types) worker.task<never, unknown>(type, demoTasks[type]);
    await worker.start();
    const outcome = await raceDemo(tally.allDone, timeoutMs);
    await worker.stop({ graceMs: 0 });
    const elapsedMs = Date.now() - started;
    if (outcome !== "done") {
      throw new CliError(
        outcome === "timeout"
          ? `The demo did not finish within ${formatDuration(timeoutMs)}: ${tally.done} of ${count} tasks done.`
          : `Interrupted: ${tally.done} of ${count} tasks done.`,
        EXIT_FAILURE,
      );
    }

    const summary: DemoSummary = {
      tasks: count,
      completed: tally.completed,
      failed: tally.failed,
      retried: tally.retried,
      elapsedMs,
      requests: { ...counted.counts, total: counted.total() },
      store: storage.name,
      prefix,
    };
    if (args.json) return outJson(summary);
    printDemoSummary(summary, counted.counts, tasks, args);
  },
});
