/**
 * `--log-format json` of the long-running commands, run as a real `oq worker` on the demo tasks:
 * every line it writes is one JSON object with time, level and msg, and a task's lines carry its
 * id, type, attempt, duration and the worker. A bad value is a usage error naming the allowed ones.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv, runOq as oq, ROOT, startOq as start } from "../helpers/cli.ts";

const DEMO_TASKS = join(ROOT, "src/cli/demo-tasks.ts");

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "oq-cli-logs-"));
  dirs.push(dir);
  return dir;
}

/** Every non-empty line of `text`, parsed as JSON (a line that is not JSON fails the test). */
function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
    });
}

describe("oq worker --log-format json", () => {
  it("writes one JSON object a line with the task's id, type, attempt, duration and worker", async () => {
    const cwd = tempDir();
    const url = `file:${join(cwd, "store")}`;
    const [flaky, resize] = await Promise.all([
      oq(
        ["submit", "--url", url, "-t", "send-email", "-i", '{"to":"a@example.com","flaky":true}'],
        {
          cwd,
        },
      ),
      oq(["submit", "--url", url, "-t", "resize-image", "-i", '{"image":"a.jpg","width":320}'], {
        cwd,
      }),
    ]);
    const flakyId = flaky.stdout.trim();
    const resizeId = resize.stdout.trim();
    const worker = start(
      ["worker", DEMO_TASKS, "--url", url, "--log-format", "json", "--id", "cli-log-w1"],
      { cwd, env: cleanEnv() },
    );
    try {
      await worker.waitFor(new RegExp(`"msg":"send-email ${flakyId} completed in `));
      await worker.waitFor(new RegExp(`"msg":"resize-image ${resizeId} completed in `));
      worker.child.kill("SIGTERM");
      expect(await worker.exited).toBe(0);
    } finally {
      worker.child.kill("SIGKILL");
    }
    const lines = [...jsonLines(worker.stdout), ...jsonLines(worker.stderr)];
    expect(lines.length).toBeGreaterThanOrEqual(6);
    for (const line of lines) {
      expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(["debug", "info", "warn", "error"]).toContain(line.level);
      expect(typeof line.msg).toBe("string");
    }
    // The CLI's own lines are in the same format.
    expect(lines.some((l) => String(l.msg).startsWith("Worker cli-log-w1 on "))).toBe(true);
    expect(lines.some((l) => String(l.msg).startsWith("Stopped. summary: "))).toBe(true);

    const about = (id: string, event: string) =>
      lines.filter((l) => l.taskId === id && l.event === event);
    expect(about(resizeId, "started")).toEqual([
      expect.objectContaining({
        level: "info",
        taskId: resizeId,
        type: "resize-image",
        attempt: 1,
        worker: "cli-log-w1",
      }),
    ]);
    const [resized] = about(resizeId, "completed");
    expect(resized).toMatchObject({
      level: "info",
      type: "resize-image",
      attempt: 1,
      worker: "cli-log-w1",
    });
    expect(resized!.durationMs).toBeGreaterThan(0);

    const [retry] = about(flakyId, "retry-scheduled");
    expect(retry).toMatchObject({
      level: "warn",
      type: "send-email",
      attempt: 1,
      worker: "cli-log-w1",
      error: { name: "Error", message: "421 mail server busy, try again later" },
    });
    expect(retry!.durationMs).toBeGreaterThan(0);
    expect(retry!.error).not.toHaveProperty("stack");
    const [sent] = about(flakyId, "completed");
    expect(sent).toMatchObject({
      level: "info",
      type: "send-email",
      attempt: 2,
      worker: "cli-log-w1",
    });
    expect(sent!.durationMs).toBeGreaterThan(0);
  });

  it("rejects a bad --log-format naming the allowed values (exit 2)", async () => {
    const cwd = tempDir();
    const [worker, scheduler] = await Promise.all([
      oq(["worker", DEMO_TASKS, "--url", "memory:", "--log-format", "yaml"], { cwd }),
      oq(["schedule", "run", "--url", "memory:", "--log-format", "xml"], { cwd }),
    ]);
    expect(worker.code).toBe(2);
    expect(worker.stderr).toContain('Invalid --log-format "yaml": use text or json.');
    expect(scheduler.code).toBe(2);
    expect(scheduler.stderr).toContain('Invalid --log-format "xml": use text or json.');
  });
});
