/**
 * The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` per metric,
 * counters ending in `_total`, histograms as cumulative `_bucket{le="..."}` series with `_sum`
 * and `_count`. Names follow the OpenTelemetry-to-Prometheus conventions, so a dashboard built
 * on an OpenTelemetry Prometheus exporter's output works on this one too.
 *
 * @module
 */
import type { MetricDefinition } from "./definitions.ts";
import type { HistogramSeries, Labels, MetricFamily, ValueSeries } from "./registry.ts";

/** The `Content-Type` of the text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A Prometheus metric or label name for an OpenTelemetry one: every other character becomes `_`. */
export function prometheusLabel(name: string): string {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_");
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

/**
 * The Prometheus name of a metric: dots to `_`, the unit as a suffix when it is a real one
 * (`s` → `_seconds`; `{task}` annotations add nothing), and `_total` for a counter.
 */
export function prometheusName(definition: MetricDefinition): string {
  const unit = definition.unit === "s" ? "_seconds" : "";
  const total = definition.kind === "counter" ? "_total" : "";
  return `${prometheusLabel(definition.name)}${unit}${total}`;
}

/** Render every family in the text format (families without series are left out). */
export function renderPrometheus(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const { definition, series } of families) {
    if (series.length === 0) continue;
    const name = prometheusName(definition);
    lines.push(`# HELP ${name} ${escapeHelp(definition.description)}`);
    lines.push(`# TYPE ${name} ${definition.kind}`);
    for (const s of series) {
      if (definition.kind === "histogram")
        lines.push(...histogramLines(name, definition.buckets ?? [], s as HistogramSeries));
      else lines.push(`${name}${labelText(s.labels)} ${number((s as ValueSeries).value)}`);
    }
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

function histogramLines(name: string, bounds: readonly number[], s: HistogramSeries): string[] {
  const lines: string[] = [];
  let cumulative = 0;
  for (const [i, bound] of [...bounds, Number.POSITIVE_INFINITY].entries()) {
    cumulative += s.counts[i] ?? 0;
    lines.push(`${name}_bucket${labelText(s.labels, { le: number(bound) })} ${cumulative}`);
  }
  lines.push(`${name}_sum${labelText(s.labels)} ${number(s.sum)}`);
  lines.push(`${name}_count${labelText(s.labels)} ${s.count}`);
  return lines;
}

function labelText(labels: Labels, extra: Labels = {}): string {
  const pairs = Object.entries({ ...labels, ...extra }).map(
    ([k, v]) => `${prometheusLabel(k)}="${escapeLabelValue(v)}"`,
  );
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** A label value with `\`, `"` and line feeds escaped, as the format requires. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text with `\` and line feeds escaped (quotes stay as they are there). */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value: Go's float syntax, with `+Inf`, `-Inf` and `NaN` spelled as the format wants. */
function number(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}
