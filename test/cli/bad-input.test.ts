/**
 * The CLI's answers to the bad input a probe found silently accepted, misread or echoed with its
 * secrets: each case exits non-zero with a message saying what to use, and no message repeats a
 * credential. Run as real subprocesses in a fresh empty directory on the file store.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ArgsDef } from "citty";
import { afterAll, describe, expect, it } from "vitest";
import { rejectRepeatedFlags } from "../../src/cli/args.ts";
import { commonArgs } from "../../src/cli/connection.ts";
import { describeError } from "../../src/cli/errors.ts";
import { summaryIntervalArg } from "../../src/cli/run-worker.ts";
import { cleanEnv, type OqResult, runOq } from "../helpers/cli.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Run `oq args...` in a fresh empty directory. */
function oq(args: string[], env: Record<string, string> = cleanEnv()): Promise<OqResult> {
  const cwd = mkdtempSync(join(tmpdir(), "oq-cli-bad-input-"));
  dirs.push(cwd);
  return runOq(args, { cwd, env });
}

/**
 * Run every case at once; each must exit with its code (2 for a wrong command line, 1 for a
 * refused configuration) and nothing on stdout, with stderr matching its pattern.
 */
async function expectRefused(cases: [string[], number, RegExp][]): Promise<OqResult[]> {
  const results = await Promise.all(cases.map(([args]) => oq(args)));
  results.forEach((r, i) => {
    const [args, code, message] = cases[i]!;
    expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code, stdout: "" });
    expect(r.stderr, args.join(" ")).toMatch(message);
    expect(r.stderr).not.toMatch(/Unexpected error/);
  });
  return results;
}

describe("credentials never reach the output", () => {
  it("a refused --url or --origin is echoed with its user info redacted", async () => {
    const results = await expectRefused([
      [["stats", "--url", "https://AKIAXXX:TOPSECRET@example.com/bucket"], 1, /Unknown queue URL/],
      [["stats", "--url", "s3://AKIAXXX:TOPSECRET@/p"], 1, /s3:\/\/\[redacted\]@\/p/],
      [["stats", "--url", "s3://AKIAXXX:TOPSECRET@bucket/p"], 1, /holds credentials/],
      [["stats", "--url", "s3://b/p?secretAccessKey=TOPSECRET"], 1, /Unknown parameter/],
      [
        ["dashboard", "--origin", "https://user:TOPSECRET@ops.example.com", "--url", "memory:"],
        2,
        /Invalid origin "https:\/\/\[redacted\]@ops.example.com"/,
      ],
    ]);
    for (const r of results) expect(r.stderr).not.toMatch(/AKIAXXX|TOPSECRET/);
  });
});

describe("a URL names the whole location", () => {
  it("refuses --bucket or --endpoint beside --url, and a file URL with a host", async () => {
    await expectRefused([
      [["stats", "--url", "memory:", "--bucket", "foo"], 2, /url and bucket .*drop one/],
      [["stats", "--url", "file:./x", "--bucket", "foo"], 2, /url and bucket/],
      [["stats", "--url", "file://./rel"], 1, /names a host.*file:\.\/dir/],
    ]);
  });
});

describe("dates", () => {
  it("--at refuses epoch seconds (which ran at once, in 1970) and says to multiply by 1000", async () => {
    await expectRefused([
      [["submit", "-t", "x", "--at", "1798761600"], 2, /looks like epoch seconds.*1798761600000/],
      [["submit", "-t", "x", "--at", "1"], 2, /--at "1": as epoch milliseconds it is before 2000/],
      [["submit", "-t", "x", "--expires-at", "1798761600"], 2, /--expires-at .*epoch seconds/],
    ]);
  });
});

describe("worker and monitor flags", () => {
  it("--summary-interval is 0 or at least 1s; a value that rounds to 0 is not taken as never", () => {
    expect(summaryIntervalArg("0")).toBe(0);
    expect(summaryIntervalArg("0s")).toBe(0);
    expect(summaryIntervalArg("1s")).toBe(1000);
    expect(summaryIntervalArg("5m")).toBe(300_000);
    for (const bad of ["1ms", "999ms", "0.0001", "0.5"]) {
      let message = "";
      try {
        summaryIntervalArg(bad);
      } catch (error) {
        message = describeError(error).message;
      }
      expect(message, bad).toBe(
        `Invalid --summary-interval "${bad}": use at least 1s, or 0 for no summary.`,
      );
    }
  });

  it("worker and monitor refuse a short --summary-interval and --metrics-host without a port", async () => {
    await expectRefused([
      [["monitor", "--url", "memory:", "--summary-interval", "1ms"], 2, /at least 1s/],
      [["monitor", "--url", "memory:", "--summary-interval", "0.0001"], 2, /at least 1s/],
      [
        ["monitor", "--url", "memory:", "--metrics-host", "0.0.0.0"],
        2,
        /--metrics-host needs --metrics-port/,
      ],
    ]);
  });
});

