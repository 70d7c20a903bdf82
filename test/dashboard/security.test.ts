/**
 * The dashboard's security model: the token (bearer header, or a query traded for a cookie),
 * read-only mode, the same-origin and CSRF checks on action POSTs, the base path, and the
 * headers every response carries.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { createDashboard } from "../../src/dashboard/handler.ts";
import { ValidationError } from "../../src/errors.ts";
import { Queue } from "../../src/queue/queue.ts";
import { Scheduler } from "../../src/schedule/scheduler.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { csrfOf, get, type Handler, ORIGIN, post } from "./helpers.ts";

const TOKEN = "s3cret-token-for-tests";

describe("dashboard security", () => {
  let queue: Queue;
  beforeEach(() => {
    queue = new Queue({ storage: new MemoryStorage() });
  });

  it("with a token, every request needs it: 401 without, a bearer header works", async () => {
    const handler = createDashboard(queue, { token: TOKEN });
    const none = await get(handler, "/");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="oq dashboard"');
    expect(none.text).not.toContain("Overview");
    expect((await get(handler, "/", { Authorization: "Bearer wrong" })).status).toBe(401);
    expect((await get(handler, "/?token=wrong")).status).toBe(401);
    const bearer = await get(handler, "/tasks", { Authorization: `Bearer ${TOKEN}` });
    expect(bearer.status).toBe(200);
    expect(bearer.text).toContain("<h1>Tasks</h1>");
    expect((await post(handler, "/tasks/abc/cancel", {})).status).toBe(401);
  });

  it("with a token, ?token= once sets an HttpOnly SameSite=Strict cookie and redirects without it", async () => {
    const handler = createDashboard(queue, { token: TOKEN, basePath: "/oq" });
    const first = await handler(new Request(`${ORIGIN}/oq/tasks?status=pending&token=${TOKEN}`));
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe("/oq/tasks?status=pending");
    const setCookie = first.headers.get("set-cookie")!;
    expect(setCookie).toMatch(/^oq_dashboard=[0-9a-f]{64}; Path=\/oq; HttpOnly; SameSite=Strict$/);
    expect(setCookie).not.toContain(TOKEN);
    const cookie = setCookie.split(";")[0]!;
    const next = await get(handler, "/oq/tasks?status=pending", { Cookie: cookie });
    expect(next.status).toBe(200);
    // A proxy's Basic auth in front does not hide the cookie.
    const basic = { Cookie: cookie, Authorization: "Basic dXNlcjpwYXNz" };
    expect((await get(handler, "/oq/tasks", basic)).status).toBe(200);
    expect((await get(handler, "/oq/tasks", { Cookie: "oq_dashboard=0000" })).status).toBe(401);
    // A second handler with the same token accepts the cookie (it holds a digest, not a session).
    const again = createDashboard(queue, { token: TOKEN, basePath: "/oq" });
    expect((await get(again, "/oq/", { Cookie: cookie })).status).toBe(200);
    const slashes = await createDashboard(queue, { token: TOKEN })(
      new Request(`${ORIGIN}//evil.test/x?token=${TOKEN}`),
    );
    expect(slashes.headers.get("location")).toBe("/evil.test/x");
    const https = await createDashboard(queue, { token: TOKEN })(
      new Request(`https://dash.test/?token=${TOKEN}`),
    );
    expect(https.headers.get("set-cookie")).toContain("; Secure");
  });

  it("read-only hides the action forms and answers action POSTs with 403", async () => {
    const task = await queue.submit("email", {});
    const handler = createDashboard(queue, { readOnly: true });
    const page = await get(handler, `/tasks/${task.id}`);
    expect(page.text).not.toContain('<form class="inline" method="post"');
    expect(page.text).toContain("read-only");
    await new Scheduler(queue).create({ id: "nightly", type: "email", cron: "0 3 * * *" });
    for (const path of ["/", "/schedules", "/tasks?status=pending&type=email"]) {
      const shown = await get(handler, path);
      expect(shown.status, path).toBe(200);
      expect(shown.text, path).not.toContain('method="post"');
    }
    expect((await get(handler, "/schedules")).text).toContain("<td>nightly</td>");
    expect((await post(handler, "/schedules/nightly/pause", {})).status).toBe(403);
    expect((await new Scheduler(queue).get("nightly")).enabled).toBe(true);
    const csrf = csrfOf((await get(createDashboard(queue), `/tasks/${task.id}`)).text);
    const refused = await post(handler, `/tasks/${task.id}/cancel`, { csrf });
    expect(refused.status).toBe(403);
    expect((await queue.get(task.id)).status).toBe("pending");
  });

  it("refuses an action POST from another origin, without an origin, or without the CSRF token", async () => {
    const task = await queue.submit("email", {});
    const handler = createDashboard(queue);
    const csrf = csrfOf((await get(handler, `/tasks/${task.id}`)).text);
    const path = `/tasks/${task.id}/cancel`;
    expect((await post(handler, path, { csrf }, { Origin: "http://evil.test" })).status).toBe(403);
    expect((await post(handler, path, { csrf }, { Origin: "null" })).status).toBe(403);
    const nullCrossSite = { Origin: "null", "Sec-Fetch-Site": "cross-site" };
    expect((await post(handler, path, { csrf }, nullCrossSite)).status).toBe(403);
    expect((await post(handler, path, { csrf }, {})).status).toBe(403);
    expect((await post(handler, path, { csrf }, { "Sec-Fetch-Site": "cross-site" })).status).toBe(
      403,
    );
    expect((await post(handler, path, {})).status).toBe(403);
    expect((await post(handler, path, { csrf: "0".repeat(64) })).status).toBe(403);
    // Another handler's token (a restart, another key) is refused too.
    const other = csrfOf((await get(createDashboard(queue), `/tasks/${task.id}`)).text);
    expect((await post(handler, path, { csrf: other })).status).toBe(403);
    expect((await queue.get(task.id)).status).toBe("pending");
    // Same origin by Sec-Fetch-Site (no Origin header, or `Origin: null` as Chromium sends under
    // a no-referrer policy) with the token: done.
    const nullSameSite = { Origin: "null", "Sec-Fetch-Site": "same-origin" };
    expect((await post(handler, path, {}, nullSameSite)).status).toBe(403);
    const ok = await post(handler, path, { csrf }, nullSameSite);
    expect(ok.status).toBe(303);
    expect((await queue.get(task.id)).status).toBe("cancelled");
  });

  it("behind a proxy, the origin option names the origin actions must come from", async () => {
    const task = await queue.submit("email", {});
    const proxied = (handler: Handler, fields: Record<string, string>) =>
      handler(
        new Request(`http://127.0.0.1:4000/tasks/${task.id}/cancel`, {
          method: "POST",
          headers: {
            Origin: "https://ops.example.com",
            "Content-Type": "application/x-www-form-urlencoded",
          },
          body: new URLSearchParams(fields).toString(),
        }),
      );
    const plain = createDashboard(queue);
    const plainCsrf = csrfOf((await get(plain, `/tasks/${task.id}`)).text);
    expect((await proxied(plain, { csrf: plainCsrf })).status).toBe(403);
    const behind = createDashboard(queue, { origin: "https://ops.example.com", token: TOKEN });
    const login = await behind(new Request(`http://127.0.0.1:4000/?token=${TOKEN}`));
    expect(login.headers.get("set-cookie")).toContain("; Secure");
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = csrfOf((await get(behind, `/tasks/${task.id}`, { Cookie: cookie })).text);
    const done = await behind(
      new Request(`http://127.0.0.1:4000/tasks/${task.id}/cancel`, {
        method: "POST",
        headers: {
          Origin: "https://ops.example.com",
          Cookie: cookie,
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ csrf }).toString(),
      }),
    );
    expect(done.status).toBe(303);
    expect((await queue.get(task.id)).status).toBe("cancelled");
    expect(() => createDashboard(queue, { origin: "https://ops.example.com/oq" })).toThrow(
      ValidationError,
    );
  });

  it("refuses an origin with a password without echoing it (bad-input probe)", () => {
    expect(() => createDashboard(queue, { origin: "https://user:PASSWD@ops.example.com" })).toThrow(
      'Invalid origin "https://[redacted]@ops.example.com"',
    );
  });

  it("a shared secret gives every instance the same CSRF token", async () => {
    const secret = "a-shared-secret-of-enough-length";
    const page = `/tasks/${(await queue.submit("email", {})).id}`;
    const a = csrfOf((await get(createDashboard(queue, { secret }), page)).text);
    const b = csrfOf((await get(createDashboard(queue, { secret }), page)).text);
    expect(a).toBe(b);
  });

  it("serves under basePath only, redirects the bare base path, and refuses bad options", async () => {
    const handler = createDashboard(queue, { basePath: "/oq" });
    expect((await get(handler, "/")).status).toBe(404);
    expect((await get(handler, "/oqx")).status).toBe(404);
    const bare = await handler(new Request(`${ORIGIN}/oq`));
    expect(bare.status).toBe(303);
    expect(bare.headers.get("location")).toBe("/oq/");
    const page = await get(handler, "/oq/");
    expect(page.status).toBe(200);
    expect(page.text).toContain('<a href="/oq/tasks"');
    expect(() => createDashboard(queue, { basePath: "/oq/" })).toThrow(ValidationError);
    expect(() => createDashboard(queue, { basePath: "oq" })).toThrow(ValidationError);
    expect(() => createDashboard(queue, { token: "" })).toThrow(ValidationError);
    expect(() => createDashboard(queue, { pageSize: 0 })).toThrow(ValidationError);
  });

  it("refuses misspelt and wrong-typed options instead of serving with actions on or no token", async () => {
    const loose = (o: unknown) => o as never;
    // Each of these served a dashboard that cancels tasks, or one without any token.
    for (const [options, message] of [
      [
        { readonly: true },
        /Invalid dashboard options: readonly must be removed \(not a known key\)/,
      ],
      [{ authToken: TOKEN }, /authToken must be removed \(not a known key\)/],
      [{ readOnly: "true" }, /readOnly must be a boolean \(was a string\)/],
      [{ readOnly: 1 }, /readOnly must be a boolean \(was a number\)/],
      [{ token: 42 }, /token must be a string/],
      [null, /Invalid dashboard options: expected an object/],
    ] as const) {
      expect(() => createDashboard(queue, loose(options)), JSON.stringify(options)).toThrow(
        message,
      );
    }
    // A token of whitespace is a configuration slip, not a secret.
    for (const token of [" ", "\n", "\t "]) {
      expect(() => createDashboard(queue, { token })).toThrow(/empty or only whitespace/);
    }
    // Base paths a URL parser resolves away: no request could ever reach them.
    for (const basePath of ["/../x", "/./x", "/x/../y", "/%2e%2e", "/x/.%2E", "/%2e"]) {
      expect(() => createDashboard(queue, { basePath }), basePath).toThrow(
        /no request could reach it/,
      );
    }
    // Every documented option still passes; keys set to undefined count as not given.
    const handler = createDashboard(queue, {
      token: TOKEN,
      readOnly: true,
      basePath: "/oq/v1",
      metrics: async () => new Response(""),
      secret: "a-shared-secret-of-enough-length",
      origin: "https://ops.example.com",
      pageSize: 10,
      refreshSeconds: 10,
      now: () => Date.now(),
    });
    expect((await get(handler, "/oq/v1/", { Authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect(() => createDashboard(queue, { readOnly: undefined })).not.toThrow();
  });

  it("routes GET /metrics to the metrics handler behind the token, 404 without one", async () => {
    const metrics = async () =>
      new Response("oq_tasks_total 1\n", { headers: { "Content-Type": "text/plain" } });
    const handler = createDashboard(queue, { token: TOKEN, metrics });
    expect((await get(handler, "/metrics")).status).toBe(401);
    const got = await get(handler, "/metrics", { Authorization: `Bearer ${TOKEN}` });
    expect(got.status).toBe(200);
    expect(got.text).toBe("oq_tasks_total 1\n");
    expect((await get(createDashboard(queue), "/metrics")).status).toBe(404);
  });

  it("every response carries the CSP and nosniff headers; other methods are 405", async () => {
    const handler = createDashboard(queue, { token: TOKEN });
    for (const response of [
      await handler(new Request(`${ORIGIN}/`)),
      await handler(new Request(`${ORIGIN}/?token=${TOKEN}`)),
      await handler(
        new Request(`${ORIGIN}/nowhere`, { headers: { Authorization: `Bearer ${TOKEN}` } }),
      ),
    ]) {
      expect(response.headers.get("content-security-policy")).toContain("default-src 'none'");
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    }
    const put = await handler(
      new Request(`${ORIGIN}/`, { method: "PUT", headers: { Authorization: `Bearer ${TOKEN}` } }),
    );
    expect(put.status).toBe(405);
    const head = await handler(
      new Request(`${ORIGIN}/`, { method: "HEAD", headers: { Authorization: `Bearer ${TOKEN}` } }),
    );
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });
});
