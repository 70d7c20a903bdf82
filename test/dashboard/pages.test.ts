/**
 * The dashboard's pages, rendered by calling the handler with `new Request(...)`: what each page
 * shows, the task list's filters and paging, the 400 and 404 pages, and escaping of values from
 * the bucket.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createDashboard } from "../../src/dashboard/handler.ts";
import { UnavailableError } from "../../src/errors.ts";
import { Queue } from "../../src/queue/queue.ts";
import { Scheduler } from "../../src/schedule/scheduler.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { runAll } from "../helpers/run.ts";
import { type TargetInstance, targets } from "../helpers/targets.ts";
import { get, heartbeat } from "./helpers.ts";

describe.each(targets)("dashboard pages on $name", (target) => {
  let env: TargetInstance;
  let queue: Queue;
  beforeEach(async () => {
    env = await target.create();
    queue = new Queue({ storage: env.storage, prefix: env.prefix });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("overview: per type pending, due, running and failed counts, the oldest due age, live workers", async () => {
    await queue.submitMany([
      { type: "email", input: 1 },
      { type: "email", input: 2 },
      { type: "email", input: 3, options: { delay: 3600 } },
    ]);
    await heartbeat(queue, "w-live", ["email", "report"], { report: { failed: 2, completed: 3 } });
    const page = await get(createDashboard(queue), "/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const email = /<tr>\s*<td><a href="\/tasks\?type=email">email<\/a>[\s\S]*?<\/tr>/.exec(
      page.text,
    )?.[0];
    expect(email).toBeDefined();
    // pending 3 (2 due, 1 delayed), due 2, running 0
    const cells = [...email!.matchAll(/<td class="n">(?:<a [^>]*>)?([^<]*)/g)].map((m) => m[1]);
    expect(cells.slice(0, 3)).toEqual(["3", "2", "0"]);
    expect(page.text).toContain('<a href="/tasks?type=report&amp;status=failed">2</a> / 2');
    expect(page.text).toContain("last day, per hour: 3 completed, 2 failed");
    expect(page.text).toContain("last hour, per minute: 3 completed, 2 failed");
    expect(page.text).toContain("1 live worker<");
    expect(page.text).toContain("<svg");
    expect(page.text).not.toContain('http-equiv="refresh"');
    const refreshing = await get(createDashboard(queue, { refreshSeconds: 7 }), "/?refresh=on");
    expect(refreshing.text).toContain('<meta http-equiv="refresh" content="7">');
  });

  it("tasks: lists through the indexes with status and type filters, a page at a time", async () => {
    const pending = await queue.submitMany(
      ["a", "b", "c", "d", "e"].map((input) => ({ type: "email", input })),
    );
    await queue.submit("report", "r");
    const handler = createDashboard(queue, { pageSize: 2 });
    const ids: string[] = [];
    let path: string | undefined = "/tasks?status=pending&type=email";
    let pages = 0;
    while (path !== undefined) {
      const page = await get(handler, path);
      expect(page.status).toBe(200);
      for (const m of page.text.matchAll(/<td><a href="\/tasks\/([0-9a-f]+)">/g)) ids.push(m[1]!);
      const next = /<a rel="next" href="([^"]+)">/.exec(page.text)?.[1];
      path = next?.replaceAll("&amp;", "&");
      pages++;
    }
    expect(ids.sort()).toEqual(pending.map((t) => t.id).sort());
    expect(pages).toBe(3);
    const reports = await get(handler, "/tasks?type=report");
    expect(reports.text).toContain(">report</a>");
    expect(reports.text).not.toContain(">email</a></td>");
  });

  it("tasks: a bad filter is a 400 page that says what to fix", async () => {
    const handler = createDashboard(queue);
    const status = await get(handler, "/tasks?status=done");
    expect(status.status).toBe(400);
    expect(status.text).toContain("Invalid status &quot;done&quot;: use one of pending, running");
    const since = await get(handler, "/tasks?since=yesterday");
    expect(since.status).toBe(400);
    expect(since.text).toContain("give a duration ago (24h, 7d)");
    expect((await get(handler, "/tasks?type=a%20b")).status).toBe(400);
    expect((await get(handler, "/tasks?cursor=garbage")).status).toBe(400);
  });

  it("task: input, output, last error, attempts and the history as a timeline; unknown id is 404", async () => {
    const [failing] = await queue.submitMany([{ type: "report", input: "fail" }]);
    await runAll(queue, ["report"]);
    const page = await get(createDashboard(queue), `/tasks/${failing!.id}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('<span class="s-failed">failed</span>');
    expect(page.text).toContain("<strong>PermanentError</strong>");
    expect(page.text).toContain("bad input");
    expect(page.text).toContain("<dt>Attempts</dt><dd>1 of 4</dd>");
    const events = [...page.text.matchAll(/<li><strong>([a-z-]+)<\/strong>/g)].map((m) => m[1]);
    expect(events).toEqual(["submitted", "claimed", "failed"]);
    expect(page.text).toContain(`/tasks/${failing!.id}/replay`);
    expect(page.text).toContain('<a href="/tasks?type=report">report</a>');
    const dead = await get(createDashboard(queue), "/tasks?status=failed&type=report");
    expect(dead.text).toContain(failing!.id);
    expect(dead.text).toContain('action="/actions/replay-failed"');
    expect(dead.text).toContain("Replay every failed report task");
    const missing = await get(createDashboard(queue), "/tasks/0123456789abcdef");
    expect(missing.status).toBe(404);
    expect(missing.text).toContain("There is no task 0123456789abcdef");
    expect((await get(createDashboard(queue), "/tasks/..%2Fetc")).status).toBe(404);
    expect((await get(createDashboard(queue), "/nowhere")).status).toBe(404);
  });

  it("escapes every value from the bucket: a <script> input renders as text", async () => {
    const evil = "<script>alert(1)</script>";
    const task = await queue.submit("email", { html: evil, quote: `"'&` });
    await new Scheduler(queue).create({ id: "s1", type: "email", input: evil, cron: "0 9 * * *" });
    const handler = createDashboard(queue);
    const page = await get(handler, `/tasks/${task.id}`);
    expect(page.text).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(page.text).toContain("&quot;&#39;&amp;");
    expect(page.text).not.toContain("<script");
    const flash = await get(handler, `/tasks?flash=${encodeURIComponent(evil)}`);
    expect(flash.text).toContain('<div class="flash" role="status">&lt;script&gt;');
    expect(flash.text).not.toContain("<script");
    expect(page.headers.get("content-security-policy")).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    );
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("workers: live and stale heartbeats", async () => {
    await heartbeat(queue, "w-1", ["email", "report"]);
    const stale = {
      id: "w-old",
      types: [],
      seenAt: "2026-01-01T00:00:00.000Z",
      heartbeatSeconds: 60,
    };
    await env.storage.put(
      queue.keys.worker("w-old"),
      new TextEncoder().encode(JSON.stringify(stale)),
    );
    const page = await get(createDashboard(queue), "/workers");
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<td>w-1<\/td><td>email, report<\/td>[\s\S]*?live/);
    expect(page.text).toMatch(/<td>w-old<\/td>[\s\S]*?\(monitor\)[\s\S]*?stale/);
  });

  it("schedules: each with its state, next run and actions", async () => {
    const scheduler = new Scheduler(queue);
    await scheduler.create({ id: "nightly", type: "report", cron: "0 3 * * *" });
    await scheduler.create({ id: "off", type: "email", cron: "0 9 * * *", enabled: false });
    const page = await get(createDashboard(queue), "/schedules");
    expect(page.status).toBe(200);
    expect(page.text).toMatch(
      /<td>nightly<\/td>[\s\S]*?enabled[\s\S]*?\/schedules\/nightly\/pause/,
    );
    expect(page.text).toMatch(/<td>off<\/td>[\s\S]*?paused[\s\S]*?\/schedules\/off\/resume/);
    expect(page.text).toContain("/schedules/nightly/trigger");
  });
});

describe("dashboard failures", () => {
  it("a storage failure is a 500 page with the error's code, not a stack trace", async () => {
    const storage = new MemoryStorage();
    const queue = new Queue({ storage });
    storage.list = async () => {
      throw new UnavailableError("connection refused (test)");
    };
    const page = await get(createDashboard(queue), "/");
    expect(page.status).toBe(500);
    expect(page.text).toContain("UNAVAILABLE: connection refused (test)");
    expect(page.text).not.toContain("    at ");
  });
});
