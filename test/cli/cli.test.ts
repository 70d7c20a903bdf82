/**
 * The `oq` command line, run as a real subprocess (test/helpers/cli.ts): output,
 * `--json` shapes, exit codes, help, bad input, a worker stopped by SIGTERM, and the demo.
 *
 * The queue flows run on the file store in a temporary directory and, when the `OQ_TEST_S3_*`
 * variables are set (`scripts/minio.sh`), again on S3 under a unique prefix per test.
 *
 * Every subprocess costs a fraction of a second of start-up (one from the sources under tsx,
 * a worker's or the demo's, a second or two), so each test groups several assertions
 * and runs independent commands in parallel.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  cleanEnv,
  MANY_ROUNDS_TIMEOUT_MS,
  runOq as oq,
  type OqResult as Result,
  startOq as start,
} from "../helpers/cli.ts";

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[`);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "oq-cli-"));
  dirs.push(dir);
  return dir;
}

const TASKS_MODULE = `
export const echo = async (input) => ({ echoed: input });
export const slow = (_input, ctx) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve("slept"), 60_000);
    ctx.signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(ctx.signal.reason);
    });
  });
export default {
  "fail-once": (_input, ctx) => {
    if (ctx.attempt === 1) throw new Error("boom on the first attempt");
    return "second time lucky";
  },
};
export const notAHandler = 42;
`;

const s3 =
  process.env.OQ_TEST_S3_ENDPOINT &&
  process.env.OQ_TEST_S3_BUCKET &&
  process.env.OQ_TEST_S3_ACCESS_KEY_ID &&
  process.env.OQ_TEST_S3_SECRET_ACCESS_KEY
    ? {
        OQ_ENDPOINT: process.env.OQ_TEST_S3_ENDPOINT,
        OQ_BUCKET: process.env.OQ_TEST_S3_BUCKET,
        OQ_REGION: process.env.OQ_TEST_S3_REGION || "us-east-1",
        AWS_ACCESS_KEY_ID: process.env.OQ_TEST_S3_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: process.env.OQ_TEST_S3_SECRET_ACCESS_KEY,
      }
    : undefined;

/** Where a test's queue lives: a fresh file store, or a fresh prefix in the S3 test bucket. */
interface Backend {
  name: string;
  /** A working directory and environment for one test's queue. */
  fresh(): { cwd: string; env: Record<string, string> };
}

const backends: Backend[] = [
  {
    name: "file store",
    fresh: () => ({ cwd: tempDir(), env: cleanEnv() }),
  },
];
if (s3 !== undefined) {
  backends.push({
    name: "S3",
    fresh: () => ({
      cwd: tempDir(),
      env: cleanEnv({
        ...s3,
        OQ_PREFIX: `cli-test-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/`,
      }),
    }),
  });
}

