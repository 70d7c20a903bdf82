#!/usr/bin/env node
/**
 * The `oq` command line. Each sub-command lives in its own module under `src/cli/` and is
 * imported only when it runs, so `oq status` does not pay for loading the worker or the demo.
 *
 * This is the only module that ends the process; commands report failure by throwing.
 *
 * @module
 */
import * as nodeModule from "node:module";
import process from "node:process";
import { defineCommand, parseArgs } from "citty";
import { checkArgs, subCommandIndex } from "./src/cli/args.ts";
import { commonArgs, setRootFlags } from "./src/cli/connection.ts";
import { runCli } from "./src/cli/run.ts";
import { VERSION } from "./src/version.ts";

// Node 22.1+ can keep the compiled code of the modules a command loads (on disk, under the
// system's temporary directory; NODE_DISABLE_COMPILE_CACHE=1 turns it off): the lazily loaded
// worker, for one, then starts without compiling it again. Node 20, Bun and Deno go without.
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const main = defineCommand({
  meta: {
    name: "oq",
    version: VERSION,
    description: "A background task queue whose only dependency is S3-compatible object storage.",
  },
  args: commonArgs,
  setup({ rawArgs }) {
    // Connection flags may come before the command name (`oq --url memory: demo`); citty hands
    // the sub-command only what follows its name, so keep them here for it.
    const index = subCommandIndex(rawArgs, commonArgs);
    const before = parseArgs<typeof commonArgs>(
      index < 0 ? rawArgs : rawArgs.slice(0, index),
      commonArgs,
    );
    checkArgs(before, commonArgs);
    setRootFlags(before);
  },
  subCommands: {
    demo: () => import("./src/cli/demo.ts").then((m) => m.default),
    submit: () => import("./src/cli/submit.ts").then((m) => m.default),
    status: () => import("./src/cli/status.ts").then((m) => m.default),
    list: () => import("./src/cli/list.ts").then((m) => m.default),
    history: () => import("./src/cli/history.ts").then((m) => m.default),
    cancel: () => import("./src/cli/cancel.ts").then((m) => m.default),
    replay: () => import("./src/cli/replay.ts").then((m) => m.default),
    worker: () => import("./src/cli/worker.ts").then((m) => m.default),
    monitor: () => import("./src/cli/monitor.ts").then((m) => m.default),
    workers: () => import("./src/cli/workers.ts").then((m) => m.default),
    schedule: () => import("./src/cli/schedule.ts").then((m) => m.default),
    doctor: () => import("./src/cli/doctor.ts").then((m) => m.default),
    shards: () => import("./src/cli/shards.ts").then((m) => m.default),
    pause: () => import("./src/cli/pause.ts").then((m) => m.default),
    resume: () => import("./src/cli/resume.ts").then((m) => m.default),
    limit: () => import("./src/cli/limit.ts").then((m) => m.default),
    repair: () => import("./src/cli/repair.ts").then((m) => m.default),
    stats: () => import("./src/cli/stats.ts").then((m) => m.default),
    dashboard: () => import("./src/cli/dashboard.ts").then((m) => m.default),
    retention: () => import("./src/cli/retention.ts").then((m) => m.default),
    prune: () => import("./src/cli/prune.ts").then((m) => m.default),

    lifecycle: () => import("./src/cli/lifecycle.ts").then((m) => m.default),
  },
});

// `oq list | head` closes the pipe early: that is the reader's choice, not a failure.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

const code = await runCli(main, process.argv.slice(2));
// Piped stdout is asynchronous on some platforms: let the output drain before exiting.
await Promise.all(
  [process.stdout, process.stderr].map((s) => new Promise((done) => s.write("", done))),
);
process.exit(code);
