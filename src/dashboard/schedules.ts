/**
 * The schedules, with pause (disable), resume (enable) and trigger (submit its task now).
 *
 * @module
 */
import type { ScheduleInfo } from "../schedule/record.ts";
import { Scheduler } from "../schedule/scheduler.ts";
import { when } from "./format.ts";
import { actionButton } from "./forms.ts";
import { type Html, html } from "./html.ts";
import { page } from "./layout.ts";
import type { PageContext } from "./options.ts";

function row(ctx: PageContext, s: ScheduleInfo, now: number): Html {
  const path = `/schedules/${encodeURIComponent(s.id)}`;
  const toggle = s.enabled
    ? actionButton(ctx, `${path}/pause`, "Pause")
    : actionButton(ctx, `${path}/resume`, "Resume");
  const last =
    s.lastTaskId === null
      ? html`<span class="muted">–</span>`
      : html`<a href="${ctx.link(`/tasks/${encodeURIComponent(s.lastTaskId)}`)}">${when(s.lastSlot, now)}</a>`;
  return html`<tr><td>${s.id}</td><td><a href="${ctx.link("/tasks", { type: s.type })}">${s.type}</a></td>
<td><code>${s.cron}</code> <span class="muted">${s.timezone}</span></td><td>${s.enabled ? html`<span class="s-completed">enabled</span>` : html`<span class="s-pending">paused</span>`}</td>
<td>${when(s.nextRunAt, now)}</td><td>${last}</td><td>${toggle} ${actionButton(ctx, `${path}/trigger`, "Trigger now")}</td></tr>`;
}

/** `GET /schedules`: one LIST of `schedules/` and one GET per schedule. */
export async function schedulesPage(ctx: PageContext): Promise<Response> {
  const schedules = await new Scheduler(ctx.queue).list();
  const now = ctx.options.now();
  const body =
    schedules.length === 0
      ? html`<p class="muted">No schedules. Create one with: oq schedule create ID -t TYPE -c "0 9 * * *"</p>`
      : html`<table><thead><tr><th>Id</th><th>Type</th><th>Cron</th><th>State</th><th>Next run</th><th>Last run</th><th></th></tr></thead><tbody>${schedules.map((s) => row(ctx, s, now))}</tbody></table>
<p class="muted">A paused schedule fires no slot, and the slots that fall while it is paused never fire. Trigger submits its task now, also when paused.</p>`;
  return page(ctx, { title: "Schedules", nav: "schedules", body });
}
