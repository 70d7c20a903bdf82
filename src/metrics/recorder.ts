/**
 * The metrics recorder: the one place oq's metrics are recorded. Every event goes, in one call,
 * to the OpenTelemetry instrument and to the in-process registry that the Prometheus text is
 * rendered from. Its inputs: the task store reports each task write it won
 * ({@link MetricsRecorder.onTaskWrite}), the storage wrapper each request
 * ({@link MetricsRecorder.observeStorage}), and `queue.stats()`, read when metrics are collected
 * and at most once per interval, gives the depth gauges.
 *
 * @module
 */
import type {
  BatchObservableResult,
  Counter,
  Histogram,
  MeterProvider,
  Observable,
} from "@opentelemetry/api";
import { ValidationError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { QueueStats } from "../queue/stats.ts";
import { observeRequests } from "../storage/count.ts";
import type { Storage } from "../storage/storage.ts";
import type { TaskRecord } from "../task/record.ts";
import { errorMessage } from "../util/errors.ts";
import { VERSION } from "../version.ts";
import {
  METRICS,
  type MetricDefinition,
  REQUEST_KIND,
  TASK_OUTCOME,
  TASK_STATE,
  TASK_TYPE,
} from "./definitions.ts";
import { type Labels, MetricRegistry, type ValueSeries } from "./registry.ts";
import { observeTaskWrite } from "./task-events.ts";

/** What the depth gauges read: the queue's stats, its local clock, where to warn. */
export interface DepthSource {
  stats(): Promise<QueueStats>;
  /** Local time in ms, for the interval between two `stats()` calls. */
  localNow(): number;
  logger: Logger;
}

/** Records oq's metrics into OpenTelemetry instruments and the in-process registry. */
export class MetricsRecorder {
  /** The current value of every series, for the Prometheus text. */
  readonly registry = new MetricRegistry(Object.values(METRICS));
  readonly #counters = new Map<string, Counter>();
  readonly #histograms = new Map<string, Histogram>();
  readonly #depthIntervalMs: number;
  #source: DepthSource | undefined;
  #depthAt: number | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(meterProvider: MeterProvider, depthIntervalMs: number) {
    this.#depthIntervalMs = depthIntervalMs;
    const meter = meterProvider.getMeter("oq", VERSION);
    const gauges = new Map<MetricDefinition, Observable>();
    for (const d of Object.values(METRICS) as MetricDefinition[]) {
      const options = { description: d.description, unit: d.unit };
      if (d.kind === "counter") this.#counters.set(d.name, meter.createCounter(d.name, options));
      else if (d.kind === "histogram")
        this.#histograms.set(
          d.name,
          meter.createHistogram(d.name, {
            ...options,
            advice: { explicitBucketBoundaries: [...(d.buckets ?? [])] },
          }),
        );
      else gauges.set(d, meter.createObservableGauge(d.name, options));
    }
    meter.addBatchObservableCallback(
      async (result: BatchObservableResult) => {
        await this.refreshDepth();
        for (const [d, gauge] of gauges)
          for (const s of this.registry.series(d) as ValueSeries[])
            result.observe(gauge, s.value, s.labels);
      },
      [...gauges.values()],
    );
  }

  /** Read queue depth from `source` from now on. A recorder serves one queue. */
  bind(source: DepthSource): void {
    if (this.#source !== undefined)
      throw new ValidationError(
        "This Metrics object already records another queue's metrics; create one Metrics per queue.",
      );
    this.#source = source;
  }

  /** `inner`, with every request counted in `oq.storage.requests`. */
  observeStorage(inner: Storage): Storage {
    return observeRequests(inner, (kind) => {
      try {
        this.#add(METRICS.requests, { [REQUEST_KIND]: kind });
      } catch {
        // A request is made whatever a metrics exporter thinks of it.
      }
    });
  }

  /** The task store won the write of `after` over `before` (`null`: a new task). Never throws. */
  onTaskWrite(before: TaskRecord | null, after: TaskRecord): void {
    try {
      const seen = observeTaskWrite(before, after);
      const labels = { [TASK_TYPE]: after.type };
      for (const counter of seen.counters) this.#add(METRICS[counter], labels);
      if (seen.waitSeconds !== undefined) this.#observe(METRICS.wait, seen.waitSeconds, labels);
      if (seen.run !== undefined)
        this.#observe(METRICS.runTime, seen.run.seconds, {
          ...labels,
          [TASK_OUTCOME]: seen.run.outcome,
        });
    } catch {
      // Metrics must never break task processing (an exporter's bug included).
    }
  }

  /**
   * Bring the depth gauges up to date: one `queue.stats()` when the last is older than the
   * interval, shared by callers meanwhile. A failed call keeps the previous values (with a
   * warning) and is not retried before the interval has passed.
   */
  refreshDepth(): Promise<void> {
    const source = this.#source;
    if (source === undefined) return Promise.resolve();
    if (this.#refreshing !== undefined) return this.#refreshing;
    const now = source.localNow();
    if (this.#depthAt !== undefined && now - this.#depthAt < this.#depthIntervalMs)
      return Promise.resolve();
    this.#depthAt = now;
    this.#refreshing = source
      .stats()
      .then(
        (stats) => this.#setDepth(stats),
        (error) =>
          source.logger.warn(`metrics: could not read queue depth: ${errorMessage(error)}`),
      )
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  #setDepth(stats: QueueStats): void {
    const depth: ValueSeries[] = [];
    const oldest: ValueSeries[] = [];
    for (const t of stats.types) {
      const state = (name: string, value: number) =>
        depth.push({ labels: { [TASK_TYPE]: t.type, [TASK_STATE]: name }, value });
      state("due", t.pending.due);
      state("delayed", t.pending.delayed);
      state("running", t.running);
      oldest.push({ labels: { [TASK_TYPE]: t.type }, value: (t.oldestDueAgeMs ?? 0) / 1000 });
    }
    this.registry.setGauge(METRICS.depth, depth);
    this.registry.setGauge(METRICS.oldestDueAge, oldest);
  }

  #add(definition: MetricDefinition, labels: Labels): void {
    this.registry.add(definition, 1, labels);
    this.#counters.get(definition.name)?.add(1, labels);
  }

  #observe(definition: MetricDefinition, value: number, labels: Labels): void {
    this.registry.observe(definition, value, labels);
    this.#histograms.get(definition.name)?.record(value, labels);
  }
}
