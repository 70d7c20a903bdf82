/**
 * The public face of metrics: {@link Metrics}, given to a queue with its `metrics` option, and
 * {@link metricsHandler}, the Prometheus endpoint. See docs/metrics.md for every metric.
 *
 * @module
 */
import { type MeterProvider, metrics as otelMetrics } from "@opentelemetry/api";
import { checkOptions, metricsOptionsSchema } from "../options.ts";
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from "./prometheus.ts";
import { MetricsRecorder } from "./recorder.ts";
import { recorderOf, setRecorder } from "./recorders.ts";

/** Options of {@link Metrics}. */
export interface MetricsOptions {
  /**
   * Where the OpenTelemetry instruments are created. Default: the global one of
   * `@opentelemetry/api` at the time the `Metrics` is constructed, which records nothing until
   * the application registers an SDK's provider (register it first). The Prometheus text of
   * {@link Metrics.prometheus} and {@link metricsHandler} works either way.
   */
  meterProvider?: MeterProvider;
  /**
   * The depth gauges (`oq.queue.depth`, `oq.queue.oldest_due_age`) come from `queue.stats()`,
   * about 7 requests (docs/protocol.md, "Stats"): it is called when metrics are collected (a
   * scrape, an exporter's interval) and at most once per this many seconds; collections in
   * between see the last values. It is never called when nothing collects. Default 15.
   */
  depthIntervalSeconds?: number;
}

/**
 * The metrics of one queue: counters of tasks submitted, claimed, completed, failed, retried,
 * expired and cancelled per type, histograms of run time and wait before start, the queue's depth,
 * and storage requests by kind (the storage bill). Pass it as the queue's `metrics` option
 * (`connect({ ..., metrics })` or `new Queue({ storage, metrics })`): everything that queue and
 * the workers built on it do in this process is recorded, into OpenTelemetry instruments (see
 * {@link MetricsOptions.meterProvider}) and into an in-process registry that
 * {@link metricsHandler} serves as Prometheus text. A queue without it records nothing and
 * costs nothing. Each process counts what it did itself; sum over processes (Prometheus:
 * `sum by (oq_task_type)`). One `Metrics` serves one queue.
 */
export class Metrics {
  constructor(options: MetricsOptions = {}) {
    // Strict: `depthIntervalSecond: 60` was dropped, leaving the default of 15 in force.
    const seconds =
      checkOptions(metricsOptionsSchema, options, "metrics options").depthIntervalSeconds ?? 15;
    // The provider as given: the checked copy of an object is a plain object, without methods.
    const provider = options.meterProvider ?? otelMetrics.getMeterProvider();
    setRecorder(this, new MetricsRecorder(provider, seconds * 1000));
  }

  /**
   * Every metric of this process in the Prometheus text exposition format 0.0.4, the depth
   * gauges refreshed first when they are older than `depthIntervalSeconds`.
   */
  async prometheus(): Promise<string> {
    const recorder = recorderOf(this);
    await recorder.refreshDepth();
    return renderPrometheus(recorder.registry.families());
  }
}

/**
 * A web-standard handler, `(request) => Promise<Response>`, answering GET (and HEAD) with
 * {@link Metrics.prometheus} as `text/plain; version=0.0.4`, for Prometheus to scrape. It serves
 * whatever path it is mounted at (`oq dashboard` and `oq worker --metrics-port` mount it at
 * `/metrics`); other methods get 405. Mount it in any server that takes a web-standard
 * handler (Bun's or Deno's `serve`, a Worker's `fetch`), or on Node through an adapter. It has no authentication: serve it on a private address.
 */
export function metricsHandler(metrics: Metrics): (request: Request) => Promise<Response> {
  recorderOf(metrics);
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD")
      return new Response("Method Not Allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" },
      });
    const text = await metrics.prometheus();
    return new Response(request.method === "HEAD" ? null : text, {
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" },
    });
  };
}
