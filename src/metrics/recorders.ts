/**
 * Which recorder belongs to which {@link Metrics} object: all a queue needs of metrics, in a
 * module that does not load OpenTelemetry, so that a queue without metrics (a plain
 * `oq worker`) never loads it.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import type { Metrics } from "./metrics.ts";
import type { MetricsRecorder } from "./recorder.ts";

const recorders = new WeakMap<Metrics, MetricsRecorder>();

/** Tie `recorder` to `metrics` (done once, by the `Metrics` constructor). */
export function setRecorder(metrics: Metrics, recorder: MetricsRecorder): void {
  recorders.set(metrics, recorder);
}

/** The recorder behind `metrics` (for the queue that records into it). */
export function recorderOf(metrics: Metrics): MetricsRecorder {
  const recorder = recorders.get(metrics);
  if (recorder === undefined) throw new ValidationError("metrics: not an oq Metrics object.");
  return recorder;
}
