/**
 * The dashboard's actions change storage: cancel, replay, replay every failed task of a type,
 * pause and resume a type, and pause, resume and trigger a schedule; each redirects back (303) with a flash message.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createDashboard } from "../../src/dashboard/handler.ts";
import { Queue } from "../../src/queue/queue.ts";
import { Scheduler } from "../../src/schedule/scheduler.ts";
import { runAll } from "../helpers/run.ts";
import { type TargetInstance, targets } from "../helpers/targets.ts";
import { csrfOf, get, type Handler, post } from "./helpers.ts";

/** The flash message of a redirect's location. */
const flashOf = (location: string | null, key = "flash") =>
  new URL(location!, "http://x").searchParams.get(key);

describe.each(targets)("dashboard actions on $name", (target) => {
  let env: TargetInstance;
  let queue: Queue;
  let handler: Handler;
  let csrf: string;
  beforeEach(async () => {
    env = await target.create();
    queue = new Queue({ storage: env.storage, prefix: env.prefix });
    handler = createDashboard(queue);
    // Any page with a form carries the handler's token.
    await new Scheduler(queue).create({ id: "nightly", type: "report", cron: "0 3 * * *" });
    csrf = csrfOf((await get(handler, "/schedules")).text);
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("cancel: a pending task ends cancelled, back to its page with a flash", async () => {
    const task = await queue.submit("email", {});
    const back = `/tasks/${task.id}`;
    const done = await post(handler, `/tasks/${task.id}/cancel`, { csrf, back });
    expect(done.status).toBe(303);
    expect(done.location?.startsWith(`${back}?flash=`)).toBe(true);
    expect(flashOf(done.location)).toBe(`Cancelled task ${task.id}.`);
    expect((await queue.get(task.id)).status).toBe("cancelled");
    const page = await get(handler, done.location!);
    expect(page.text).toContain(
      `<div class="flash" role="status">Cancelled task ${task.id}.</div>`,
    );
    // Cancelling it again: an error flash, not a 500.
    const again = await post(handler, `/tasks/${task.id}/cancel`, { csrf, back });
    expect(again.status).toBe(303);
    expect(flashOf(again.location, "error")).toContain("cancelled");
  });

  it("replay: a failed task is pending again; replay-failed replays every failed task of a type", async () => {
    const [one, two, other] = await queue.submitMany([
      { type: "report", input: "fail" },
      { type: "report", input: "fail" },
      { type: "email", input: "fail" },
    ]);
    await runAll(queue, ["report", "email"]);
    const single = await post(handler, `/tasks/${one!.id}/replay`, { csrf });
    expect(single.status).toBe(303);
    expect(single.location).toMatch(new RegExp(`^/tasks/${one!.id}\\?flash=Replayed`));
    expect((await queue.get(one!.id)).status).toBe("pending");
    await runAll(queue, ["report"]);
    const bulk = await post(handler, "/actions/replay-failed", { csrf, type: "report", back: "/" });
    expect(bulk.status).toBe(303);
    expect(flashOf(bulk.location)).toBe("Replayed 2 failed report tasks.");
    expect((await queue.get(one!.id)).status).toBe("pending");
    expect((await queue.get(two!.id)).status).toBe("pending");
    expect((await queue.get(other!.id)).status).toBe("failed");
    const missingType = await post(handler, "/actions/replay-failed", { csrf });
    expect(flashOf(missingType.location, "error")).toContain("type");
  });

  it("types: the overview shows a paused type and its priority-carrying tasks, and pauses and resumes it", async () => {
    const task = await queue.submit("email", {}, { priority: 4 });
    expect((await get(handler, `/tasks/${task.id}`)).text).toContain("<dt>Priority</dt><dd>4</dd>");
    const paused = await post(handler, "/types/email/pause", { csrf, back: "/" });
    expect(paused.status).toBe(303);
    expect(flashOf(paused.location)).toMatch(/^Paused email/);
    expect(await queue.isPaused("email")).toBe(true);
    const overview = (await get(handler, "/")).text;
    expect(overview).toContain("PAUSED");
    expect(overview).toContain('action="/types/email/resume"');
    await post(handler, "/types/email/resume", { csrf, back: "/" });
    expect(await queue.isPaused("email")).toBe(false);
    const after = (await get(handler, "/")).text;
    expect(after).not.toContain("PAUSED");
    expect(after).toContain('action="/types/email/pause"');
    const bad = await post(handler, "/types/no%20such%2Ftype/pause", { csrf, back: "/" });
    expect(bad.status).toBe(303);
    expect(flashOf(bad.location, "error")).toBeTruthy();
  });

  it("schedules: pause and resume flip enabled, trigger submits its task now", async () => {
    const scheduler = new Scheduler(queue);
    const paused = await post(handler, "/schedules/nightly/pause", { csrf });
    expect(paused.status).toBe(303);
    expect(paused.location).toBe(
      `/schedules?flash=${encodeURIComponent("Paused schedule nightly.").replaceAll("%20", "+")}`,
    );
    expect((await scheduler.get("nightly")).enabled).toBe(false);
    await post(handler, "/schedules/nightly/resume", { csrf });
    expect((await scheduler.get("nightly")).enabled).toBe(true);
    const triggered = await post(handler, "/schedules/nightly/trigger", { csrf });
    const id = /task ([0-9a-f]+)\.$/.exec(flashOf(triggered.location)!)?.[1];
    expect(id).toBeDefined();
    const task = await queue.get(id!);
    expect(task).toMatchObject({ type: "report", status: "pending" });
    expect(task.idempotencyKey).toMatch(/^schedule:nightly:manual:/);
    const unknown = await post(handler, "/schedules/nope/pause", { csrf });
    expect(flashOf(unknown.location, "error")).toContain("Schedule nope not found");
  });

  it("goes back only to a page of this dashboard", async () => {
    const task = await queue.submit("email", {});
    for (const back of ["https://evil.test/", "//evil.test/x", "/\\evil.test/x", "/elsewhere"]) {
      const h = createDashboard(queue, { basePath: "/oq" });
      const token = csrfOf((await get(h, `/oq/tasks/${task.id}`)).text);
      const done = await post(h, `/oq/tasks/${task.id}/cancel`, { csrf: token, back });
      expect(done.location?.startsWith(`/oq/tasks/${task.id}?`)).toBe(true);
    }
    // At the root, a path that resolves to `//host` stays on this host.
    const token = csrfOf((await get(handler, `/tasks/${task.id}`)).text);
    const dotted = await post(handler, `/tasks/${task.id}/cancel`, {
      csrf: token,
      back: "/.//evil.test/x",
    });
    expect(dotted.location).toMatch(/^\/evil\.test\/x\?/);
  });
});
