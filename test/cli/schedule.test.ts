/**
 * `oq schedule` and `oq doctor` as real subprocesses on the file store: output, `--json`
 * shapes, exit codes, and the scheduler daemon stopped by SIGTERM. Each subprocess costs about a
 * second of start-up, so independent commands run in parallel.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv, MANY_ROUNDS_TIMEOUT_MS, type OqResult, runOq, startOq } from "../helpers/cli.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The environment of a test whose queue is the file store in `dir`. */
function env(dir: string): Record<string, string> {
  return cleanEnv({ NO_COLOR: "1", OQ_URL: `file:${join(dir, "store")}` });
}

function oq(dir: string, args: string[]): Promise<OqResult> {
  return runOq(args, { cwd: dir, env: env(dir) });
}

describe("oq schedule", () => {
  it("creates, lists, shows, disables, triggers and deletes schedules", {
    timeout: MANY_ROUNDS_TIMEOUT_MS,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "oq-cli-schedule-"));
    dirs.push(dir);
    const created = await oq(dir, [
      "schedule",
      "create",
      "nightly",
      "-t",
      "report",
      "-i",
      '{"kind":"daily"}',
      "-c",
      "0 9 * * *",
      "--tz",
      "Europe/Paris",
      "--catch-up",
      "all",
      "--timeout",
      "30s",
      "--max-retries",
      "2",
      "--ttl",
      "1h",
    ]);
    expect(created.stderr).toMatch(/Created schedule nightly: report at "0 9 \* \* \*"/);
    expect(created).toMatchObject({ code: 0, stdout: "nightly\n" });

    const [dup, badCron, badTz, badPolicy, listed, shown, json, help] = await Promise.all([
      oq(dir, ["schedule", "create", "nightly", "-t", "x", "-c", "* * * * *"]),
      oq(dir, ["schedule", "create", "b", "-t", "x", "-c", "61 * * * *"]),
      oq(dir, ["schedule", "create", "b", "-t", "x", "-c", "* * * * *", "--tz", "Mars/Base"]),
      oq(dir, ["schedule", "create", "b", "-t", "x", "-c", "* * * * *", "--catch-up", "some"]),
      oq(dir, ["schedule", "list"]),
      oq(dir, ["schedule", "show", "nightly"]),
      oq(dir, ["schedule", "list", "--json"]),
      oq(dir, ["schedule", "create", "--help"]),
    ]);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/Schedule nightly already exists/);
    expect(badCron.code).toBe(2);
    expect(badCron.stderr).toMatch(/Invalid value for minute: 61/);
    expect(badTz.code).toBe(2);
    expect(badTz.stderr).toMatch(/Invalid timezone "Mars\/Base"/);
    expect(badPolicy.code).toBe(2);
    expect(badPolicy.stderr).toMatch(/Invalid --catch-up "some"/);
    const lines = listed.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+TYPE\s+CRON\s+TZ\s+CATCH-UP\s+STATE\s+NEXT RUN\s+LAST RUN$/);
    expect(lines[1]).toMatch(
      /^nightly\s+report\s+0 9 \* \* \*\s+Europe\/Paris\s+all\s+enabled\s+\S+T0[78]:00:00\.000Z \(in /,
    );
    // Columns line up: the header's NEXT RUN starts where the row's next run does.
    expect(lines[0]!.indexOf("NEXT RUN")).toBe(lines[1]!.search(/\d{4}-\d\d-\d\dT/));
    expect(shown.stdout).toMatch(/task options\s+timeout 30s, max retries 2, ttl 1h/);
    expect(shown.stdout).toMatch(/next runs\s+\S+Z\n\s+\S+Z/);
    const schedules = JSON.parse(json.stdout) as { id: string; nextRunAt: string }[];
    expect(schedules.map((s) => s.id)).toEqual(["nightly"]);
    expect(schedules[0]!.nextRunAt).toMatch(/Z$/);
    expect(help.stdout).toMatch(/EXAMPLES/);
    expect(help.stdout).toMatch(/--catch-up/);

    const disabled = await oq(dir, ["schedule", "disable", "nightly"]);
    expect(disabled.code).toBe(0);
    const [afterDisable, triggered, missing] = await Promise.all([
      oq(dir, ["schedule", "show", "nightly", "--json"]),
      oq(dir, ["schedule", "trigger", "nightly", "--json"]),
      oq(dir, ["schedule", "trigger", "nope"]),
    ]);
    expect(JSON.parse(afterDisable.stdout)).toMatchObject({ enabled: false, nextRuns: [] });
    expect(JSON.parse(triggered.stdout)).toMatchObject({
      type: "report",
      input: { kind: "daily" },
      maxRetries: 2,
      timeoutSeconds: 30,
    });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Schedule nope not found/);
    const deleted = await oq(dir, ["schedule", "delete", "nightly"]);
    expect(deleted.code).toBe(0);
    const empty = await oq(dir, ["schedule", "list", "--json"]);
    expect(JSON.parse(empty.stdout)).toEqual([]);
  });

  it("runs the scheduler daemon until SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "oq-cli-schedule-"));
    dirs.push(dir);
    const created = await oq(dir, [
      "schedule",
      "create",
      "tick",
      "-t",
      "ping",
      "-c",
      "* * * * * *",
      "--catch-up",
      "all",
    ]);
    expect(created.code).toBe(0);
    const scheduler = startOq(["schedule", "run", "--interval", "2s"], {
      cwd: dir,
      env: env(dir),
    });
    await scheduler.waitFor(/slot \S+ -> task[\s\S]*slot \S+ -> task/, 60_000);
    scheduler.child.kill("SIGTERM");
    const code = await scheduler.exited;
    const stderr = scheduler.stderr;
    expect(code).toBe(0);
    expect(stderr).not.toMatch(/honours conditional writes/); // a file store needs no probe
    expect(stderr).toMatch(/Scheduler on file:/);
    expect(stderr).toMatch(/SIGTERM: stopping after the current tick/);
    expect(stderr).toMatch(/Scheduler stopped/);
    const shown = JSON.parse((await oq(dir, ["schedule", "show", "tick", "--json"])).stdout) as {
      lastSlot: string;
    };
    const tasks = JSON.parse((await oq(dir, ["list", "--json"])).stdout) as {
      tasks: { idempotencyKey: string }[];
    };
    const keys = tasks.tasks.map((t) => t.idempotencyKey);
    expect(keys).toContain(`schedule:tick:${shown.lastSlot}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe("oq doctor", () => {
  it("prints a checklist and exits 0 on a safe backend; --json gives the report", async () => {
    const dir = mkdtempSync(join(tmpdir(), "oq-cli-doctor-"));
    dirs.push(dir);
    const [human, json, broken] = await Promise.all([
      oq(dir, ["doctor"]),
      oq(dir, ["doctor", "--json", "--rounds", "1"]),
      oq(dir, ["doctor", "--url", "bogus:"]),
    ]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/✓ Create-if-absent \(If-None-Match: \*\)/);
    expect(human.stdout).toMatch(/✓ 16 concurrent creators, 3 rounds: exactly one winner/);
    expect(human.stdout).toMatch(/Safe: file:\S+ honours conditional writes/);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { verdict: string; checks: { status: string }[] };
    expect(report.verdict).toBe("safe");
    expect(report.checks.every((c) => c.status === "ok")).toBe(true);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/✗ Configuration/);
    expect(broken.stdout).toMatch(/Unknown queue URL bogus:/);
  });
});
