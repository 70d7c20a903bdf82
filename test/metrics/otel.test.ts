/**
 * Metrics through OpenTelemetry: a tiny MeterProvider written here against the interfaces of
 * `@opentelemetry/api` (no SDK) records what oq's instruments get while a worker on memory and
 * on MinIO processes tasks that complete, fail, are retried, cancelled and expire; the
 * Prometheus text, rendered from the same recorder, agrees.
 */
import type {
  BatchObservableCallback,
  Counter,
  Histogram,
  Meter,
  MeterProvider,
  MetricAttributes,
  Observable,
} from "@opentelemetry/api";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Metrics, metricsHandler } from "../../src/metrics/metrics.ts";
import { Queue } from "../../src/queue/queue.ts";
import { type CountedStorage, countRequests } from "../../src/storage/count.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { PermanentError, Worker } from "../../src/worker/worker.ts";
import { memoryTarget, s3Target, type TargetInstance } from "../helpers/targets.ts";
import { fast, pause } from "../helpers/wait.ts";

interface Recorded {
  value: number;
  attributes: MetricAttributes;
}

/** A MeterProvider that keeps every measurement, and runs the observable callbacks on demand. */
class RecordingMeterProvider implements MeterProvider {
  readonly measurements = new Map<string, Recorded[]>();
  readonly units = new Map<string, string | undefined>();
  readonly #observables = new Map<Observable, string>();
  readonly #callbacks: BatchObservableCallback[] = [];

  getMeter(): Meter {
    const record =
      (name: string) =>
      (value: number, attributes: MetricAttributes = {}) => {
        const list = this.measurements.get(name) ?? [];
        list.push({ value, attributes });
        this.measurements.set(name, list);
      };
    const instrument = (name: string, unit: string | undefined) => {
      this.units.set(name, unit);
      return { add: record(name), record: record(name) } as Counter & Histogram;
    };
    const observable = (name: string, unit: string | undefined): Observable => {
      this.units.set(name, unit);
      const o: Observable = { addCallback() {}, removeCallback() {} };
      this.#observables.set(o, name);
      return o;
    };
    return {
      createCounter: (name, o) => instrument(name, o?.unit),
      createUpDownCounter: (name, o) => instrument(name, o?.unit),
      createHistogram: (name, o) => instrument(name, o?.unit),
      createGauge: (name, o) => instrument(name, o?.unit),
      createObservableGauge: (name, o) => observable(name, o?.unit),
      createObservableCounter: (name, o) => observable(name, o?.unit),
      createObservableUpDownCounter: (name, o) => observable(name, o?.unit),
      addBatchObservableCallback: (callback) => {
        this.#callbacks.push(callback);
      },
      removeBatchObservableCallback: () => {},
    };
  }

  /** Run the observable callbacks as an SDK's collection would; what each gauge observed. */
  async collect(): Promise<Map<string, Recorded[]>> {
    const seen = new Map<string, Recorded[]>();
    for (const callback of this.#callbacks) {
      await callback({
        observe: (o, value, attributes = {}) => {
          const name = this.#observables.get(o)!;
          seen.set(name, [...(seen.get(name) ?? []), { value, attributes }]);
        },
      });
    }
    return seen;
  }

  /** Sum of a counter's measurements per value of `attribute`. */
  sums(name: string, attribute = "oq.task.type"): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of this.measurements.get(name) ?? []) {
      const key = String(m.attributes[attribute]);
      out[key] = (out[key] ?? 0) + m.value;
    }
    return out;
  }
}

const at = (seen: Recorded[] | undefined, attributes: MetricAttributes) =>
  seen?.find((r) => Object.entries(attributes).every(([k, v]) => r.attributes[k] === v))?.value;

