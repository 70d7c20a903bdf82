/**
 * The task list: `queue.list()` through the indexes with the filters of the query string, a page
 * at a time (the next page through its cursor).
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import type { TaskRecord } from "../task/record.ts";
import { DEFAULT_SINCE, type Filters, listOptions, readFilters, STATUSES } from "./filters.ts";
import { status, when } from "./format.ts";
import { actionButton } from "./forms.ts";
import { type Html, html } from "./html.ts";
import { page, problemPage } from "./layout.ts";
import type { PageContext } from "./options.ts";

function filterForm(ctx: PageContext, f: Filters): Html {
  const options = ["", ...STATUSES].map(
    (s) =>
      html`<option value="${s}"${s === f.status ? " selected" : ""}>${s === "" ? "all" : s}</option>`,
  );
  return html`<form class="filters" method="get" action="${ctx.link("/tasks")}">
<label>Status <select name="status">${options}</select></label>
<label>Type <input name="type" value="${f.type}" size="14"></label>
<label>Since <input name="since" value="${f.since}" placeholder="${DEFAULT_SINCE}, 7d, all or a date" size="18"></label>
<label>Until <input name="until" value="${f.until}" placeholder="a date or 1h" size="18"></label>
<button type="submit">Filter</button></form>`;
}

function taskRow(ctx: PageContext, t: TaskRecord, now: number): Html {
  const error = t.lastError === null ? "" : `${t.lastError.name}: ${t.lastError.message}`;
  return html`<tr><td><a href="${ctx.link(`/tasks/${encodeURIComponent(t.id)}`)}">${t.id}</a></td>
<td><a href="${ctx.link("/tasks", { type: t.type })}">${t.type}</a></td><td>${status(t.status)}</td>
<td class="n">${t.attempt}/${t.maxRetries + 1}</td><td>${when(t.createdAt, now)}</td>
<td>${when(t.finishedAt ?? t.availableAt, now)}</td><td>${error.length > 120 ? `${error.slice(0, 119)}…` : error}</td></tr>`;
}

/**
 * `GET /tasks`: one `queue.list()` page: the delimiter and stream LISTs, one GET per journal read
 * and one GET per task shown (at most the page size).
 */
export async function tasksPage(ctx: PageContext): Promise<Response> {
  const f = readFilters(ctx.url);
  const now = ctx.options.now();
  let result: Awaited<ReturnType<typeof ctx.queue.list>>;
  try {
    result = await ctx.queue.list(listOptions(f, now, ctx.options.pageSize));
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return problemPage(ctx, 400, "Bad filter", error.message);
  }
  const next =
    result.cursor === undefined
      ? ""
      : html`<p><a rel="next" href="${ctx.link("/tasks", { ...f, cursor: result.cursor })}">Next page →</a></p>`;
  const bulk =
    f.status === "failed" && f.type !== ""
      ? html`<div class="actions">${actionButton(ctx, "/actions/replay-failed", `Replay every failed ${f.type} task`, { type: f.type })}</div>`
      : "";
  const rows = result.tasks.map((t) => taskRow(ctx, t, now));
  const body = html`${filterForm(ctx, f)}${bulk}
${
  rows.length === 0
    ? html`<p class="muted">No tasks match${f.cursor === "" ? "" : " on this page"}.</p>`
    : html`<table><thead><tr><th>Id</th><th>Type</th><th>Status</th><th>Attempt</th><th>Created</th><th>Finished / due</th><th>Last error</th></tr></thead><tbody>${rows}</tbody></table>`
}
${next}<p class="muted">Oldest first. Finished tasks of the last ${DEFAULT_SINCE} unless Since says otherwise.</p>`;
  return page(ctx, { title: "Tasks", nav: "tasks", body });
}