describe("help and usage errors", () => {
  it("prints help with examples, a version, and exits 2 on unknown commands", async () => {
    const cwd = tempDir();
    const [root, submit, worker, version, unknown, none] = await Promise.all([
      oq(["--help"], { cwd }),
      oq(["submit", "--help"], { cwd }),
      oq(["worker", "-h"], { cwd }),
      oq(["--version"], { cwd }),
      oq(["frobnicate"], { cwd }),
      oq([], { cwd }),
    ]);
    expect(root.code).toBe(0);
    for (const cmd of ["demo", "submit", "status", "list", "history", "cancel", "replay"])
      expect(root.stdout).toContain(cmd);
    expect(root.stdout).toMatch(
      /worker\s.*\n[\s\S]*monitor[\s\S]*workers[\s\S]*schedule[\s\S]*doctor/,
    );
    expect(root.stdout).not.toMatch(ANSI);

    expect(submit.code).toBe(0);
    expect(submit.stdout).toContain("USAGE oq submit");
    expect(submit.stdout).toContain("--idempotency-key");
    expect(submit.stdout).toContain("--url");
    expect(submit.stdout).toMatch(/EXAMPLES\n\n {2}oq submit -t /);
    expect(submit.stdout).not.toMatch(/ +\n/);

    expect(worker.code).toBe(0);
    expect(worker.stdout).toContain("--no-monitor");
    expect(worker.stdout).toContain("--grace");

    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);

    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown command 'frobnicate'.");
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("USAGE");
  });

  it("rejects bad input with exit 2 and says what is accepted", {
    timeout: MANY_ROUNDS_TIMEOUT_MS,
  }, async () => {
    const cwd = tempDir();
    const run = (...args: string[]) => oq(args, { cwd });
    const cases: [Promise<Result>, RegExp][] = [
      [run("submit", "-t", "email", "--bogus"), /Unknown option --bogus/],
      [run("--bogus", "list"), /Unknown option --bogus/],
      [run("submit", "-t", "email", "-i", "{to:1}"), /Invalid JSON in --input: .*position/],
      [run("submit", "-t", "email", "--delay", "1x"), /Invalid --delay "1x": expected .*1h30m/],
      [run("submit", "-t", "email", "--at", "next tuesday"), /Invalid --at .*ISO 8601/],
      [run("submit", "-t", "email", "--at", "2026-12-01T09:00"), /with a timezone/],
      [run("submit", "-t", "bad type!"), /Invalid task type/],
      [run("submit"), /Missing required argument: --type/],
      [run("status"), /Missing required positional argument: ID/],
      [run("list", "--status", "done"), /Invalid --status "done": expected one of pending/],
      [run("cancel"), /Give the ids of the tasks to cancel, or --type/],
      [run("worker", "tasks.mjs", "--concurrency", "0"), /Invalid --concurrency "0"/],
      [run("worker", "nope.mjs"), /Tasks module nope.mjs not found/],
    ];
    const results = await Promise.all(cases.map(([p]) => p));
    results.forEach((r, i) => {
      const [, message] = cases[i]!;
      expect({ i, code: r.code, stdout: r.stdout }).toEqual({ i, code: 2, stdout: "" });
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/Run "oq( \w+)? --help" for usage/);
      expect(r.stderr).not.toMatch(ANSI);
    });
  });

  it("an unknown command exits 2 with a did-you-mean (`oq frobnicate --help` printed the main help and exited 0)", async () => {
    const cwd = tempDir();
    const run = (...args: string[]) => oq(args, { cwd });
    const cases: [Promise<Result>, string, string][] = [
      [run("frobnicate", "--help"), "Unknown command 'frobnicate'.", "oq"],
      [run("lsit"), "Unknown command 'lsit'. Did you mean 'list'?", "oq"],
      [run("--url", "memory:", "sumbit", "-t", "a"), "Did you mean 'submit'?", "oq"],
      [
        run("schedule", "crate", "x"),
        "Unknown command 'crate'. Did you mean 'create'?",
        "oq schedule",
      ],
      [run("list", "--tpye", "email"), "Unknown option --tpye. Did you mean --type?", "oq list"],
      [
        run("worker", "tasks.mjs", "--concurrncy", "4"),
        "Unknown option --concurrncy. Did you mean --concurrency?",
        "oq worker",
      ],
      [run("status", "abc", "--endpiont", "http://x"), "Did you mean --endpoint?", "oq status"],
      [run("--endpiont", "http://x", "list"), "Did you mean --endpoint?", "oq"],
    ];
    const results = await Promise.all(cases.map(([p]) => p));
    results.forEach((r, i) => {
      const [, message, command] = cases[i]!;
      expect({ i, code: r.code, stdout: r.stdout }).toEqual({ i, code: 2, stdout: "" });
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain(`Run "${command} --help" for usage.`);
    });
  });

  it("`oq repair --help` and `oq help repair` print repair's help, exit 0 (the issue said the main help)", async () => {
    const cwd = tempDir();
    const lines = [
      ["repair", "--help"],
      ["help", "repair"],
      ["--url", "memory:", "repair", "--dry-run", "-h"],
      ["help", "schedule", "run"],
    ];
    const results = await Promise.all(lines.map((line) => oq(line, { cwd })));
    results.forEach((r, i) => {
      const line = lines[i]!;
      const name = line[1] === "schedule" ? "schedule run" : "repair";
      expect({ line, code: r.code, stderr: r.stderr }).toEqual({ line, code: 0, stderr: "" });
      expect(r.stdout).toContain(`(oq ${name})\n\nUSAGE oq ${name}`);
    });
  });

  it("an unknown flag is named before a missing required one (`oq submit --tpye x` said --type was missing)", async () => {
    const cwd = tempDir();
    const run = (...args: string[]) => oq(args, { cwd });
    const cases: [Promise<Result>, string, string][] = [
      [
        run("submit", "--tpye", "email"),
        "Unknown option --tpye. Did you mean --type?",
        "oq submit",
      ],
      [run("status", "--jsn"), "Unknown option --jsn. Did you mean --json?", "oq status"],
      [
        run("schedule", "create", "nightly", "--tpye", "r", "--cron", "@daily"),
        "Unknown option --tpye. Did you mean --type?",
        "oq schedule create",
      ],
      [run("help", "lsit"), "Unknown command 'lsit'. Did you mean 'list'?", "oq"],
    ];
    const results = await Promise.all(cases.map(([p]) => p));
    results.forEach((r, i) => {
      const [, message, command] = cases[i]!;
      expect({ i, code: r.code, stdout: r.stdout }).toEqual({ i, code: 2, stdout: "" });
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain(`Run "${command} --help" for usage.`);
    });
  });

  it("reports configuration problems with exit 1 and never prints credentials", async () => {
    const cwd = tempDir();
    const secret = "sUpErSeCrEt/Key+Value=xyz";
    const env = cleanEnv({ AWS_ACCESS_KEY_ID: "AKIAOQCLITEST", AWS_SECRET_ACCESS_KEY: secret });
    const [badUrl, unreachable, noHandlers] = await Promise.all([
      oq(["list", "--url", "ftp://example.com/x"], { cwd, env }),
      // Nothing listens on port 9 of localhost: the connection is refused at once.
      oq(["status", "abc", "--bucket", "b", "--endpoint", "http://127.0.0.1:9"], { cwd, env }),
      (async () => {
        writeFileSync(join(cwd, "empty.mjs"), "export const x = 1;\n");
        return oq(["worker", "empty.mjs"], { cwd, env });
      })(),
    ]);
    expect(badUrl.code).toBe(1);
    expect(badUrl.stderr).toMatch(/Configuration problem: Unknown queue URL/);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/127\.0\.0\.1:9/);
    expect(noHandlers.code).toBe(1);
    expect(noHandlers.stderr).toMatch(/exports no handlers/);
    for (const r of [badUrl, unreachable, noHandlers]) {
      expect(r.stdout + r.stderr).not.toContain(secret);
      expect(r.stdout + r.stderr).not.toContain("AKIAOQCLITEST");
    }
  });
});