for (const target of [memoryTarget, ...(s3Target ? [s3Target] : [])]) {
  describe(`metrics on ${target.name}`, () => {
    let env: TargetInstance;
    let worker: Worker | undefined;
    beforeEach(async () => {
      env = await target.create();
    });
    afterEach(async () => {
      await worker?.stop();
      worker = undefined;
      await env.cleanup();
    });

    it("records submits, claims, outcomes, retries, a cancel and an expiry into OpenTelemetry and Prometheus", async () => {
      const provider = new RecordingMeterProvider();
      const metrics = new Metrics({ meterProvider: provider, depthIntervalSeconds: 0 });
      const counted: CountedStorage = countRequests(env.storage);
      const queue = new Queue({ storage: counted, prefix: env.prefix, metrics });
      const backoff = { initialSeconds: 0.05, maxSeconds: 0.1 };
      const tasks = await queue.submitMany([
        { type: "ok", input: 1 },
        { type: "ok", input: 2 },
        { type: "flaky", options: { backoff } },
        { type: "bad" },
        { type: "ok", options: { delay: 3600 } },
        { type: "nobody-runs-this", options: { ttlSeconds: 0.3 } },
      ]);
      const gauges = await provider.collect();
      expect(
        at(gauges.get("oq.queue.depth"), { "oq.task.type": "ok", "oq.task.state": "due" }),
      ).toBe(2);
      expect(
        at(gauges.get("oq.queue.depth"), { "oq.task.type": "ok", "oq.task.state": "delayed" }),
      ).toBe(1);
      expect(
        at(gauges.get("oq.queue.depth"), { "oq.task.type": "bad", "oq.task.state": "running" }),
      ).toBe(0);
      expect(gauges.get("oq.queue.oldest_due_age")?.length).toBe(4);
      expect(await metrics.prometheus()).toContain(
        'oq_queue_depth{oq_task_type="ok",oq_task_state="due"} 2\n',
      );

      await queue.cancel(tasks[4]!.id);
      await pause(1500); // the TTL's second in the marker key has passed
      worker = new Worker(queue, fast)
        .task("ok", (input) => input)
        .task("flaky", (_input, ctx) => {
          if (ctx.attempt === 1) throw new Error("busy");
          return "ok";
        })
        .task("bad", () => {
          throw new PermanentError("never");
        });
      await worker.start();
      const ends = await Promise.all(tasks.map((t) => queue.wait(t.id, { timeout: 30 })));
      expect(ends.map((t) => t.status)).toEqual([
        "completed",
        "completed",
        "completed",
        "failed",
        "cancelled",
        "expired",
      ]);
      await worker.stop();

      expect(provider.sums("oq.tasks.submitted")).toEqual({
        ok: 3,
        flaky: 1,
        bad: 1,
        "nobody-runs-this": 1,
      });
      expect(provider.sums("oq.tasks.claimed")).toEqual({ ok: 2, flaky: 2, bad: 1 });
      expect(provider.sums("oq.tasks.completed")).toEqual({ ok: 2, flaky: 1 });
      expect(provider.sums("oq.tasks.failed")).toEqual({ bad: 1 });
      expect(provider.sums("oq.tasks.retried")).toEqual({ flaky: 1 });
      expect(provider.sums("oq.tasks.cancelled")).toEqual({ ok: 1 });
      expect(provider.sums("oq.tasks.expired")).toEqual({ "nobody-runs-this": 1 });
      expect(provider.sums("oq.tasks.lease_expired")).toEqual({});

      const runs = provider.measurements.get("oq.task.run.duration") ?? [];
      expect(
        runs
          .map((r) => `${r.attributes["oq.task.type"]}:${r.attributes["oq.task.outcome"]}`)
          .sort(),
      ).toEqual(["bad:failed", "flaky:completed", "flaky:retried", "ok:completed", "ok:completed"]);
      const waits = provider.measurements.get("oq.task.wait.duration") ?? [];
      expect(waits.length).toBe(5);
      for (const m of [...runs, ...waits]) {
        expect(m.value).toBeGreaterThanOrEqual(0);
        expect(m.value).toBeLessThan(30);
      }
      expect(provider.units.get("oq.task.run.duration")).toBe("s");

      // Every request the queue and its worker made, by kind: the wrapper below agrees exactly.
      const requests = provider.sums("oq.storage.requests", "oq.storage.request.kind");
      for (const [kind, n] of Object.entries(counted.counts)) expect(requests[kind] ?? 0).toBe(n);
      expect(requests.PUT).toBeGreaterThan(0);

      // The Prometheus text comes from the same recorder.
      const response = await metricsHandler(metrics)(new Request("http://oq/metrics"));
      expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const text = await response.text();
      expect(text).toContain('oq_tasks_completed_total{oq_task_type="ok"} 2\n');
      expect(text).toContain('oq_tasks_retried_total{oq_task_type="flaky"} 1\n');
      expect(text).toContain(
        'oq_task_run_duration_seconds_count{oq_task_type="ok",oq_task_outcome="completed"} 2\n',
      );
      expect(text).toContain(
        `oq_storage_requests_total{oq_storage_request_kind="PUT"} ${counted.counts.PUT}\n`,
      );
    });
  });
}

describe("metrics cost", () => {
  it("a queue without metrics uses its storage as given: no wrapper, nothing recorded", () => {
    const storage = new MemoryStorage();
    expect(new Queue({ storage }).storage).toBe(storage);
  });

  it("reads queue.stats() at most once per depthIntervalSeconds, and only when collected", async () => {
    const provider = new RecordingMeterProvider();
    let now = Date.parse("2026-11-30T12:00:00Z");
    // The storage shares the test's clock: the queue corrects its own clock by the server's.
    const storage = countRequests(new MemoryStorage({ now: () => now }));
    const queue = new Queue({
      storage,
      now: () => now,
      metrics: new Metrics({ meterProvider: provider, depthIntervalSeconds: 15 }),
    });
    await queue.submit("a");
    const lists = () => storage.counts.LIST;
    const before = lists();
    await pause(50);
    expect(lists()).toBe(before); // nothing collects: no stats()
    await provider.collect();
    const once = lists();
    expect(once).toBeGreaterThan(before);
    now += 14_000;
    await provider.collect();
    await metricsHandler(new Metrics({ meterProvider: provider }))(new Request("http://x/"));
    expect(lists()).toBe(once);
    now += 2000;
    const gauges = await provider.collect();
    expect(lists()).toBeGreaterThan(once);
    expect(at(gauges.get("oq.queue.depth"), { "oq.task.type": "a", "oq.task.state": "due" })).toBe(
      1,
    );
  });

  it("refuses a second queue on one Metrics, and a bad interval", () => {
    const metrics = new Metrics({ meterProvider: new RecordingMeterProvider() });
    new Queue({ storage: new MemoryStorage(), metrics });
    expect(() => new Queue({ storage: new MemoryStorage(), metrics })).toThrow(
      /one Metrics per queue/,
    );
    expect(() => new Metrics({ depthIntervalSeconds: -1 })).toThrow(/depthIntervalSeconds/);
  });

  it("answers only GET and HEAD", async () => {
    const handler = metricsHandler(new Metrics({ meterProvider: new RecordingMeterProvider() }));
    const post = await handler(new Request("http://x/metrics", { method: "POST" }));
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await handler(new Request("http://x/metrics", { method: "HEAD" }));
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });
});
