/**
 * The web dashboard as a web-standard handler, `(request) => Promise<Response>`: it mounts in
 * any server that takes one (Bun's or Deno's `serve`, a Cloudflare Worker), or on Node through an
 * adapter. Server-rendered
 * HTML, no script. See docs/dashboard.md for the security model.
 *
 * Storage requests per page view, whatever the number of finished tasks:
 * - overview `/`: one `queue.stats()`: 1 LIST of the types, 1 LIST per type (per 1,000 markers),
 *   2 LISTs of the heartbeats and 1 GET per heartbeat or stopped worker's file of the last 25 h
 *   (about 7 for a queue of 3 types and 1 worker);
 * - tasks `/tasks`: one `queue.list()` page: the LISTs that find types and open a stream per
 *   partition and per finished status, 1 GET per journal read and 1 GET per task shown (at most
 *   `pageSize`, default 50);
 * - task `/tasks/{id}`: 1 GET;
 * - workers `/workers`: 1 LIST and 1 GET per heartbeat;
 * - schedules `/schedules`: 1 LIST and 1 GET per schedule;
 * - actions: what the call costs (a cancel or replay: a few GETs and PUTs; replaying every
 *   failed task of a type: a listing of them plus a replay each).
 *
 * @module
 */
import type { Queue } from "../queue/queue.ts";
import { checkToken } from "./auth.ts";
import { csrfToken } from "./csrf.ts";
import { redirect, securityHeaders, unauthorized } from "./layout.ts";
import {
  type DashboardOptions,
  linker,
  type PageContext,
  type ResolvedOptions,
  resolveOptions,
} from "./options.ts";

/**
 * Create the dashboard of `queue` as a web-standard request handler (see {@link DashboardOptions}
 * for the token, read-only mode, base path and metrics). Each page view costs a bounded number of
 * storage requests, whatever the number of finished tasks (docs/dashboard.md). Throws
 * `ValidationError` for invalid options.
 */
export function createDashboard(
  queue: Queue,
  options: DashboardOptions = {},
): (request: Request) => Promise<Response> {
  const resolved: ResolvedOptions = resolveOptions(queue, options);
  const csrf = csrfToken(resolved.secret);
  const link = linker(resolved.basePath);
  const base = resolved.basePath;
  return async (request) => {
    const url = new URL(request.url);
    const origin = resolved.origin ?? url.origin;
    const inside = url.pathname === base || url.pathname.startsWith(`${base}/`);
    if (!inside) return new Response("Not found", { status: 404, headers: securityHeaders() });
    if (resolved.token !== undefined) {
      const auth = await checkToken(request, url, resolved.token, base, origin);
      if ("redirect" in auth) return redirect(auth.redirect, auth.setCookie);
      if (!auth.ok) return unauthorized(auth.reason);
    }
    if (url.pathname === base) return redirect(`${base}/${url.search}`);
    const ctx: PageContext = {
      queue,
      request,
      url,
      origin,
      options: resolved,
      csrf: await csrf,
      link,
    };
    // The pages load on the first request that reaches them (routes.ts says why).
    const routes = await import("./routes.ts");
    try {
      return await routes.answer(ctx, url.pathname.slice(base.length));
    } catch (error) {
      return routes.failure(ctx, error);
    }
  };
}

export type { DashboardOptions } from "./options.ts";
