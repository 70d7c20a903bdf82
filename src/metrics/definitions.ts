/**
 * Every metric oq records, defined once: its OpenTelemetry name, kind, unit and description.
 * The OpenTelemetry instruments and the Prometheus text output are both made from this table
 * (docs/metrics.md lists it for users), so the two can never disagree on what exists.
 *
 * @module
 */

/** The attribute naming a task's type. */
export const TASK_TYPE = "oq.task.type";
/** The attribute naming how an attempt ended (`completed`, `retried`, `failed`, `cancelled`). */
export const TASK_OUTCOME = "oq.task.outcome";
/** The attribute naming a live task's state in the depth gauge (`due`, `delayed`, `running`). */
export const TASK_STATE = "oq.task.state";
/** The attribute naming a storage request's kind (`GET`, `PUT`, `LIST`, ...). */
export const REQUEST_KIND = "oq.storage.request.kind";

/** What an instrument measures: a monotonic sum, a distribution, or a value read when collected. */
export type MetricKind = "counter" | "histogram" | "gauge";

/** One metric: how it is named, measured and explained. */
export interface MetricDefinition {
  /** The OpenTelemetry instrument name (Prometheus: dots become `_`, plus unit and `_total`). */
  readonly name: string;
  readonly kind: MetricKind;
  /** UCUM unit: `s` for seconds, `{task}`-style annotations for counts. */
  readonly unit: string;
  readonly description: string;
  /** The attributes it carries. */
  readonly attributes: readonly string[];
  /** Bucket upper bounds of a histogram, ascending (an implicit `+Inf` follows). */
  readonly buckets?: readonly number[];
}

/**
 * Histogram buckets in seconds, from a quick handler (5 ms) to an hour-long one; used for run
 * time and wait alike (a wait is at least a poll's pause, up to 6 s when idle).
 */
export const SECONDS_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];

const taskCounter = (what: string, description: string): MetricDefinition => ({
  name: `oq.tasks.${what}`,
  kind: "counter",
  unit: "{task}",
  description,
  attributes: [TASK_TYPE],
});

/** The metrics, by the key the recorder uses. */
export const METRICS = {
  submitted: taskCounter(
    "submitted",
    "Tasks submitted (an idempotent submit of a known key not counted).",
  ),
  claimed: taskCounter("claimed", "Attempts started: tasks claimed by a worker."),
  completed: taskCounter("completed", "Tasks that ended completed."),
  failed: taskCounter("failed", "Tasks that ended failed (the dead-letter state)."),
  retried: taskCounter("retried", "Failed attempts given another try after a backoff."),
  expired: taskCounter(
    "expired",
    "Tasks that ended expired: their TTL ran out before they started.",
  ),
  cancelled: taskCounter("cancelled", "Tasks that ended cancelled."),
  leaseExpired: taskCounter(
    "lease_expired",
    "Running tasks recovered by a monitor after their worker's lease ran out.",
  ),
  runTime: {
    name: "oq.task.run.duration",
    kind: "histogram",
    unit: "s",
    description: "How long attempts ran, from claim to outcome, by the storage server's clock.",
    attributes: [TASK_TYPE, TASK_OUTCOME],
    buckets: SECONDS_BUCKETS,
  },
  wait: {
    name: "oq.task.wait.duration",
    kind: "histogram",
    unit: "s",
    description:
      "How long due tasks waited to start: from when they became available (submitted, or due after a delay or a backoff) to their claim, by the storage server's clock.",
    attributes: [TASK_TYPE],
    buckets: SECONDS_BUCKETS,
  },
  depth: {
    name: "oq.queue.depth",
    kind: "gauge",
    unit: "{task}",
    description:
      "Live tasks by state: due (may start now), delayed (due later or in a backoff), running. From queue.stats(), at most once per depthIntervalSeconds.",
    attributes: [TASK_TYPE, TASK_STATE],
  },
  oldestDueAge: {
    name: "oq.queue.oldest_due_age",
    kind: "gauge",
    unit: "s",
    description:
      "Seconds since the oldest due task became due (0 when none is due). From queue.stats().",
    attributes: [TASK_TYPE],
  },
  requests: {
    name: "oq.storage.requests",
    kind: "counter",
    unit: "{request}",
    description: "Storage requests made, by kind: what the storage provider bills.",
    attributes: [REQUEST_KIND],
  },
} as const satisfies Record<string, MetricDefinition>;

/** The key of a metric in {@link METRICS}. */
export type MetricKey = keyof typeof METRICS;

/** The task counters' keys. */
export type TaskCounterKey =
  | "submitted"
  | "claimed"
  | "completed"
  | "failed"
  | "retried"
  | "expired"
  | "cancelled"
  | "leaseExpired";