for (const backend of backends) {
  describe(`queue commands on the ${backend.name}`, () => {
    it("submits, shows, lists, cancels, replays and reports unknown ids", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      const { cwd, env } = backend.fresh();
      const run = (...args: string[]) => oq(args, { cwd, env });

      const [plain, json, delayed, keyed] = await Promise.all([
        run("submit", "-t", "email", "-i", '{"to":"a@example.com"}'),
        run(
          "submit",
          "-t",
          "email",
          "-i",
          '{"to":"b@example.com"}',
          "--max-retries",
          "5",
          "--json",
        ),
        run("submit", "-t", "report", "--delay", "1h", "--ttl", "30m", "--timeout", "45s"),
        run(
          "submit",
          "-t",
          "report",
          "--idempotency-key",
          "order-42",
          "--at",
          "2030-01-01T00:00:00Z",
        ),
      ]);
      for (const r of [plain, json, delayed, keyed]) expect(r.stderr).toContain("Submitted");
      expect(plain.code).toBe(0);
      const id = plain.stdout.trim();
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      expect(json.code).toBe(0);
      const record = JSON.parse(json.stdout);
      expect(record).toMatchObject({
        oq: 1,
        type: "email",
        status: "pending",
        input: { to: "b@example.com" },
        attempt: 0,
        maxRetries: 5,
        event: "submitted",
      });
      const delayedId = delayed.stdout.trim();
      const keyedId = keyed.stdout.trim();
      expect(delayed.stderr).toMatch(/due in (59m|1h)/);

      const [again, status, statusJson, list, listJson, filtered, history, log] = await Promise.all(
        [
          run("submit", "-t", "report", "--idempotency-key", "order-42"),
          run("status", delayedId),
          run("status", delayedId, "--json"),
          run("list"),
          run("list", "--json"),
          run("list", "--type", "email", "--status", "pending,running", "--json", "--limit", "1"),
          run("history", id, "--versions", "--json"),
          run("history", id, "--json"),
        ],
      );
      expect(again.stdout.trim()).toBe(keyedId);
      expect(again.stderr).toContain(`Found existing report task ${keyedId} (pending)`);
      expect(again.stderr).not.toContain("Submitted");
      const conflict = await run(
        "submit",
        "-t",
        "report",
        "-i",
        "1",
        "--idempotency-key",
        "order-42",
      );
      expect(conflict.code).toBe(1);
      expect(conflict.stderr).toContain("IDEMPOTENCY_CONFLICT");

      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^id\s+[0-9a-f]{32}$/m);
      expect(status.stdout).toMatch(/^status\s+pending \(attempt 0 of 4, last event submitted\)$/m);
      expect(status.stdout).toMatch(/^available\s+\S+ \(in (59m|1h)/m);
      expect(status.stdout).toMatch(/^expires\s/m);
      expect(status.stdout).toMatch(/^timeout\s+45s per attempt$/m);
      expect(status.stdout).not.toMatch(ANSI);
      const delayedRecord = JSON.parse(statusJson.stdout);
      expect(delayedRecord.id).toBe(delayedId);
      expect(Date.parse(delayedRecord.expiresAt) - Date.parse(delayedRecord.availableAt)).toBe(
        30 * 60_000,
      );
      expect(delayedRecord.timeoutSeconds).toBe(45);

      const lines = list.stdout.trimEnd().split("\n");
      expect(lines[0]).toMatch(/^ID\s+TYPE\s+STATUS\s+ATTEMPT\s+AGE$/);
      expect(lines).toHaveLength(5);
      // Aligned: every column starts at the same offset on every line.
      const statusColumn = lines[0]!.indexOf("STATUS");
      for (const line of lines.slice(1)) {
        expect(line).toMatch(/^[0-9a-f]{32}\s+(email|report)\s+pending\s+0\s+(just now|\d+s ago)$/);
        expect(line.indexOf("pending")).toBe(statusColumn);
      }
      const listed = JSON.parse(listJson.stdout);
      expect(Object.keys(listed).sort()).toEqual(["cursor", "tasks"]);
      expect(listed.cursor).toBeNull();
      expect(listed.tasks.map((t: { id: string }) => t.id).sort()).toEqual(
        [id, record.id, delayedId, keyedId].sort(),
      );
      const page = JSON.parse(filtered.stdout);
      expect(page.tasks).toHaveLength(1);
      expect(page.tasks[0].type).toBe("email");
      expect(typeof page.cursor).toBe("string");

      const versions = JSON.parse(history.stdout);
      expect(versions).toHaveLength(1);
      expect(versions[0]).toMatchObject({
        event: "submitted",
        status: "pending",
        attempt: 0,
        worker: null,
        error: null,
      });
      expect(Object.keys(versions[0]).sort()).toEqual(
        ["at", "attempt", "error", "event", "status", "task", "versionId", "worker"].sort(),
      );
      // Without --versions: the event log kept in the record.
      expect(JSON.parse(log.stdout)).toEqual([
        { event: "submitted", at: versions[0].at, worker: null, attempt: 0, error: null },
      ]);

      const [cancel, cancelUnknown, statusUnknown, historyUnknown, replayPending] =
        await Promise.all([
          run("cancel", id, "--reason", "changed my mind", "--json"),
          run("cancel", "0123456789abcdef0123456789abcdef", record.id),
          run("status", "0123456789abcdef0123456789abcdef"),
          run("history", "nope"),
          run("replay", delayedId),
        ]);
      expect(cancel.code).toBe(0);
      expect(JSON.parse(cancel.stdout)).toEqual([
        { id, ok: true, result: "cancelled", status: "cancelled" },
      ]);
      expect(cancelUnknown.code).toBe(1);
      expect(cancelUnknown.stdout).toMatch(/^0123456789abcdef0123456789abcdef\s+not found$/m);
      expect(cancelUnknown.stdout).toMatch(new RegExp(`^${record.id}\\s+cancelled$`, "m"));
      expect(cancelUnknown.stderr).toContain("1 of 2 tasks could not be cancelled");
      expect(statusUnknown.code).toBe(1);
      expect(statusUnknown.stderr).toMatch(/Task 0123456789abcdef0123456789abcdef not found/);
      expect(historyUnknown.code).toBe(1);
      expect(historyUnknown.stderr).toMatch(/Task nope not found/);
      expect(replayPending.code).toBe(1);
      expect(replayPending.stderr).toMatch(/Cannot replay task .*: it is pending/);

      const [replay, cancelAgain, byType] = await Promise.all([
        run("replay", id, "--json"),
        run("cancel", record.id, "--json"),
        run("cancel", "--task-type", "report", "--json"),
      ]);
      expect(replay.code).toBe(0);
      expect(JSON.parse(replay.stdout)).toMatchObject({ id, status: "pending", event: "replayed" });
      expect(cancelAgain.code).toBe(1);
      expect(JSON.parse(cancelAgain.stdout)).toEqual([
        { id: record.id, ok: false, result: "already-cancelled", status: "cancelled" },
      ]);
      expect(byType.code).toBe(0);
      const byTypeResult = JSON.parse(byType.stdout);
      expect(byTypeResult.map((o: { id: string }) => o.id).sort()).toEqual(
        [delayedId, keyedId].sort(),
      );
      expect(byTypeResult.every((o: { result: string }) => o.result === "cancelled")).toBe(true);

      const [after, replayedHistory, replayedVersions] = await Promise.all([
        run("list", "--status", "cancelled", "--json"),
        run("history", id),
        run("history", id, "--versions"),
      ]);
      expect(
        JSON.parse(after.stdout)
          .tasks.map((t: { id: string }) => t.id)
          .sort(),
      ).toEqual([record.id, delayedId, keyedId].sort());
      const historyLines = replayedHistory.stdout.trimEnd().split("\n");
      expect(historyLines[0]).toMatch(/^TIME\s+EVENT\s+ATTEMPT\s+WORKER\s+ERROR$/);
      expect(historyLines.slice(1).map((l) => l.split(/\s+/)[1])).toEqual([
        "submitted",
        "cancelled",
        "replayed",
      ]);
      const versionLines = replayedVersions.stdout.trimEnd().split("\n");
      expect(versionLines[0]).toMatch(/^TIME\s+EVENT\s+STATUS\s+ATTEMPT\s+WORKER\s+ERROR$/);
      expect(versionLines.slice(1).map((l) => l.split(/\s+/)[1])).toEqual([
        "submitted",
        "cancelled",
        "replayed",
      ]);
    });

    it("runs a worker from a tasks module and stops it gracefully on SIGTERM", async () => {
      const { cwd, env } = backend.fresh();
      writeFileSync(join(cwd, "tasks.mjs"), TASKS_MODULE);
      const run = (...args: string[]) => oq(args, { cwd, env });
      const [echo, flaky, slow] = await Promise.all([
        run("submit", "-t", "echo", "-i", '{"n":1}'),
        run("submit", "-t", "fail-once"),
        run("submit", "-t", "slow"),
      ]);
      const echoId = echo.stdout.trim();
      const flakyId = flaky.stdout.trim();
      const slowId = slow.stdout.trim();

      const worker = start(
        [
          "worker",
          "tasks.mjs",
          "--concurrency",
          "3",
          "--grace",
          "1s",
          "--id",
          "cli-test-w1",
          "--scheduler",
        ],
        { cwd, env },
      );
      try {
        await worker.waitFor(new RegExp(`fail-once ${flakyId} completed in \\d`));
        await worker.waitFor(new RegExp(`echo ${echoId} completed in \\d`));
        await worker.waitFor(new RegExp(`slow ${slowId} started \\(attempt 1\\)`));
        expect(worker.stderr).toMatch(/Worker cli-test-w1 on .*: (echo|fail-once|slow)/);
        // A fresh S3 store is proven safe (oq doctor) before the first claim; oq evaluates a file
        // store's conditions itself, so that needs no probe.
        if (backend.name === "S3") expect(worker.stderr).toMatch(/honours conditional writes/);
        else expect(worker.stderr).not.toMatch(/honours conditional writes/);
        expect(worker.stderr).toContain("Running the scheduler in this process too.");
        expect(worker.stderr).toContain(`fail-once ${flakyId} attempt 1 failed in`);
        expect(worker.stderr).toContain("will retry: boom on the first attempt");
        expect(worker.stderr).not.toContain("notAHandler");

        const [workers, workersTable, echoStatus, flakyHistory] = await Promise.all([
          run("workers", "--json"),
          run("workers"),
          run("status", echoId, "--json"),
          run("history", flakyId, "--json"),
        ]);
        const listed = JSON.parse(workers.stdout);
        expect(listed).toHaveLength(1);
        expect(listed[0]).toMatchObject({
          id: "cli-test-w1",
          concurrency: 3,
          heartbeatSeconds: 60,
          stale: false,
        });
        expect([...listed[0].types].sort()).toEqual(["echo", "fail-once", "slow"]);
        expect(workersTable.stdout).toMatch(
          /^ID\s+TYPES\s+ACTIVE\s+HEARTBEAT\s+STATE\ncli-test-w1\s+\S+\s+\d\/3\s+(just now|\d+s ago)\s+live$/m,
        );
        expect(JSON.parse(echoStatus.stdout)).toMatchObject({
          status: "completed",
          output: { echoed: { n: 1 } },
        });
        const events = JSON.parse(flakyHistory.stdout).map(
          (v: { event: string; worker: string | null; error: string | null }) => [
            v.event,
            v.worker,
            v.error,
          ],
        );
        expect(events).toEqual([
          ["submitted", null, null],
          ["claimed", "cli-test-w1", null],
          ["retry-scheduled", "cli-test-w1", "Error: boom on the first attempt"],
          ["claimed", "cli-test-w1", null],
          ["completed", "cli-test-w1", null],
        ]);

        worker.child.kill("SIGTERM");
        const code = await worker.exited;
        expect(code).toBe(0);
        expect(worker.stderr).toMatch(/SIGTERM: stopping; waiting up to 1\.0s for 1 running task/);
        expect(worker.stderr).toContain(`slow ${slowId} handed back unfinished`);
        expect(worker.stderr).toMatch(/Stopped\. summary: 2 completed, 0 failed, 1 retried/);
        expect(worker.stdout).toBe("");
      } finally {
        worker.child.kill("SIGKILL");
      }

      const [slowStatus, workersAfter] = await Promise.all([
        run("status", slowId, "--json"),
        run("workers", "--json"),
      ]);
      expect(JSON.parse(slowStatus.stdout)).toMatchObject({
        status: "pending",
        attempt: 0,
        event: "released",
        lease: null,
      });
      // A stopped worker deletes its heartbeat.
      expect(JSON.parse(workersAfter.stdout)).toEqual([]);
    });

    it("runs the demo to completion", async () => {
      const { cwd, env } = backend.fresh();
      const result = await oq(["demo", "--count", "6", "--delay", "1s", "--json"], { cwd, env });
      expect(result.code).toBe(0);
      const summary = JSON.parse(result.stdout);
      expect(summary).toMatchObject({
        tasks: 6,
        completed: 5,
        failed: 1,
        prefix: expect.stringMatching(/oq-demo\/$/),
      });
      expect(summary.retried).toBeGreaterThanOrEqual(1);
      const { total, ...byKind } = summary.requests;
      expect(Object.keys(byKind)).toEqual(expect.arrayContaining(["GET", "PUT", "LIST", "DELETE"]));
      expect(total).toBe(Object.values(byKind).reduce((a: number, b) => a + (b as number), 0));
      expect(summary.requests.PUT).toBeGreaterThan(6);
      expect(result.stderr).toMatch(/\[6\/6\] \S+ [0-9a-f]{32} (completed|failed)/);
      expect(result.stderr).toContain("will retry");
    });
  });
}

