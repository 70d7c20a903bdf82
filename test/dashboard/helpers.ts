/**
 * Calling the dashboard handler in tests: GET a page as text, and POST an action form the way a
 * browser on the dashboard's own page would (same Origin, the page's CSRF token).
 */

import { internals } from "../../src/queue/internals.ts";
import type { Queue } from "../../src/queue/queue.ts";

/** The origin every test request is made to. */
export const ORIGIN = "http://dash.test";

/** A handler as `createDashboard` returns it. */
export type Handler = (request: Request) => Promise<Response>;

/** GET `path`; the status, headers and body text. */
export async function get(handler: Handler, path: string, headers: HeadersInit = {}) {
  const response = await handler(new Request(`${ORIGIN}${path}`, { headers }));
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** The CSRF token in the forms of `page`'s HTML. */
export function csrfOf(html: string): string {
  const match = /name="csrf" value="([0-9a-f]+)"/.exec(html);
  if (match === null) throw new Error("the page has no action form");
  return match[1]!;
}

/** POST a form to `path`, from the dashboard's origin unless `headers` say otherwise. */
export async function post(
  handler: Handler,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = { Origin: ORIGIN },
) {
  const response = await handler(
    new Request(`${ORIGIN}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(fields).toString(),
    }),
  );
  return {
    status: response.status,
    location: response.headers.get("location"),
    text: await response.text(),
  };
}

/**
 * Write a heartbeat for worker `id`, seen now, as a running worker would, counting `failed` and
 * `completed` tasks of each type in the current minute and hour.
 */
export async function heartbeat(
  queue: Queue,
  id: string,
  types: string[],
  finished: Record<string, { failed?: number; completed?: number }> = {},
): Promise<void> {
  const at = queue.now();
  const now = new Date(at).toISOString();
  const minute = new Date(Math.floor(at / 60_000) * 60_000).toISOString();
  const hour = new Date(Math.floor(at / 3_600_000) * 3_600_000).toISOString();
  const body = {
    id,
    types,
    concurrency: 4,
    active: [],
    startedAt: now,
    seenAt: now,
    heartbeatSeconds: 60,
    finished: { minutes: { [minute]: finished }, hours: { [hour]: finished } },
  };
  await queue.storage.put(queue.keys.worker(id), new TextEncoder().encode(JSON.stringify(body)), {
    contentType: "application/json",
  });
}

/** Write the finished journal entries a client buffered (cancels of pending tasks). */
export function flushJournal(queue: Queue): Promise<void> {
  return internals(queue).journal.flush();
}
