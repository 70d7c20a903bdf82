/**
 * Small inline SVG bars, drawn on the server: one bar per time window, split by terminal state,
 * scaled to the largest total shown so types compare at a glance. No script, no image request.
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

const WIDTH = 160;
const HEIGHT = 10;

/** The total of a tally. */
export function total(tally: FinishedTally): number {
  return tally.completed + tally.failed + tally.cancelled + tally.expired;
}

/**
 * One horizontal bar of `tally` (completed, failed, cancelled, expired left to right), its length
 * `total / max` of the full width, labelled for screen readers and on hover.
 */
export function tallyBar(label: string, tally: FinishedTally, max: number): Html {
  const summary = `${label}: ${tally.completed} completed, ${tally.failed} failed, ${tally.cancelled} cancelled, ${tally.expired} expired`;
  let x = 0;
  const rects: Html[] = [];
  for (const state of Object.keys(COLOURS) as FinishedStatus[]) {
    const w = max <= 0 ? 0 : (tally[state] / max) * WIDTH;
    if (w <= 0) continue;
    rects.push(
      html`<rect x="${x.toFixed(1)}" y="0" width="${Math.max(w, 1).toFixed(1)}" height="${HEIGHT}" fill="${COLOURS[state]}"/>`,
    );
    x += w;
  }
  return html`<svg class="bar" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${summary}"><title>${summary}</title><rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#eee"/>${rects}</svg>`;
}
