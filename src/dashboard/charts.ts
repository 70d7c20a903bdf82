/**
 * Small inline SVG charts, drawn on the server: finished tasks over time, a bar per minute or hour
 * split by terminal state. No script, no image request.
 *
 * @module
 */
import type { FinishedStatus } from "../keys.ts";
import type { FinishedTally } from "../queue/finished-counts.ts";
import { type Html, html } from "./html.ts";

const COLOURS: Record<FinishedStatus, string> = {
  completed: "#2e9e4f",
  failed: "#d33",
  cancelled: "#999",
  expired: "#c9a227",
};

/** The total of a tally. */
export function total(tally: FinishedTally): number {
  return tally.completed + tally.failed + tally.cancelled + tally.expired;
}

const BAR = 3;
const GAP = 1;
const CHART_HEIGHT = 24;

/**
 * Vertical bars over time, one per tally (oldest first), each a stack of its terminal states
 * (completed at the bottom, then failed, cancelled, expired), scaled to the largest total in
 * `tallies`; labelled with `label` and the totals.
 */
export function seriesChart(label: string, tallies: readonly FinishedTally[]): Html {
  const max = Math.max(0, ...tallies.map(total));
  const sum = (state: FinishedStatus) => tallies.reduce((n, t) => n + t[state], 0);
  const summary = `${label}: ${sum("completed")} completed, ${sum("failed")} failed, ${sum("cancelled")} cancelled, ${sum("expired")} expired`;
  const rects: Html[] = [];
  tallies.forEach((tally, i) => {
    let y = CHART_HEIGHT;
    for (const state of Object.keys(COLOURS) as FinishedStatus[]) {
      const h = max <= 0 ? 0 : (tally[state] / max) * CHART_HEIGHT;
      if (h <= 0) continue;
      y -= h;
      rects.push(
        html`<rect x="${i * (BAR + GAP)}" y="${y.toFixed(1)}" width="${BAR}" height="${Math.max(h, 0.5).toFixed(1)}" fill="${COLOURS[state]}"/>`,
      );
    }
  });
  const width = tallies.length * (BAR + GAP);
  return html`<svg class="series" width="${width}" height="${CHART_HEIGHT}" viewBox="0 0 ${width} ${CHART_HEIGHT}" role="img" aria-label="${summary}"><title>${summary}</title><rect x="0" y="${CHART_HEIGHT - 1}" width="${width}" height="1" fill="#ccc"/>${rects}</svg>`;
}