describe("oq limit", () => {
  it("reads limit numbers as plain digits, like every other numeric flag, and refuses a rate below one a day", async () => {
    await expectRefused([
      [["limit", "video", "--concurrency", "0x10"], 2, /Invalid --concurrency "0x10"/],
      [["limit", "video", "--concurrency", "1e3"], 2, /Invalid --concurrency "1e3"/],
      [["limit", "video", "--rate", "0x10"], 2, /Invalid --rate "0x10"/],
      [["limit", "video", "--rate", "5e-324"], 2, /Invalid --rate "5e-324": .*one start a day/],
      [["limit", "video", "--rate", "0.000001"], 2, /Invalid --rate "0.000001"/],
    ]);
  });
});

describe("repeated flags", () => {
  /** The usage message `rejectRepeatedFlags` gives for `line`, or "" when it accepts it. */
  const repeated = (line: string[]): string => {
    const def = {
      ...commonArgs,
      type: { type: "string", alias: ["t", "task-type"] as string[] },
      delay: { type: "string" },
      monitor: { type: "boolean", default: true },
      json: { type: "boolean" },
      ids: { type: "positional" },
    } as const satisfies ArgsDef;
    try {
      rejectRepeatedFlags(line, def);
    } catch (error) {
      return describeError(error).message;
    }
    return "";
  };

  it("refuses a flag given twice by any spelling, naming the spellings and never the values", () => {
    expect(repeated(["-t", "x", "-t", "y"])).toBe(
      "Option --type is given 2 times (-t): give it once.",
    );
    expect(repeated(["--type=x", "--task-type", "y", "-tz"])).toBe(
      "Option --type is given 3 times (--type, --task-type, -t): give it once.",
    );
    expect(repeated(["--delay", "5s", "--delay", "1h"])).toMatch(/--delay is given 2 times/);
    expect(repeated(["--monitor", "--no-monitor"])).toBe(
      "Option --monitor is given 2 times (--monitor, --no-monitor): give it once.",
    );
    expect(repeated(["--url", "s3://k:TOPSECRET@b", "x", "--url", "memory:"])).not.toMatch(
      /TOPSECRET|memory/,
    );
    // A value that looks like a flag is a value; words after -- are not flags.
    expect(repeated(["-t", "--delay", "--delay", "1h", "a", "b"])).toBe("");
    expect(repeated(["-t", "x", "--", "-t", "y"])).toBe("");
    expect(repeated(["--json", "-t", "x", "--delay", "1s", "id1", "id2"])).toBe("");
  });

  it("oq refuses a repeated flag, also a connection flag given before and after the command", async () => {
    await expectRefused([
      [["submit", "-t", "x", "-t", "y", "--url", "memory:"], 2, /--type is given 2 times/],
      [["submit", "-t", "x", "--delay", "5s", "--delay", "1h"], 2, /--delay is given 2 times/],
      [["worker", "./t.mjs", "--monitor", "--no-monitor"], 2, /--monitor is given 2 times/],
      [["--prefix", "a/", "stats", "--prefix", "b/"], 2, /--prefix is given 2 times/],
    ]);
  });
});

describe("cancel and resume", () => {
  it("cancel refuses a malformed id like status does: exit 2, stating the id rule", async () => {
    const [cancel, empty, status] = await expectRefused([
      [["cancel", "../../etc/passwd"], 2, /Invalid task id "..\/..\/etc\/passwd"/],
      [["cancel", ""], 2, /Invalid task id/],
      [["status", "../../etc/passwd"], 2, /Invalid task id/],
    ]);
    expect(cancel!.stderr.split("\n")[0]).toBe(status!.stderr.split("\n")[0]);
    expect(empty!.stderr).not.toMatch(/^invalid id/m);
  });

  it("resume says a type that was not paused was not paused", async () => {
    const r = await oq(["resume", "ghost"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/ghost was not paused; nothing to resume/);
    expect(r.stderr).not.toMatch(/is resumed/);
  });
});
