/**
 * The overview: per task type, live counts from the ready index and finished counts from the
 * workers' heartbeats, from one `queue.stats()` call; and the live workers.
 *
 * @module
 */
import type { TypeStats } from "../queue/stats.ts";
import { seriesChart } from "./charts.ts";
import { age } from "./format.ts";
import { actionButton } from "./forms.ts";
import { type Html, html } from "./html.ts";
import { page } from "./layout.ts";
import type { PageContext } from "./options.ts";

function typeRow(ctx: PageContext, s: TypeStats): Html {
  const tasks = (status?: string) => ctx.link("/tasks", { type: s.type, status });
  const hour = s.finished.lastHour;
  const day = s.finished.lastDay;
  return html`<tr>
<td><a href="${tasks()}">${s.type}</a>${s.paused ? html` <strong title="workers claim none of its tasks">PAUSED</strong>` : ""}${s.capped ? html` <span class="muted" title="more markers than counted: lower bounds">(capped)</span>` : ""}</td>
<td class="n"><a href="${tasks("pending")}">${s.pending.due + s.pending.delayed}</a></td>
<td class="n">${s.pending.due}</td>
<td class="n"><a href="${tasks("running")}">${s.running}</a></td>
<td class="n">${age(s.oldestDueAgeMs)}</td>
<td class="n"><a href="${tasks("failed")}">${hour.failed}</a> / ${day.failed}</td>
<td class="n">${hour.completed} / ${day.completed}</td>
<td class="n">${s.throughputPerMinute.toFixed(1)}</td>
<td>${seriesChart("last hour, per minute", s.series?.minutes ?? [])}</td>
<td>${seriesChart("last day, per hour", s.series?.hours ?? [])}</td>
<td>${actionButton(ctx, "/actions/replay-failed", "Replay failed", { type: s.type }, `Replay every failed ${s.type} task`)} ${pauseButton(ctx, s)}</td>
</tr>`;
}

/** Pause a type, or resume a paused one. */
function pauseButton(ctx: PageContext, s: TypeStats): Html {
  const path = `/types/${encodeURIComponent(s.type)}/${s.paused ? "resume" : "pause"}`;
  return s.paused
    ? actionButton(ctx, path, "Resume", {}, `Let workers claim ${s.type} tasks again`)
    : actionButton(ctx, path, "Pause", {}, `Stop workers claiming ${s.type} tasks`);
}

/** `GET /`: one `queue.stats()` call (about 7 requests; see docs/dashboard.md). */
export async function overviewPage(ctx: PageContext): Promise<Response> {
  const stats = await ctx.queue.stats({ series: true });
  const live = stats.workers.filter((w) => !w.stale).length;
  const refreshing = ctx.url.searchParams.get("refresh") === "on";
  const toggle = refreshing
    ? html`<a href="${ctx.link("/")}">Stop auto-refresh</a>`
    : html`<a href="${ctx.link("/", { refresh: "on" })}">Auto-refresh every ${ctx.options.refreshSeconds} s</a>`;
  const rows = stats.types.map((s) => typeRow(ctx, s));
  const body = html`<p>Server time ${stats.at}. <a href="${ctx.link("/workers")}">${live} live worker${live === 1 ? "" : "s"}</a>. ${toggle}</p>
${
  rows.length === 0
    ? html`<p class="muted">No tasks yet: nothing pending or running, nothing finished in the last day.</p>`
    : html`<table><thead><tr><th>Type</th><th>Pending</th><th>Due</th><th>Running</th><th>Oldest due</th><th>Failed 1 h / 24 h</th><th>Completed 1 h / 24 h</th><th>Per minute</th><th>Last hour</th><th>Last day</th><th></th></tr></thead><tbody>${rows}</tbody></table>`
}
${stats.capped ? html`<p class="muted">Some types have more markers than were counted: their live counts are lower bounds.</p>` : ""}
<p class="muted">Finished counts come from the workers' heartbeats and lag by up to one heartbeat; per minute is completed plus failed over the last 10 whole minutes.</p>`;
  return page(ctx, {
    title: "Overview",
    nav: "overview",
    body,
    ...(refreshing ? { refreshSeconds: ctx.options.refreshSeconds } : {}),
  });
}
