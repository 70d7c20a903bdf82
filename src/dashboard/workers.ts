/**
 * The workers: every heartbeat under `workers/` (live and stale), as `oq workers` shows them.
 *
 * @module
 */
import { readWorkers, type WorkerInfo } from "../queue/workers.ts";
import { when } from "./format.ts";
import { type Html, html } from "./html.ts";
import { page } from "./layout.ts";
import type { PageContext } from "./options.ts";

function row(ctx: PageContext, w: WorkerInfo, now: number): Html {
  const active = w.active.map(
    (id, i) =>
      html`${i > 0 ? ", " : ""}<a href="${ctx.link(`/tasks/${encodeURIComponent(id)}`)}">${id}</a>`,
  );
  const counters =
    w.stats === null
      ? ""
      : Object.entries(w.stats)
          .filter(([, n]) => typeof n === "number" && n > 0)
          .map(([k, n]) => `${k} ${n}`)
          .join(", ");
  return html`<tr><td>${w.id}</td><td>${w.types.length === 0 ? html`<span class="muted">(monitor)</span>` : w.types.join(", ")}</td>
<td class="n">${w.active.length}/${w.concurrency ?? "?"}</td><td>${active}</td><td>${when(w.startedAt, now)}</td>
<td>${when(w.seenAt, now)}</td><td>${w.stale ? html`<span class="s-failed">stale</span>` : html`<span class="s-completed">live</span>`}</td><td>${counters}</td></tr>`;
}

/** `GET /workers`: one LIST of `workers/` and one GET per heartbeat. */
export async function workersPage(ctx: PageContext): Promise<Response> {
  const workers = await readWorkers(ctx.queue);
  const now = ctx.options.now();
  const body =
    workers.length === 0
      ? html`<p class="muted">No worker has a heartbeat in this queue.</p>`
      : html`<table><thead><tr><th>Id</th><th>Types</th><th>Busy</th><th>Running</th><th>Started</th><th>Heartbeat</th><th>State</th><th>Counters</th></tr></thead><tbody>${workers.map((w) => row(ctx, w, now))}</tbody></table>
<p class="muted">Stale: no heartbeat for 3 of its intervals; it likely died without deleting its heartbeat (deleted after a day).</p>`;
  return page(ctx, { title: "Workers", nav: "workers", body });
}