describe("the task-type flag", () => {
  it("is --type or -t in submit, list and cancel, and the old --task-type still works", async () => {
    const cwd = tempDir();
    const run = (...args: string[]) =>
      oq(["--url", `file:${join(cwd, "store")}`, ...args], { cwd });
    const submitted = await Promise.all([
      run("submit", "--type", "a"),
      run("submit", "-t", "a"),
      run("submit", "--task-type", "b"),
    ]);
    expect(submitted.map((r) => r.code)).toEqual([0, 0, 0]);
    const [listA, listB, listOld] = await Promise.all([
      run("list", "--type", "a", "--json"),
      run("list", "-t", "b", "--json"),
      run("list", "--task-type", "a", "--json"),
    ]);
    expect(JSON.parse(listA.stdout).tasks).toHaveLength(2);
    expect(JSON.parse(listB.stdout).tasks.map((t: { type: string }) => t.type)).toEqual(["b"]);
    expect(JSON.parse(listOld.stdout).tasks).toHaveLength(2);
    const [cancelA, cancelB] = await Promise.all([
      run("cancel", "--type", "a", "--json"),
      run("cancel", "-t", "b", "--json"),
    ]);
    expect(JSON.parse(cancelA.stdout).map((o: { result: string }) => o.result)).toEqual([
      "cancelled",
      "cancelled",
    ]);
    expect(JSON.parse(cancelB.stdout)).toHaveLength(1);
    // prune and retention took only --type.
    const [retention, prune] = await Promise.all([
      run("retention", "-t", "a", "--completed", "0", "--json"),
      run("prune", "-t", "a", "--dry-run", "--json"),
    ]);
    expect(retention.code, retention.stderr).toBe(0);
    expect(JSON.parse(retention.stdout).types).toEqual({ a: { completed: 0 } });
    expect(prune.code, prune.stderr).toBe(0);
  });
});

