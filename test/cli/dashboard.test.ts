/**
 * `oq dashboard`, run as the real CLI on the file store: it refuses to listen on a non-loopback
 * address without a token, serves the dashboard (behind the token when one is set), offers no
 * actions with `--read-only`, and stops cleanly on SIGTERM.
 */
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLoopback } from "../../src/cli/dashboard.ts";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, type RunningOq, runOq, startOq } from "../helpers/cli.ts";
import { fileTarget, type TargetInstance } from "../helpers/targets.ts";

const TOKEN = "t0ken-for-the-cli-test-5b1e";

let store: TargetInstance;
let pendingId: string;
beforeAll(async () => {
  store = await fileTarget.create();
  const queue = new Queue({ storage: store.storage });
  pendingId = (await queue.submit("email", { to: "a@example.com" })).id;
});
afterAll(() => store.cleanup());

/** Start `oq dashboard` on a free port and resolve with it and its base URL on 127.0.0.1. */
async function startDashboard(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ oq: RunningOq; base: string }> {
  const oq = startOq(["dashboard", "--port", "0", "--url", store.url!, ...args], {
    cwd: tmpdir(),
    env: cleanEnv({ NO_COLOR: "1", ...env }),
  });
  await oq.waitFor(/Dashboard on http:\/\/[^\s]+:\d+\//);
  const port = /Dashboard on http:\/\/[^\s]+:(\d+)\//.exec(oq.stderr)![1];
  return { oq, base: `http://127.0.0.1:${port}` };
}

async function stop(oq: RunningOq): Promise<number | null> {
  oq.child.kill("SIGTERM");
  return oq.exited;
}

describe("isLoopback", () => {
  it("accepts only addresses this machine alone can reach", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"])
      expect(isLoopback(host), host).toBe(true);
    for (const host of ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.com", "128.0.0.1"])
      expect(isLoopback(host), host).toBe(false);
  });
});

describe("oq dashboard", () => {
  it("refuses a non-loopback address without a token, saying what to set (exit 2)", async () => {
    const env = cleanEnv({ NO_COLOR: "1" });
    const [any4, any6, emptyVar] = await Promise.all([
      runOq(["dashboard", "--host", "0.0.0.0", "--url", store.url!], { cwd: tmpdir(), env }),
      runOq(["dashboard", "--host", "::", "--url", store.url!], { cwd: tmpdir(), env }),
      runOq(["dashboard", "--host", "0.0.0.0", "--url", store.url!], {
        cwd: tmpdir(),
        env: { ...env, OQ_DASHBOARD_TOKEN: "" },
      }),
    ]);
    for (const r of [any4, any6, emptyVar]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("without a token");
      expect(r.stderr).toContain("OQ_DASHBOARD_TOKEN");
      expect(r.stderr).toContain("127.0.0.1");
    }
  });

  it("serves on 0.0.0.0 with a token from the environment, only to requests that carry it, and stops on SIGTERM", async () => {
    const { oq, base } = await startDashboard(["--host", "0.0.0.0"], {
      OQ_DASHBOARD_TOKEN: TOKEN,
    });
    try {
      expect(oq.stderr).toMatch(/Dashboard on http:\/\/0\.0\.0\.0:\d+\/ .*token required/);
      const without = await fetch(`${base}/`);
      expect(without.status).toBe(401);
      const withToken = await fetch(`${base}/tasks/${pendingId}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(withToken.status).toBe(200);
      const page = await withToken.text();
      expect(page).toContain(pendingId);
      expect(page).toMatch(/<button[^>]*>Cancel<\/button>/);
      // Its /metrics is behind the token too, and shows the queue's depth.
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      const metrics = await fetch(`${base}/metrics`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(
        /oq_queue_depth\{oq_task_type="email",oq_task_state="due"\} 1/,
      );
    } finally {
      expect(await stop(oq)).toBe(0);
    }
    // The token is a credential: it is never printed.
    expect(oq.stderr + oq.stdout).not.toContain(TOKEN);
    expect(oq.stderr).toContain("SIGTERM: stopping the dashboard");
  });

  it("--base-path serves under it and prints it; --origin is the origin actions must come from; bad values exit 2", async () => {
    const proxy = "https://ops.example.com";
    const queue = new Queue({ storage: store.storage });
    const id = (await queue.submit("email", null)).id;
    const { oq, base } = await startDashboard(["--base-path", "/oq", "--origin", proxy]);
    try {
      expect(oq.stderr).toMatch(/Dashboard on http:\/\/127\.0\.0\.1:\d+\/oq\/ /);
      expect((await fetch(`${base}/`)).status).toBe(404);
      const page = await fetch(`${base}/oq/tasks/${id}`);
      expect(page.status).toBe(200);
      const csrf = /name="csrf" value="([0-9a-f]+)"/.exec(await page.text())![1]!;
      const cancel = (origin: string) =>
        fetch(`${base}/oq/tasks/${id}/cancel`, {
          method: "POST",
          headers: { origin, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ csrf }).toString(),
          redirect: "manual",
        });
      // The address it listens on is not the origin browsers use behind the proxy.
      expect((await cancel(base)).status).toBe(403);
      expect((await queue.get(id)).status).toBe("pending");
      expect((await cancel(proxy)).status).toBe(303);
      expect((await queue.get(id)).status).toBe("cancelled");
    } finally {
      expect(await stop(oq)).toBe(0);
    }
    const bad = await runOq(
      ["dashboard", "--port", "0", "--base-path", "oq/", "--url", store.url!],
      {
        cwd: tmpdir(),
        env: cleanEnv({ NO_COLOR: "1" }),
      },
    );
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr).toContain('Invalid basePath "oq/"');
  });

  it("--read-only shows tasks but no action buttons, and refuses an action POST", async () => {
    const { oq, base } = await startDashboard(["--read-only", "--token", TOKEN]);
    try {
      expect(oq.stderr).toContain("read-only");
      const auth = { authorization: `Bearer ${TOKEN}` };
      const page = await fetch(`${base}/tasks/${pendingId}`, { headers: auth });
      expect(page.status).toBe(200);
      const text = await page.text();
      expect(text).toContain(pendingId);
      expect(text).not.toMatch(/<form[^>]*method="post"/i);
      const post = await fetch(`${base}/tasks/${pendingId}/cancel`, {
        method: "POST",
        headers: { ...auth, origin: base, "content-type": "application/x-www-form-urlencoded" },
        body: "csrf=x",
        redirect: "manual",
      });
      expect(post.status).toBe(403);
      const task = await new Queue({ storage: store.storage }).get(pendingId);
      expect(task.status).toBe("pending");
    } finally {
      expect(await stop(oq)).toBe(0);
    }
  });
});
