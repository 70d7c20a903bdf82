/**
 * `oq/metrics`: a queue's metrics, recorded into OpenTelemetry and served as Prometheus text.
 * Give a {@link Metrics} to a queue as its `metrics` option; serve it with
 * {@link metricsHandler} (or the dashboard's `metrics` option).
 *
 * ```ts
 * import { connect } from "oq";
 * import { Metrics, metricsHandler } from "oq/metrics";
 * const metrics = new Metrics();
 * const queue = await connect({ bucket: "jobs", env: process.env, metrics });
 * const serve = metricsHandler(metrics); // (request) => Promise<Response>, for /metrics
 * ```
 *
 * Portable like `oq`. An entry point of its own, apart from `oq`, because it brings the
 * OpenTelemetry API that a queue without metrics never uses: `oq` is imported by every worker's
 * tasks module, and everything it exports is loaded and compiled before the worker takes its
 * first task.
 *
 * @module
 */
export { Metrics, type MetricsOptions, metricsHandler } from "./src/metrics/metrics.ts";