describe("the demo and the worker's signals", () => {
  it("demo on the default ./.oq store prints a summary and hints", async () => {
    const cwd = tempDir();
    const result = await oq(["demo", "--count", "5", "--delay", "0"], { cwd });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^5 tasks in [\d.]+m?s: 4 completed, 1 failed, [1-9]\d* retried\.$/m,
    );
    expect(result.stdout).toMatch(/^Storage requests: \d+ \(GET \d+, .*PUT \d+.*LIST \d+/m);
    expect(result.stdout).toContain("cli.ts list --prefix oq-demo/");
    expect(result.stderr).toContain("Demo on file:./.oq (prefix oq-demo/)");
    const list = await oq(["list", "--prefix", "oq-demo/", "--status", "failed", "--json"], {
      cwd,
    });
    const failed = JSON.parse(list.stdout).tasks;
    expect(failed).toHaveLength(1);
    expect(failed[0].lastError).toMatchObject({ permanent: true, name: "PermanentError" });
  });

  it("a worker's text log lines start with an ISO timestamp (they had none)", async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, "tasks.mjs"), TASKS_MODULE);
    const url = `file:${join(cwd, "store")}`;
    const submitted = await oq(["submit", "--url", url, "-t", "echo"], { cwd });
    const worker = start(["--url", url, "worker", "tasks.mjs", "--skip-doctor"], {
      cwd,
      env: cleanEnv(),
    });
    try {
      await worker.waitFor(/echo [0-9a-f]{32} completed/);
      worker.child.kill("SIGTERM");
      expect(await worker.exited).toBe(0);
      const lines = worker.stderr.trimEnd().split("\n");
      expect(lines.length).toBeGreaterThanOrEqual(4);
      for (const line of lines) {
        expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[\w+\] /);
      }
      expect(worker.stderr).toMatch(
        /Z \[info\] echo [0-9a-f]{32} completed in \S+ taskId=[0-9a-f]{32} type=echo attempt=1 durationMs=\d+ worker=w-/,
      );
      // One-shot commands keep their plain lines.
      expect(submitted.stderr).toMatch(/^\[success\] Submitted echo task/);
    } finally {
      worker.child.kill("SIGKILL");
    }
  });

  it("a second SIGTERM exits at once with code 1", async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, "tasks.mjs"), TASKS_MODULE);
    const url = `file:${join(cwd, "store")}`;
    await oq(["submit", "--url", url, "-t", "slow"], { cwd });
    const worker = start(["--url", url, "worker", "tasks.mjs", "--grace", "1m", "--skip-doctor"], {
      cwd,
      env: cleanEnv(),
    });
    try {
      await worker.waitFor(/slow [0-9a-f]{32} started/);
      worker.child.kill("SIGTERM");
      await worker.waitFor(/SIGTERM: stopping; waiting up to 1m for 1 running task/);
      const before = Date.now();
      worker.child.kill("SIGTERM");
      expect(await worker.exited).toBe(1);
      expect(Date.now() - before).toBeLessThan(5000);
      expect(worker.stderr).toContain("SIGTERM again: exiting without waiting");
      expect(worker.stderr).not.toMatch(/honours conditional writes/);
    } finally {
      worker.child.kill("SIGKILL");
    }
  });
});
