/**
 * One task: its record (input, output, last error, lease, attempts, times) and its event log as
 * a timeline, from one GET; cancel and replay where they apply.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { eventLog } from "../task/event-log.ts";
import type { TaskRecord } from "../task/record.ts";
import { isTerminal } from "../task/transitions.ts";
import { json, status, when } from "./format.ts";
import { actionButton } from "./forms.ts";
import { type Html, html } from "./html.ts";
import { page, problemPage } from "./layout.ts";
import type { PageContext } from "./options.ts";

function timeline(task: TaskRecord, now: number): Html {
  const items = eventLog(task).map(
    (e) =>
      html`<li><strong>${e.event}</strong> ${when(e.at, now)} <span class="muted">attempt ${e.attempt}${e.worker === null ? "" : html`, worker ${e.worker}`}</span>${e.error === null ? "" : html`<br><span class="s-failed">${e.error}</span>`}</li>`,
  );
  return html`<ol class="timeline">${items}</ol>`;
}

function facts(task: TaskRecord, now: number, link: PageContext["link"]): Html {
  const lease = task.lease;
  return html`<dl>
<dt>Status</dt><dd>${status(task.status)}${task.cancel === null ? "" : html` (cancel requested ${when(task.cancel.requestedAt, now)}${task.cancel.reason === null ? "" : html`: ${task.cancel.reason}`})`}</dd>
<dt>Type</dt><dd><a href="${link("/tasks", { type: task.type })}">${task.type}</a></dd>
<dt>Attempts</dt><dd>${task.attempt} of ${task.maxRetries + 1}</dd>
<dt>Priority</dt><dd>${task.priority ?? 0}</dd>
<dt>Created</dt><dd>${when(task.createdAt, now)}</dd>
<dt>Available</dt><dd>${when(task.availableAt, now)}</dd>
<dt>Expires</dt><dd>${when(task.expiresAt, now)}</dd>
<dt>Started</dt><dd>${when(task.startedAt, now)}</dd>
<dt>Finished</dt><dd>${when(task.finishedAt, now)}</dd>
<dt>Updated</dt><dd>${when(task.updatedAt, now)} (${task.event})</dd>
<dt>Lease</dt><dd>${lease === null ? html`<span class="muted">none</span>` : html`worker ${lease.workerId}, expires ${when(lease.expiresAt, now)}`}</dd>
<dt>Idempotency key</dt><dd>${task.idempotencyKey ?? html`<span class="muted">none</span>`}</dd>
</dl>`;
}

function actions(ctx: PageContext, task: TaskRecord): Html {
  const path = `/tasks/${encodeURIComponent(task.id)}`;
  if (task.status === "pending" || task.status === "running")
    return actionButton(ctx, `${path}/cancel`, "Cancel");
  if (isTerminal(task.status) && task.status !== "completed")
    return actionButton(ctx, `${path}/replay`, "Replay");
  return html``;
}

/** `GET /tasks/{id}`: one GET. Unknown (or impossible) id → 404. */
export async function taskPage(ctx: PageContext, id: string): Promise<Response> {
  let task: TaskRecord | undefined;
  try {
    task = (await ctx.queue.read(id))?.task;
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return problemPage(
      ctx,
      error.code === "MALFORMED" ? 500 : 404,
      "Task not readable",
      error.message,
    );
  }
  if (task === undefined)
    return problemPage(
      ctx,
      404,
      "Task not found",
      `There is no task ${id} in this queue (it may have been pruned).`,
    );
  const now = ctx.options.now();
  const e = task.lastError;
  const body = html`<div class="actions">${actions(ctx, task)}</div>
${facts(task, now, ctx.link)}
${task.progress === null ? "" : html`<h2>Progress</h2>${json(task.progress)}`}
<h2>Input</h2>${json(task.inputRef ?? task.input)}
<h2>Output</h2>${json(task.outputRef ?? task.output)}
<h2>Last error</h2>${e === null ? html`<p class="muted">none</p>` : html`<p><strong>${e.name}</strong> in attempt ${e.attempt}, ${when(e.at, now)}${e.permanent ? " (permanent)" : ""}</p><pre>${e.message}</pre>`}
<h2>History</h2>${timeline(task, now)}`;
  return page(ctx, { title: `Task ${task.id}`, nav: "tasks", body });
}
