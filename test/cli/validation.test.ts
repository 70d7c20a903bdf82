/**
 * The CLI's answers to bad input (exit 2 with a message saying what to use) and to a corrupt
 * task object in a bulk cancel (reported per task, the rest done, exit 1), run as a real
 * subprocess on the file store and, when `OQ_TEST_S3_*` is set, on MinIO.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, type OqResult, runOq } from "../helpers/cli.ts";
import { fileTarget, s3Target, type Target } from "../helpers/targets.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Run `oq args...` in a fresh empty directory. */
function oq(args: string[], env: Record<string, string>): Promise<OqResult> {
  const cwd = mkdtempSync(join(tmpdir(), "oq-cli-validation-"));
  dirs.push(cwd);
  return runOq(args, { cwd, env });
}

describe("oq rejects bad values with exit 2", () => {
  it("huge delays and impossible dates exit 2 with a ValidationError (defect 18); list --type ../../etc exits 2 like cancel (defect 19)", async () => {
    const env = cleanEnv();
    const cases: [string[], RegExp][] = [
      [["submit", "-t", "email", "--delay", "99999999999999999999w"], /--delay .*100 years/],
      [["submit", "-t", "email", "--ttl", "1e30"], /--ttl/],
      [["submit", "-t", "email", "--at", "2026-02-30T00:00:00Z"], /--at .*no such date/],
      [["submit", "-t", "email", "--expires-at", "99999999999999999999"], /--expires-at/],
      [["list", "--type", "../../etc"], /Invalid task type/],
      [["cancel", "--task-type", "../../etc"], /Invalid task type/],
      // The library's rule: a positive duration is at least 1 ms. "Longer than zero" was wrong
      // for 0.0001, which is.
      [
        ["submit", "-t", "email", "--timeout", "0.0001"],
        /--timeout "0\.0001": it must be at least 1ms \(0\.001 seconds\)/,
      ],
      [["submit", "-t", "email", "--ttl", "0"], /--ttl "0": it must be at least 1ms/],
    ];
    const results = await Promise.all(cases.map(([args]) => oq(args, env)));
    results.forEach((r, i) => {
      const [args, message] = cases[i]!;
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/Unexpected error|RangeError/);
    });
  });
});

const targets: Target[] = [fileTarget, ...(s3Target === undefined ? [] : [s3Target])];

for (const target of targets) {
  describe(`oq cancel on ${target.name}`, () => {
    it("cancel --task-type reports a corrupt task object, cancels every other task and exits 1 (defect 16)", async () => {
      const instance = await target.create();
      try {
        const queue = new Queue({ storage: instance.storage, prefix: instance.prefix });
        const tasks = await queue.submitMany(
          Array.from({ length: 40 }, (_, i) => ({ type: "bulk", input: i })),
        );
        const bad = tasks[7]!;
        await instance.storage.put(queue.keys.task(bad.id), "{not json");
        const r = await oq(["cancel", "--task-type", "bulk", "--json"], cleanEnv(instance.env));
        expect(r.code).toBe(1);
        const outcomes = JSON.parse(r.stdout) as {
          id: string;
          ok: boolean;
          result: string;
          message?: string;
        }[];
        expect(outcomes).toHaveLength(40);
        const malformed = outcomes.filter((o) => o.result === "malformed");
        expect(malformed.map((o) => o.id)).toEqual([bad.id]);
        expect(malformed[0]!.message).toMatch(/not JSON/);
        expect(outcomes.filter((o) => o.ok && o.result === "cancelled")).toHaveLength(39);
        expect(r.stderr).toMatch(/1 of 40 tasks could not be cancelled/);
        const left = await queue.list({ status: "pending", limit: 100 });
        expect(left.tasks).toEqual([]);
      } finally {
        await instance.cleanup();
      }
    });
  });
}
