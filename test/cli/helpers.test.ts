/**
 * The CLI's pure helpers, in-process: flag checking and parsing, error mapping, table layout,
 * relative times, history lines, tasks-module loading and the demo workload. The commands
 * themselves are exercised as subprocesses in `cli.test.ts`.
 */
import { type ArgsDef, parseArgs } from "citty";
import { describe, expect, it } from "vitest";
import { checkArgs, intArg, jsonArg, subCommandIndex } from "../../src/cli/args.ts";
import { commonArgs } from "../../src/cli/connection.ts";
import { demoWorkload } from "../../src/cli/demo.ts";
import { CliError, describeError } from "../../src/cli/errors.ts";
import { historyLines } from "../../src/cli/history.ts";
import { relative, span, table } from "../../src/cli/output.ts";
import { handlersOf } from "../../src/cli/tasks-module.ts";
import {
  ConfigError,
  InvalidStateError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from "../../src/errors.ts";
import type { TaskRecord } from "../../src/task/record.ts";

const usage = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return describeError(error);
  }
  throw new Error("expected a usage error");
};

describe("flags", () => {
  const def = {
    id: { type: "positional", required: true },
    "max-retries": { type: "string" },
    type: { type: "string", alias: "t" },
    monitor: { type: "boolean", default: true },
    ...commonArgs,
  } as const satisfies ArgsDef;

  it("accepts defined flags in any spelling and rejects the rest", () => {
    const ok = parseArgs(
      ["x", "--max-retries", "3", "-t", "a", "--no-monitor", "--allow-no-versioning"],
      def,
    );
    expect(() => checkArgs(ok, def)).not.toThrow();
    expect(() => checkArgs(parseArgs(["x", "--maxRetries", "3"], def), def)).not.toThrow();
    expect(usage(() => checkArgs(parseArgs(["x", "--max-retry", "3"], def), def))).toEqual({
      message: "Unknown option --max-retry. Did you mean --max-retries?",
      exitCode: 2,
    });
    expect(usage(() => checkArgs(parseArgs(["x", "-q"], def), def)).message).toBe(
      "Unknown option -q.",
    );
    expect(usage(() => checkArgs(parseArgs(["x", "y"], def), def)).message).toBe(
      'Unexpected argument "y".',
    );
    expect(() => checkArgs(parseArgs(["x", "y"], def), def, true)).not.toThrow();
    expect(usage(() => checkArgs(parseArgs(["x", "--type"], def), def)).message).toBe(
      "Option --type needs a value.",
    );
  });

  it("finds the sub-command after connection flags and their values", () => {
    expect(subCommandIndex(["--url", "memory:", "demo", "--count", "3"], commonArgs)).toBe(2);
    expect(subCommandIndex(["--url=memory:", "--allow-no-versioning", "list"], commonArgs)).toBe(2);
    expect(subCommandIndex(["--", "list"], commonArgs)).toBe(-1);
    expect(subCommandIndex(["--url", "memory:"], commonArgs)).toBe(-1);
  });

  it("parses numbers and JSON as usage errors", () => {
    expect(intArg(undefined, "n", 1)).toBeUndefined();
    expect(intArg("12", "n", 1)).toBe(12);
    for (const bad of ["0", "1.5", "x", "-3", ""]) {
      expect(usage(() => intArg(bad, "n", 1, 100)).exitCode).toBe(2);
    }
    expect(usage(() => intArg("101", "n", 1, 100)).message).toBe(
      'Invalid --n "101": expected a whole number from 1 to 100.',
    );
    expect(jsonArg('{"a":[1,2]}', "input")).toEqual({ a: [1, 2] });
    expect(jsonArg(undefined, "input")).toBeNull();
    expect(usage(() => jsonArg("{a:1}", "input")).message).toMatch(/^Invalid JSON in --input: /);
  });
});

describe("describeError", () => {
  it("maps library error codes to messages and exit codes", () => {
    expect(describeError(new ValidationError("bad date"))).toEqual({
      message: "bad date",
      exitCode: 2,
    });
    expect(describeError(new ConfigError("no bucket"))).toEqual({
      message: "Configuration problem: no bucket",
      exitCode: 1,
    });
    expect(describeError(new NotFoundError("Task x not found.")).exitCode).toBe(1);
    expect(describeError(new InvalidStateError("it is pending")).exitCode).toBe(1);
    expect(describeError(new UnavailableError("refused"))).toEqual({
      message: "refused",
      exitCode: 1,
    });
    expect(describeError(new CliError("stop", 3))).toEqual({ message: "stop", exitCode: 3 });
    expect(describeError(new TypeError("oops"))).toEqual({
      message: "Unexpected error: oops",
      exitCode: 1,
    });
  });
});

