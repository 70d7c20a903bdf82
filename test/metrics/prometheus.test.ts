/**
 * The Prometheus text exposition format (0.0.4) rendered from the in-process registry: names,
 * escaping, cumulative histogram buckets; and the pure mapping from task writes to metrics.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { METRICS, type MetricDefinition } from "../../src/metrics/definitions.ts";
import {
  escapeLabelValue,
  prometheusName,
  renderPrometheus,
} from "../../src/metrics/prometheus.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { observeTaskWrite } from "../../src/metrics/task-events.ts";
import {
  claimTask,
  completeTask,
  expireLease,
  failAttempt,
  releaseTask,
} from "../../src/task/transitions.ts";
import { ROOT } from "../helpers/cli.ts";
import { makeTask, T0 } from "../helpers/task.ts";

const histogram: MetricDefinition = {
  name: "test.run.duration",
  kind: "histogram",
  unit: "s",
  description: "A test histogram.",
  attributes: ["oq.task.type"],
  buckets: [0.1, 1, 10],
};

describe("Prometheus text", () => {
  it("names metrics as an OpenTelemetry Prometheus exporter would", () => {
    expect(prometheusName(METRICS.completed)).toBe("oq_tasks_completed_total");
    expect(prometheusName(METRICS.requests)).toBe("oq_storage_requests_total");
    expect(prometheusName(METRICS.runTime)).toBe("oq_task_run_duration_seconds");
    expect(prometheusName(METRICS.depth)).toBe("oq_queue_depth");
    expect(prometheusName(METRICS.oldestDueAge)).toBe("oq_queue_oldest_due_age_seconds");
  });

  it("renders a counter with HELP, TYPE, _total and its labels", () => {
    const registry = new MetricRegistry([METRICS.completed]);
    registry.add(METRICS.completed, 1, { "oq.task.type": "email" });
    registry.add(METRICS.completed, 2, { "oq.task.type": "email" });
    registry.add(METRICS.completed, 1, { "oq.task.type": "video" });
    expect(renderPrometheus(registry.families())).toBe(
      [
        "# HELP oq_tasks_completed_total Tasks that ended completed.",
        "# TYPE oq_tasks_completed_total counter",
        'oq_tasks_completed_total{oq_task_type="email"} 3',
        'oq_tasks_completed_total{oq_task_type="video"} 1',
        "",
      ].join("\n"),
    );
  });

  it("escapes backslashes, quotes and line feeds in label values, and in HELP text", () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const odd: MetricDefinition = {
      name: "test.counter",
      kind: "counter",
      unit: "1",
      description: 'Two lines\nwith a \\ and "quotes".',
      attributes: ["label.name"],
    };
    const registry = new MetricRegistry([odd]);
    registry.add(odd, 1, { "label.name": 'say "hi"\\\n' });
    expect(renderPrometheus(registry.families())).toBe(
      [
        '# HELP test_counter_total Two lines\\nwith a \\\\ and "quotes".',
        "# TYPE test_counter_total counter",
        'test_counter_total{label_name="say \\"hi\\"\\\\\\n"} 1',
        "",
      ].join("\n"),
    );
  });

  it("renders histogram buckets cumulatively, with +Inf, _sum and _count", () => {
    const registry = new MetricRegistry([histogram]);
    for (const v of [0.05, 0.1, 0.5, 5, 5, 50])
      registry.observe(histogram, v, { "oq.task.type": "t" });
    expect(renderPrometheus(registry.families())).toBe(
      [
        "# HELP test_run_duration_seconds A test histogram.",
        "# TYPE test_run_duration_seconds histogram",
        'test_run_duration_seconds_bucket{oq_task_type="t",le="0.1"} 2',
        'test_run_duration_seconds_bucket{oq_task_type="t",le="1"} 3',
        'test_run_duration_seconds_bucket{oq_task_type="t",le="10"} 5',
        'test_run_duration_seconds_bucket{oq_task_type="t",le="+Inf"} 6',
        'test_run_duration_seconds_sum{oq_task_type="t"} 60.65',
        'test_run_duration_seconds_count{oq_task_type="t"} 6',
        "",
      ].join("\n"),
    );
  });

  it("leaves out metrics without series, and replaces a gauge's series wholesale", () => {
    const registry = new MetricRegistry([METRICS.completed, METRICS.depth]);
    expect(renderPrometheus(registry.families())).toBe("");
    registry.setGauge(METRICS.depth, [
      { labels: { "oq.task.type": "a", "oq.task.state": "due" }, value: 4 },
      { labels: { "oq.task.type": "b", "oq.task.state": "due" }, value: 1 },
    ]);
    registry.setGauge(METRICS.depth, [
      { labels: { "oq.task.type": "a", "oq.task.state": "due" }, value: 2 },
    ]);
    expect(renderPrometheus(registry.families())).toContain(
      '# TYPE oq_queue_depth gauge\noq_queue_depth{oq_task_type="a",oq_task_state="due"} 2\n',
    );
    expect(renderPrometheus(registry.families())).not.toContain('"b"');
  });
});

describe("docs/metrics.md", () => {
  it("lists every metric with its OpenTelemetry and Prometheus names, unit and attributes", () => {
    const doc = readFileSync(`${ROOT}/docs/metrics.md`, "utf8");
    for (const d of Object.values(METRICS) as MetricDefinition[]) {
      const row = doc.split("\n").find((line) => line.startsWith(`| \`${d.name}\``));
      expect(row, d.name).toBeDefined();
      expect(row).toContain(`\`${prometheusName(d)}\``);
      expect(row).toContain(` ${d.kind} `);
      expect(row).toContain(`\`${d.unit}\``);
      for (const a of d.attributes) expect(row).toContain(`\`${a}\``);
    }
  });
});

describe("what a task write records", () => {
  const claim = (task = makeTask(), at = T0 + 2000) =>
    claimTask(task, { workerId: "w", token: "tok", leaseMs: 60_000, now: at });

  it("counts a submit, a claim with its wait, and a completion with its run time", () => {
    const task = makeTask();
    expect(observeTaskWrite(null, task)).toEqual({ counters: ["submitted"] });
    const running = claim(task);
    expect(observeTaskWrite(task, running)).toEqual({ counters: ["claimed"], waitSeconds: 2 });
    const done = completeTask(running, "tok", 1, T0 + 2500);
    expect(observeTaskWrite(running, done)).toEqual({
      counters: ["completed"],
      run: { seconds: 0.5, outcome: "completed" },
    });
  });

  it("counts a retry and a final failure, each with its run", () => {
    const running = claim();
    const retry = failAttempt(running, "tok", { name: "E", message: "m" }, T0 + 3000, 0);
    expect(observeTaskWrite(running, retry)).toEqual({
      counters: ["retried"],
      run: { seconds: 1, outcome: "retried" },
    });
    const permanent = failAttempt(
      running,
      "tok",
      { name: "E", message: "m", permanent: true },
      T0 + 3000,
      0,
    );
    expect(observeTaskWrite(running, permanent)).toEqual({
      counters: ["failed"],
      run: { seconds: 1, outcome: "failed" },
    });
  });

  it("counts a lease recovery without a run time (when the attempt stopped is unknown)", () => {
    const running = claim();
    const recovered = expireLease(running, T0 + 120_000, 0);
    expect(observeTaskWrite(running, recovered)).toEqual({ counters: ["leaseExpired"] });
    const last = claim(makeTask({ maxRetries: 0 }));
    expect(observeTaskWrite(last, expireLease(last, T0 + 120_000, 0))).toEqual({
      counters: ["failed"],
    });
  });

  it("measures the run of an attempt that took over a lapsed lease, and no wait for it", () => {
    const first = claim();
    const takeover = claim(first, T0 + 120_000);
    expect(observeTaskWrite(first, takeover)).toEqual({ counters: ["claimed"] });
    const done = completeTask(takeover, "tok", 1, T0 + 121_000);
    expect(observeTaskWrite(takeover, done).run).toEqual({ seconds: 1, outcome: "completed" });
  });

  it("records nothing for a release, nor for a write that is no transition (repair)", () => {
    const running = claim();
    expect(observeTaskWrite(running, releaseTask(running, "tok", T0 + 2500))).toEqual({
      counters: [],
    });
    const reindexed = { ...running, updatedAt: new Date(T0 + 9000).toISOString() };
    expect(observeTaskWrite(running, reindexed)).toEqual({ counters: [] });
    const sameMs = { ...running, updatedAt: running.updatedAt, marker: "ready/other.2" };
    expect(observeTaskWrite(running, sameMs)).toEqual({ counters: [] });
  });

  it("counts a completion written in the same millisecond as its claim", () => {
    const running = claim();
    const done = completeTask(running, "tok", 1, T0 + 2000);
    expect(observeTaskWrite(running, done)).toEqual({
      counters: ["completed"],
      run: { seconds: 0, outcome: "completed" },
    });
  });
});
