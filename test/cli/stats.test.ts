/**
 * `oq stats` (and `oq workers` beside stopped workers' files), run as the real CLI on the file
 * store: a table per type, `--json` with the counts of `queue.stats()`, `--type` to pick one.
 */
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { Worker } from "../../src/worker/worker.ts";
import { cleanEnv, type OqResult, runOq } from "../helpers/cli.ts";
import { fileTarget, type TargetInstance } from "../helpers/targets.ts";
import { fast, until } from "../helpers/wait.ts";

let store: TargetInstance;
beforeAll(async () => {
  store = await fileTarget.create();
  const queue = new Queue({ storage: store.storage });
  const worker = new Worker(queue, { ...fast, heartbeatSeconds: 60, id: "gone" }).task(
    "email",
    async () => {},
  );
  await queue.submitMany([{ type: "email" }, { type: "email" }]);
  await worker.start();
  await until("two tasks completed", () => worker.stats.completed === 2);
  // Stopping keeps its counts in workers/stopped/.
  await worker.stop();
  await queue.submitMany([{ type: "email" }, { type: "report", options: { delay: 3600 } }]);
});
afterAll(() => store.cleanup());

function oq(...args: string[]): Promise<OqResult> {
  return runOq([...args, "--url", store.url!], {
    cwd: tmpdir(),
    env: cleanEnv({ NO_COLOR: "1" }),
  });
}

describe("oq stats", () => {
  it("prints a table per type, JSON, and one type with --type", async () => {
    const [table, json, one, workers] = await Promise.all([
      oq("stats"),
      oq("stats", "--json"),
      oq("stats", "--type", "report", "--json"),
      oq("workers", "--json"),
    ]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain("email  1 due");
    expect(table.stdout).toMatch(/last hour\s+2\s+0\s+0\s+0/);
    expect(table.stdout).toContain("report  0 due, 1 delayed");
    expect(table.stderr).toMatch(/LIST and \d+ GET requests/);

    expect(json.code, json.stderr).toBe(0);
    const stats = JSON.parse(json.stdout);
    expect(stats.types.map((t: { type: string }) => t.type)).toEqual(["email", "report"]);
    expect(stats.types[0]).toMatchObject({
      pending: { due: 1, delayed: 0 },
      running: 0,
      finished: { lastDay: { completed: 2, failed: 0, cancelled: 0, expired: 0 } },
    });
    expect(stats.requests).toEqual({ LIST: 5, GET: 1 });

    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout).types).toEqual([
      expect.objectContaining({ type: "report", pending: { due: 0, delayed: 1 } }),
    ]);

    // The stopped worker's file is not a live worker's heartbeat.
    expect(workers.code, workers.stderr).toBe(0);
    expect(JSON.parse(workers.stdout)).toEqual([]);
  });
});
