/**
 * The dashboard's pages and actions: what a request gets once handler.ts has checked that it is
 * inside the base path and that its token (if any) checked out. handler.ts loads this module on
 * the first such request, so that importing `oq` (as every worker's tasks module does) does not
 * compile the pages (issue 15).
 *
 * @module
 */
import { isOqError } from "../errors.ts";
import { findAction, runAction } from "./actions.ts";
import { problemPage } from "./layout.ts";
import type { PageContext } from "./options.ts";
import { overviewPage } from "./overview.ts";
import { schedulesPage } from "./schedules.ts";
import { taskPage } from "./task.ts";
import { tasksPage } from "./tasks.ts";
import { workersPage } from "./workers.ts";

/** The pages answered to GET and HEAD. */
function route(ctx: PageContext, path: string): Promise<Response> | Response {
  if (path === "/") return overviewPage(ctx);
  if (path === "/tasks") return tasksPage(ctx);
  if (path === "/workers") return workersPage(ctx);
  if (path === "/schedules") return schedulesPage(ctx);
  if (path === "/metrics" && ctx.options.metrics !== undefined)
    return ctx.options.metrics(ctx.request);
  const task = /^\/tasks\/([^/]+)$/.exec(path);
  if (task !== null) {
    let id: string;
    try {
      id = decodeURIComponent(task[1]!);
    } catch {
      return problemPage(ctx, 404, "Not found", "That is not a task id.");
    }
    return taskPage(ctx, id);
  }
  return problemPage(ctx, 404, "Not found", `There is no page at ${ctx.url.pathname}.`);
}

/** Answer a request inside the base path whose token (if any) checked out. */
export async function answer(ctx: PageContext, path: string): Promise<Response> {
  const method = ctx.request.method;
  if (method === "POST") {
    const action = findAction(path);
    if (action !== undefined) return runAction(ctx, action);
    return problemPage(ctx, 404, "Not found", `There is no action at ${ctx.url.pathname}.`);
  }
  if (method !== "GET" && method !== "HEAD") {
    const response = problemPage(ctx, 405, "Method not allowed", `${method} is not used here.`);
    response.headers.set("Allow", "GET, HEAD, POST");
    return response;
  }
  const response = await route(ctx, path);
  return method === "HEAD"
    ? new Response(null, { status: response.status, headers: response.headers })
    : response;
}

/** A 500 page for an unexpected failure: the error's code and message, never a stack. */
export function failure(ctx: PageContext, error: unknown): Response {
  ctx.queue.logger.error(
    `dashboard: ${ctx.request.method} ${ctx.url.pathname} failed: ${error instanceof Error ? error.message : String(error)}`,
  );
  const detail = isOqError(error)
    ? `${error.code}: ${error.message}`
    : "An unexpected error; the queue's logger has the details.";
  return problemPage(ctx, 500, "Something went wrong", detail);
}
