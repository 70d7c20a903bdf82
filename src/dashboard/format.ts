/**
 * How values look on the pages: times, ages, statuses, JSON. Everything returns {@link Html}
 * built by the escaping template.
 *
 * @module
 */
import { formatDuration } from "../duration.ts";
import type { TaskStatus } from "../task/record.ts";
import { type Html, html } from "./html.ts";

/** An ISO time with how long ago (or ahead) it is, or a dash. */
export function when(isoTime: string | null | undefined, now: number): Html {
  if (isoTime === null || isoTime === undefined) return html`<span class="muted">–</span>`;
  const at = Date.parse(isoTime);
  if (Number.isNaN(at)) return html`${isoTime}`;
  const delta = now - at;
  const rel = delta >= 0 ? `${formatDuration(delta)} ago` : `in ${formatDuration(-delta)}`;
  return html`<time datetime="${isoTime}" title="${isoTime}">${rel}</time>`;
}

/** A duration in ms, or a dash for `null`. */
export function age(ms: number | null): Html {
  return ms === null ? html`<span class="muted">–</span>` : html`${formatDuration(ms)}`;
}

/** A status, coloured. */
export function status(value: TaskStatus | string): Html {
  return html`<span class="s-${value}">${value}</span>`;
}

/** A JSON value pretty-printed in a `<pre>` (escaped like everything else). */
export function json(value: unknown): Html {
  let text: string;
  try {
    text = JSON.stringify(value, null, 2) ?? "undefined";
  } catch {
    text = String(value);
  }
  return html`<pre>${text}</pre>`;
}
