/**
 * `oq/dashboard`: the web dashboard as a web-standard handler, `(request) => Promise<Response>`,
 * to mount in any server or Worker (docs/dashboard.md; `oq dashboard` serves it on Node).
 *
 * ```ts
 * import { connect } from "oq";
 * import { createDashboard } from "oq/dashboard";
 * const queue = await connect({ bucket: "jobs", env: process.env });
 * const dashboard = createDashboard(queue, { token: process.env.OQ_DASHBOARD_TOKEN });
 * ```
 *
 * Portable like `oq`. An entry point of its own, apart from `oq`, because most processes never
 * serve it: `oq` is imported by every worker's tasks module, and everything it exports is loaded
 * and compiled before the worker takes its first task.
 *
 * @module
 */
export { createDashboard, type DashboardOptions } from "./src/dashboard/handler.ts";
