/**
 * The page frame (navigation, flash message, inline CSS), the security headers every response
 * carries, and the 400, 401, 403 and 404 pages.
 *
 * @module
 */
import { type Html, html, safe } from "./html.ts";
import type { PageContext } from "./options.ts";

/** The Content-Security-Policy of every response: no script, no outside resources. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'";

/** Headers every response carries. */
export function securityHeaders(headers: Headers = new Headers()): Headers {
  headers.set("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  headers.set("X-Content-Type-Options", "nosniff");
  // Not no-referrer: under it Chromium sends `Origin: null` on the dashboard's own form posts.
  headers.set("Referrer-Policy", "same-origin");
  headers.set("Cache-Control", "no-store");
  return headers;
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#23303f;color:#fff;padding:.5em 1em;display:flex;gap:1.2em;align-items:center}
header a{color:#dde;text-decoration:none}header a.on{color:#fff;font-weight:600}
header strong{margin-right:1em}main{padding:1em}
table{border-collapse:collapse;background:#fff;margin:.5em 0}
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#fff;border:1px solid #ddd;padding:.5em;overflow:auto;max-height:20em;margin:0}
.flash{padding:.5em 1em;background:#e6f4ea;border:1px solid #9c9;margin-bottom:1em}
.flash.error{background:#fdecea;border-color:#d99}
.s-pending{color:#946200}.s-running{color:#0b5cad}.s-completed{color:#1a7f37}
.s-failed{color:#c62828}.s-cancelled,.s-expired{color:#666}
form.inline{display:inline}button{cursor:pointer}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
ol.timeline{border-left:2px solid #bbb;margin:0;padding-left:1em;list-style:none}
.actions{margin:.5em 0}ol.timeline li{margin:.3em 0}
.muted{color:#777}.filters label{margin-right:.8em}
`;

/** What a page shows in the frame. */
export interface PageSpec {
  /** The title, also the `<h1>`. */
  title: string;
  /** The navigation entry to highlight. */
  nav?: "overview" | "tasks" | "workers" | "schedules";
  /** The page's content. */
  body: Html;
  /** Reload the page after this many seconds. */
  refreshSeconds?: number;
  /** HTTP status. Default 200. */
  status?: number;
}

function flash(url: URL): Html {
  const ok = url.searchParams.get("flash");
  const error = url.searchParams.get("error");
  return html`${ok === null ? "" : html`<div class="flash" role="status">${ok}</div>`}${
    error === null ? "" : html`<div class="flash error" role="alert">${error}</div>`
  }`;
}

/** A whole HTML page as a response, with the security headers. */
export function page(ctx: PageContext, spec: PageSpec): Response {
  const item = (key: PageSpec["nav"], path: string, label: string) =>
    html`<a href="${ctx.link(path)}" class="${spec.nav === key ? "on" : ""}">${label}</a>`;
  const refresh =
    spec.refreshSeconds === undefined
      ? ""
      : html`<meta http-equiv="refresh" content="${spec.refreshSeconds}">`;
  const doc = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${spec.title} · oq</title>${refresh}<style>${safe(CSS)}</style></head>
<body><header><strong>oq</strong>${item("overview", "/", "Overview")}${item("tasks", "/tasks", "Tasks")}${item("workers", "/workers", "Workers")}${item("schedules", "/schedules", "Schedules")}${ctx.options.readOnly ? html`<span class="muted">read-only</span>` : ""}</header>
<main>${flash(ctx.url)}<h1>${spec.title}</h1>
${spec.body}</main></body></html>`;
  return htmlResponse(doc.value, spec.status ?? 200);
}

/** An HTML body as a response with the security headers. */
export function htmlResponse(body: string, status: number, headers = new Headers()): Response {
  headers.set("Content-Type", "text/html; charset=utf-8");
  return new Response(body, { status, headers: securityHeaders(headers) });
}

/** A page that says what went wrong (400, 403, 404, 405) and what to do. */
export function problemPage(ctx: PageContext, status: number, title: string, message: string) {
  return page(ctx, {
    title,
    status,
    body: html`<p>${message}</p><p><a href="${ctx.link("/")}">Back to the overview</a></p>`,
  });
}

/**
 * The 401 page: no frame (nothing of the queue is shown before the token), a bearer challenge.
 */
export function unauthorized(reason: "missing" | "wrong"): Response {
  const text =
    reason === "missing"
      ? "This dashboard needs its token: send Authorization: Bearer TOKEN, or open it once with ?token=TOKEN."
      : "The token given is not this dashboard's token.";
  const headers = new Headers({ "WWW-Authenticate": 'Bearer realm="oq dashboard"' });
  return htmlResponse(
    html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Token required · oq</title></head><body><h1>Token required</h1><p>${text}</p></body></html>`
      .value,
    401,
    headers,
  );
}

/**
 * A 303 redirect to `location` (a path on this origin), with the security headers (and
 * `Set-Cookie` when given). Leading slashes are collapsed to one: a path such as `//evil.test/`
 * (which a request URL or a form's `back` can hold) would otherwise lead to another host.
 */
export function redirect(location: string, setCookie?: string): Response {
  const path = location.replace(/^[/\\]+/, "/");
  const headers = securityHeaders(new Headers({ Location: path }));
  if (setCookie !== undefined) headers.set("Set-Cookie", setCookie);
  return new Response(null, { status: 303, headers });
}
