/**
 * The actions: POST forms that cancel or replay a task, replay every failed task of a type, pause
 * or resume a type, and pause, resume or trigger a schedule. Each is refused with 403 in read-only mode, from another
 * origin, or without the form's CSRF token; after it, a 303 redirect goes back to the page the
 * form was on with a flash message in the query string.
 *
 * @module
 */
import { InvalidStateError, isOqError, NotFoundError, ValidationError } from "../errors.ts";
import { replayAll } from "../queue/replay-all.ts";
import { Scheduler } from "../schedule/scheduler.ts";
import { hasCsrfToken, isSameOrigin } from "./csrf.ts";
import { problemPage, redirect } from "./layout.ts";
import type { PageContext } from "./options.ts";

/** What an action did, for the flash message. */
type Done = string;

/** An action: the path after the base path, matched, and what it does with the form. */
interface Action {
  pattern: RegExp;
  /** Where to go back to when the form names no page. */
  back: (ctx: PageContext, id: string) => string;
  run: (ctx: PageContext, id: string, form: FormData) => Promise<Done>;
}

const taskPath = (ctx: PageContext, id: string) => ctx.link(`/tasks/${encodeURIComponent(id)}`);

const ACTIONS: readonly Action[] = [
  {
    pattern: /^\/tasks\/([^/]+)\/cancel$/,
    back: taskPath,
    async run(ctx, id) {
      const task = await ctx.queue.cancel(id, { reason: "cancelled from the dashboard" });
      return task.status === "cancelled"
        ? `Cancelled task ${id}.`
        : `Asked running task ${id} to stop; it ends cancelled when its handler returns.`;
    },
  },
  {
    pattern: /^\/tasks\/([^/]+)\/replay$/,
    back: taskPath,
    async run(ctx, id) {
      const task = await ctx.queue.replay(id);
      return `Replayed task ${id}: pending again with ${task.maxRetries + 1} attempts.`;
    },
  },
  {
    pattern: /^\/actions\/replay-failed$/,
    back: (ctx) => ctx.link("/"),
    async run(ctx, _id, form) {
      const type = form.get("type");
      if (typeof type !== "string" || type === "")
        throw new ValidationError("Say which type's failed tasks to replay (the type field).");
      const tally = await replayAll(ctx.queue, { statuses: ["failed"], type });
      const refused = tally.refused.length;
      return `Replayed ${tally.replayed} failed ${type} task${tally.replayed === 1 ? "" : "s"}${tally.skipped > 0 ? `, skipped ${tally.skipped} no longer failed` : ""}${refused > 0 ? `, refused ${refused} whose retention ends soon (raise it with oq retention)` : ""}.`;
    },
  },
  {
    pattern: /^\/types\/([^/]+)\/pause$/,
    back: (ctx) => ctx.link("/"),
    async run(ctx, type) {
      await ctx.queue.pause(type);
      return `Paused ${type}: workers claim none of its tasks from their next poll; running ones finish.`;
    },
  },
  {
    pattern: /^\/types\/([^/]+)\/resume$/,
    back: (ctx) => ctx.link("/"),
    async run(ctx, type) {
      await ctx.queue.resume(type);
      return `Resumed ${type}.`;
    },
  },
  {
    pattern: /^\/schedules\/([^/]+)\/pause$/,
    back: (ctx) => ctx.link("/schedules"),
    async run(ctx, id) {
      await new Scheduler(ctx.queue).disable(id);
      return `Paused schedule ${id}.`;
    },
  },
  {
    pattern: /^\/schedules\/([^/]+)\/resume$/,
    back: (ctx) => ctx.link("/schedules"),
    async run(ctx, id) {
      await new Scheduler(ctx.queue).enable(id);
      return `Resumed schedule ${id}; slots that fell while it was paused do not fire.`;
    },
  },
  {
    pattern: /^\/schedules\/([^/]+)\/trigger$/,
    back: (ctx) => ctx.link("/schedules"),
    async run(ctx, id) {
      const task = await new Scheduler(ctx.queue).trigger(id);
      return `Triggered schedule ${id}: task ${task.id}.`;
    },
  },
];

/** The action at `path` (after the base path), or `undefined`. */
export function findAction(path: string): { action: Action; id: string } | undefined {
  for (const action of ACTIONS) {
    const match = action.pattern.exec(path);
    if (match === null) continue;
    let id = "";
    try {
      id = decodeURIComponent(match[1] ?? "");
    } catch {
      return undefined;
    }
    return { action, id };
  }
  return undefined;
}

/** `back` from the form when it is a page of this dashboard, else `fallback`. */
function backTo(ctx: PageContext, given: FormDataEntryValue | null, fallback: string): URL {
  const home = new URL(fallback, ctx.url);
  if (typeof given !== "string" || !given.startsWith("/") || given.startsWith("//")) return home;
  const url = new URL(given, ctx.url);
  const base = ctx.options.basePath;
  if (
    url.origin !== ctx.url.origin ||
    !(url.pathname === base || url.pathname.startsWith(`${base}/`))
  )
    return home;
  return url;
}

/** Run the action of a POST, after the read-only, origin and CSRF checks. */
export async function runAction(
  ctx: PageContext,
  found: { action: Action; id: string },
): Promise<Response> {
  if (ctx.options.readOnly)
    return problemPage(ctx, 403, "Read-only", "This dashboard is read-only: it takes no actions.");
  if (!isSameOrigin(ctx.request, ctx.origin))
    return problemPage(
      ctx,
      403,
      "Refused",
      "Actions are taken only from the dashboard's own pages (the request came from another origin).",
    );
  let form: FormData | undefined;
  try {
    form = await ctx.request.formData();
  } catch {
    form = undefined;
  }
  if (form === undefined || !hasCsrfToken(form, ctx.csrf))
    return problemPage(
      ctx,
      403,
      "Refused",
      "The form's token is missing or out of date: reload the page and try again.",
    );
  const back = backTo(ctx, form.get("back"), found.action.back(ctx, found.id));
  for (const key of ["flash", "error"]) back.searchParams.delete(key);
  try {
    back.searchParams.set("flash", await found.action.run(ctx, found.id, form));
  } catch (error) {
    const expected =
      error instanceof NotFoundError ||
      error instanceof InvalidStateError ||
      (error instanceof ValidationError && !isOqError(error, "MALFORMED"));
    if (!expected) throw error;
    back.searchParams.set("error", error.message);
  }
  return redirect(`${back.pathname}${back.search}`);
}