describe("output", () => {
  it("aligns columns ignoring colour codes and trims trailing space", () => {
    const red = (s: string) => `\u001B[31m${s}\u001B[39m`;
    expect(
      table([
        ["ID", "STATUS", "AGE"],
        ["a1", red("failed"), "3s ago"],
        ["b22", "ok", ""],
      ]),
    ).toEqual(["ID   STATUS  AGE", `a1   ${red("failed")}  3s ago`, "b22  ok"]);
  });

  it("says how long ago or how soon", () => {
    const now = Date.UTC(2026, 0, 1);
    expect(relative(now - 400, now)).toBe("just now");
    expect(relative(now - 12_500, now)).toBe("12s ago");
    expect(relative(now + 3_723_000, now)).toBe("in 1h 2m");
    expect(span(59_999)).toBe("59s");
  });
});

describe("history lines", () => {
  const base = {
    oq: 1,
    id: "t1",
    type: "email",
    input: null,
    output: null,
    maxRetries: 3,
    backoff: { initialSeconds: 1, maxSeconds: 300, factor: 2 },
    timeoutSeconds: null,
    createdAt: "2026-01-01T00:00:00.000Z",
    availableAt: "2026-01-01T00:00:00.000Z",
    expiresAt: null,
    startedAt: null,
    finishedAt: null,
    cancel: null,
    idempotencyKey: null,
    marker: null,
  } as const;
  const version = (over: Partial<TaskRecord>, i: number) => ({
    versionId: `v${i}`,
    lastModified: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
    task: {
      ...base,
      status: "pending",
      attempt: 0,
      lease: null,
      lastError: null,
      event: "submitted",
      updatedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      ...over,
    } as TaskRecord,
  });
  const lease = { token: "k", workerId: "w-1", expiresAt: "2026-01-01T00:01:00.000Z" };
  const boom = {
    name: "Error",
    message: "boom",
    attempt: 1,
    at: "2026-01-01T00:00:02.000Z",
    permanent: false,
  };

  it("names the worker of an outcome and shows each error once", () => {
    const lines = historyLines([
      version({}, 0),
      version({ status: "running", attempt: 1, lease, event: "claimed" }, 1),
      version({ attempt: 1, lastError: boom, event: "retry-scheduled" }, 2),
      version({ status: "running", attempt: 2, lease, lastError: boom, event: "claimed" }, 3),
      version({ status: "completed", attempt: 2, lastError: boom, event: "completed" }, 4),
      { versionId: "v5", lastModified: new Date(Date.UTC(2026, 0, 2)), task: null },
    ]);
    expect(lines.map((l) => [l.event, l.worker, l.error])).toEqual([
      ["submitted", null, null],
      ["claimed", "w-1", null],
      ["retry-scheduled", "w-1", "Error: boom"],
      ["claimed", "w-1", null],
      ["completed", "w-1", null],
      ["deleted", null, null],
    ]);
    expect(lines[5]).toMatchObject({ at: "2026-01-02T00:00:00.000Z", status: null, task: null });
  });
});

describe("tasks modules", () => {
  const fn = () => null;

  it("takes handlers from a default object and from named functions", () => {
    const handlers = handlersOf(
      {
        default: { "send.email": fn, report: { handler: fn, leaseSeconds: 120, other: 1 } },
        resize: fn,
        VERSION: "1.0",
        config: { retries: 3 },
      },
      "tasks.ts",
    );
    expect([...handlers.keys()].sort()).toEqual(["report", "resize", "send.email"]);
    expect(handlers.get("report")!.options).toEqual({ leaseSeconds: 120 });
  });

  it("takes a per-type concurrency from a handler entry (oq worker's way to set it)", () => {
    const handlers = handlersOf({ default: { video: { handler: fn, concurrency: 2 } } }, "t.ts");
    expect(handlers.get("video")!.options).toEqual({ concurrency: 2 });
  });

  it("rejects a default export that is not a map of handlers, and duplicates", () => {
    expect(() => handlersOf({ default: fn }, "t.ts")).toThrow(/default export is a function/);
    expect(() => handlersOf({ default: { a: 1 } }, "t.ts")).toThrow(/entry "a" is not a handler/);
    expect(() => handlersOf({ default: { a: fn }, a: fn }, "t.ts")).toThrow(/both a named/);
  });
});

describe("demo workload", () => {
  it("mixes three types, one bad address, flaky emails and a delayed last task", () => {
    const tasks = demoWorkload(20, 3);
    expect(new Set(tasks.map((t) => t.type))).toEqual(
      new Set(["resize-image", "send-email", "generate-report"]),
    );
    const emails = tasks.filter((t) => t.type === "send-email");
    expect(emails.filter((t) => (t.input as { to: string }).to.includes("@"))).toHaveLength(
      emails.length - 1,
    );
    expect(emails.filter((t) => (t.input as { flaky: boolean }).flaky).length).toBeGreaterThan(1);
    expect(tasks.at(-1)!.options).toEqual({ delay: 3 });
    expect(tasks.slice(0, -1).every((t) => t.options?.delay === undefined)).toBe(true);
  });
});
