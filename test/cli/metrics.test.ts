/**
 * `oq worker --metrics-port`: Prometheus metrics served over HTTP while the demo's tasks run,
 * the completed counter moving from one scrape to the next (issue 12: "curl /metrics shows the
 * counters moving while the demo runs").
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { demoWorkload } from "../../src/cli/demo.ts";
import { CliError } from "../../src/cli/errors.ts";
import { serveMetrics } from "../../src/cli/metrics-server.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, ROOT, type RunningOq, startOq } from "../helpers/cli.ts";
import { fileTarget, type TargetInstance } from "../helpers/targets.ts";
import { until } from "../helpers/wait.ts";

/** The sum over a metric's series in Prometheus text (0 when it has none). */
function total(text: string, metric: string): number {
  let sum = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  return sum;
}

describe("oq worker --metrics-port", () => {
  let store: TargetInstance;
  let worker: RunningOq | undefined;
  beforeEach(async () => {
    store = await fileTarget.create();
  });
  afterEach(async () => {
    if (worker !== undefined && worker.child.exitCode === null) {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
    await store.cleanup();
  });

  it("serves /metrics with the completed counter moving while the demo's tasks run", async () => {
    const queue = new Queue({ storage: store.storage });
    worker = startOq(
      [
        "worker",
        join(ROOT, "src/cli/demo-tasks.ts"),
        "--url",
        store.url!,
        "--metrics-port",
        "0",
        "--concurrency",
        "4",
      ],
      { cwd: ROOT, env: cleanEnv({ NO_COLOR: "1" }) },
    );
    await worker.waitFor(/Metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/, 45_000);
    const url = /Metrics at (http:\/\/\S+)/.exec(worker.stderr)![1]!;
    const scrape = async () => {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      return response.text();
    };
    const completedNow = async () => total(await scrape(), "oq_tasks_completed_total");
    expect(await completedNow()).toBe(0);

    const runBatch = async (count: number) => {
      const tasks = await queue.submitMany(demoWorkload(count, 1));
      const ends = await Promise.all(tasks.map((t) => queue.wait(t.id, { timeout: 60 })));
      return ends.filter((t) => t.status === "completed").length;
    };
    const first = await runBatch(5);
    expect(first).toBeGreaterThan(0);
    await until("the first batch counted", async () => (await completedNow()) === first);
    const text = await scrape();
    expect(text).toContain("# TYPE oq_tasks_completed_total counter");
    expect(text).toMatch(/oq_tasks_completed_total\{oq_task_type="resize-image"\} \d+/);
    expect(total(text, "oq_tasks_failed_total")).toBe(1); // the demo's malformed address
    expect(total(text, "oq_tasks_retried_total")).toBe(1); // its flaky email, once
    expect(total(text, "oq_task_run_duration_seconds_count")).toBe(first + 2);
    const requests = total(text, "oq_storage_requests_total");
    expect(requests).toBeGreaterThan(0);

    const second = await runBatch(5);
    await until("the second batch counted", async () => (await completedNow()) === first + second);
    expect(total(await scrape(), "oq_storage_requests_total")).toBeGreaterThan(requests);

    const other = await fetch(url.replace(/\/metrics$/, "/other"));
    expect(other.status).toBe(404);
    await other.text();
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 120_000);
});

describe("oq monitor --metrics-port", () => {
  it("counts the expiries the monitor writes", async () => {
    const store = await fileTarget.create();
    const queue = new Queue({ storage: store.storage });
    const monitor = startOq(
      ["monitor", "--url", store.url!, "--metrics-port", "0", "--skip-doctor"],
      { cwd: ROOT, env: cleanEnv({ NO_COLOR: "1" }) },
    );
    try {
      await monitor.waitFor(/Metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/, 45_000);
      const url = /Metrics at (http:\/\/\S+)/.exec(monitor.stderr)![1]!;
      const expired = async () => total(await (await fetch(url)).text(), "oq_tasks_expired_total");
      expect(await expired()).toBe(0);
      const task = await queue.submit("nobody-handles-this", null, { ttlSeconds: 1 });
      expect((await queue.wait(task.id, { timeout: 60 })).status).toBe("expired");
      await until("the expiry counted", async () => (await expired()) === 1);
      monitor.child.kill("SIGTERM");
      expect(await monitor.exited).toBe(0);
    } finally {
      if (monitor.child.exitCode === null) {
        monitor.child.kill("SIGTERM");
        await monitor.exited;
      }
      await store.cleanup();
    }
  }, 120_000);
});

describe("the metrics server", () => {
  it("answers GET /metrics only, and says which port is taken", async () => {
    const metrics = new Metrics();
    const server = await serveMetrics(metrics, { host: "127.0.0.1", port: 0 });
    try {
      const ok = await fetch(server.url);
      expect(ok.status).toBe(200);
      await ok.text();
      const root = await fetch(server.url.replace(/metrics$/, ""));
      expect(root.status).toBe(404);
      await root.text();
      const post = await fetch(server.url, { method: "POST" });
      expect(post.status).toBe(405);
      await post.text();
      const port = Number(new URL(server.url).port);
      const taken = serveMetrics(metrics, { host: "127.0.0.1", port });
      await expect(taken).rejects.toBeInstanceOf(CliError);
      await expect(taken).rejects.toThrow(`Cannot serve metrics on 127.0.0.1:${port}`);
    } finally {
      await server.close();
    }
  });
});
