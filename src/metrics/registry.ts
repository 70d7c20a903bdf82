/**
 * The in-process registry: the current value of every series oq recorded in this process, which
 * the Prometheus text output is rendered from. The recorder writes each event here and to the
 * OpenTelemetry instruments in the same call, so both see the same events.
 *
 * @module
 */
import type { MetricDefinition } from "./definitions.ts";

/** A series' labels: attribute name to value. */
export type Labels = Readonly<Record<string, string>>;

/** One series of a counter or gauge. */
export interface ValueSeries {
  labels: Labels;
  value: number;
}

/** One series of a histogram; `counts[i]` is observations in bucket `i` only (not cumulative). */
export interface HistogramSeries {
  labels: Labels;
  /** One count per bound of the definition's `buckets`, then one for `+Inf`. */
  counts: number[];
  sum: number;
  count: number;
}

/** A metric with its series, as rendered. */
export interface MetricFamily {
  definition: MetricDefinition;
  series: (ValueSeries | HistogramSeries)[];
}

/** The series of every metric, keyed by metric name, then by labels. */
export class MetricRegistry {
  readonly #definitions: readonly MetricDefinition[];
  readonly #series = new Map<string, Map<string, ValueSeries | HistogramSeries>>();

  /** A registry of these metrics, rendered in this order. */
  constructor(definitions: readonly MetricDefinition[]) {
    this.#definitions = definitions;
    for (const d of definitions) this.#series.set(d.name, new Map());
  }

  /** Add `value` to a counter's series. */
  add(definition: MetricDefinition, value: number, labels: Labels): void {
    const series = this.#of(definition);
    const key = labelKey(labels);
    const found = series.get(key) as ValueSeries | undefined;
    if (found === undefined) series.set(key, { labels, value });
    else found.value += value;
  }

  /** Record one observation in a histogram's series. */
  observe(definition: MetricDefinition, value: number, labels: Labels): void {
    const bounds = definition.buckets ?? [];
    const series = this.#of(definition);
    const key = labelKey(labels);
    let found = series.get(key) as HistogramSeries | undefined;
    if (found === undefined) {
      found = { labels, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
      series.set(key, found);
    }
    const bucket = bounds.findIndex((bound) => value <= bound);
    found.counts[bucket === -1 ? bounds.length : bucket]!++;
    found.sum += value;
    found.count++;
  }

  /** Replace every series of a gauge (a series not given is gone). */
  setGauge(definition: MetricDefinition, values: readonly ValueSeries[]): void {
    const series = this.#of(definition);
    series.clear();
    for (const v of values) series.set(labelKey(v.labels), { labels: v.labels, value: v.value });
  }

  /** The series of one metric. */
  series(definition: MetricDefinition): (ValueSeries | HistogramSeries)[] {
    return [...this.#of(definition).values()];
  }

  /** Every metric with its series, in definition order. */
  families(): MetricFamily[] {
    return this.#definitions.map((definition) => ({
      definition,
      series: this.series(definition),
    }));
  }

  #of(definition: MetricDefinition): Map<string, ValueSeries | HistogramSeries> {
    const series = this.#series.get(definition.name);
    if (series === undefined) throw new TypeError(`unknown metric ${definition.name}`);
    return series;
  }
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
