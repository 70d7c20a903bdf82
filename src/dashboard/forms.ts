/**
 * The action forms: a POST button carrying the CSRF token and where to come back to. None are
 * rendered in read-only mode.
 *
 * @module
 */
import { CSRF_FIELD } from "./csrf.ts";
import { type Html, html } from "./html.ts";
import type { PageContext } from "./options.ts";

/**
 * A one-button form posting to `path` (under the base path) with the CSRF token, the current
 * page as `back`, and `fields`; nothing in read-only mode.
 */
export function actionButton(
  ctx: PageContext,
  path: string,
  label: string,
  fields: Record<string, string> = {},
  confirmText?: string,
): Html {
  if (ctx.options.readOnly) return html``;
  const hidden = Object.entries(fields).map(
    ([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`,
  );
  return html`<form class="inline" method="post" action="${ctx.link(path)}"><input type="hidden" name="${CSRF_FIELD}" value="${ctx.csrf}"><input type="hidden" name="back" value="${ctx.url.pathname}${ctx.url.search}">${hidden}<button type="submit"${confirmText === undefined ? "" : html` title="${confirmText}"`}>${label}</button></form>`;
}
