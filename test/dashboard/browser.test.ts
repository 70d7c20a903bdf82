/**
 * The dashboard in a real browser: the system Chromium driven by puppeteer-core (which never
 * downloads one) against the real `oq dashboard` server, on the file store and on MinIO. It opens
 * the dashboard with its token, clicks through every page, cancels a pending task and replays a
 * failed one with their buttons, and checks that a task whose input is a script tag shows it as
 * text and runs nothing.
 *
 * Without a browser at `OQ_CHROMIUM` (default /usr/bin/chromium) the suite is skipped with a
 * warning, except in CI (`CI` set), where that is a failure. With `OQ_SCREENSHOTS=1` it saves
 * the pages of the file-store run to docs/screenshots/ (for the README).
 */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { Scheduler } from "../../src/schedule/scheduler.ts";
import { PermanentError } from "../../src/worker/options.ts";
import { Worker } from "../../src/worker/worker.ts";
import { cleanEnv, ROOT, type RunningOq, startOq } from "../helpers/cli.ts";
import { fileTarget, s3Target, type Target, type TargetInstance } from "../helpers/targets.ts";
import { fast, until } from "../helpers/wait.ts";
import { heartbeat } from "./helpers.ts";

const CHROMIUM = process.env.OQ_CHROMIUM || "/usr/bin/chromium";
const found = existsSync(CHROMIUM);
const inCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";
const SCREENSHOTS = process.env.OQ_SCREENSHOTS === "1" ? join(ROOT, "docs/screenshots") : undefined;
const TOKEN = "browser-test-token-7c2f9a";
const XSS = "<script>window.__pwned=1</script>";

if (!found && !inCi)
  console.warn(
    `dashboard browser tests skipped: no Chromium at ${CHROMIUM} (install it, e.g. apt-get install chromium, or set OQ_CHROMIUM)`,
  );

const targets: Target[] = [fileTarget, ...(s3Target === undefined ? [] : [s3Target])];

/** What the queue holds before the browser opens the dashboard. */
interface Seeded {
  pendingId: string;
  failedId: string;
  xssId: string;
}

/**
 * Two pending emails (one with a script tag as its input), a report completed and one failed by
 * a worker that then stopped (so its counts are kept), a live worker's heartbeat and a schedule.
 */
async function seed(queue: Queue): Promise<Seeded> {
  const pending = await queue.submit("email", { to: "ada@example.com" });
  const xss = await queue.submit("email", XSS);
  const [, failed] = await queue.submitMany([
    { type: "report", input: { month: "2026-10" } },
    { type: "report", input: { month: "bad" }, options: { maxRetries: 0 } },
  ]);
  const worker = new Worker(queue, { ...fast, heartbeatSeconds: 60, skipDoctor: true }).task(
    "report",
    async (input: { month: string }) => {
      if (input.month === "bad") throw new PermanentError(`no data for month "${input.month}"`);
      return { rows: 42 };
    },
  );
  try {
    await worker.start();
    await until("both reports finished", () => worker.stats.completed + worker.stats.failed === 2);
  } finally {
    await worker.stop();
  }
  await heartbeat(queue, "w-browser-1", ["email", "report"], { report: { completed: 1 } });
  await new Scheduler(queue).create({ id: "nightly-report", type: "report", cron: "0 3 * * *" });
  return { pendingId: pending.id, failedId: failed!.id, xssId: xss.id };
}

/** Start `oq dashboard` on a free port against `store`, with the token. */
async function startDashboard(store: TargetInstance): Promise<{ oq: RunningOq; base: string }> {
  const oq = startOq(["dashboard", "--port", "0"], {
    cwd: tmpdir(),
    env: cleanEnv({ NO_COLOR: "1", OQ_DASHBOARD_TOKEN: TOKEN, ...store.env }),
  });
  await oq.waitFor(/Dashboard on http:\/\/127\.0\.0\.1:\d+\//);
  const port = /Dashboard on http:\/\/127\.0\.0\.1:(\d+)\//.exec(oq.stderr)![1];
  return { oq, base: `http://127.0.0.1:${port}` };
}

/** Click the element matching `selector` and wait for the page it leads to. */
async function clickAndWait(page: Page, selector: string): Promise<void> {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
}

/** Click the link whose text is exactly `text` (within `scope`) and wait for its page. */
async function clickLink(page: Page, text: string, scope = "body"): Promise<void> {
  const link = await page.waitForSelector(`${scope} a::-p-text(${text})`);
  await Promise.all([page.waitForNavigation(), link!.click()]);
}

const h1 = (page: Page) => page.$eval("h1", (e) => e.textContent);
/** The page's main text as a reader sees it: cells and terms apart, rows on lines of their own. */
const main = (page: Page) =>
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, with its spaces and line breaks, is what is checked
  page.$eval("main", (e) => (e as HTMLElement).innerText);

async function screenshot(page: Page, name: string, save: boolean): Promise<void> {
  if (SCREENSHOTS === undefined || !save) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Overview → a type → its task list → a task, whose Cancel button cancels it. */
async function cancelFromOverview(page: Page, base: string, s: Seeded, shots: boolean) {
  // The token once in the URL: the dashboard trades it for a cookie and drops it from the URL.
  await page.goto(`${base}/?token=${TOKEN}`);
  expect(page.url()).toBe(`${base}/`);
  expect(await h1(page)).toBe("Overview");
  expect(
    await page.$$eval("tbody tr td:first-child a", (as) => as.map((a) => a.textContent)),
  ).toEqual(["email", "report"]);
  await screenshot(page, "overview", shots);

  await clickLink(page, "email", "tbody td:first-child");
  expect(new URL(page.url()).searchParams.get("type")).toBe("email");
  expect(await h1(page)).toBe("Tasks");
  const ids = await page.$$eval("tbody tr td:first-child a", (as) => as.map((a) => a.textContent));
  expect(ids).toEqual(expect.arrayContaining([s.pendingId, s.xssId]));
  await screenshot(page, "tasks", shots);

  await clickLink(page, s.pendingId, "tbody");
  expect(await h1(page)).toBe(`Task ${s.pendingId}`);
  expect(await main(page)).toMatch(/Status\s+pending/);
  // What a browser really sends: its Origin (or `Origin: null` under a no-referrer policy) and
  // Sec-Fetch-Site; a handler test can only guess these headers.
  await clickAndWait(page, "main form button::-p-text(Cancel)");
  expect(await main(page)).toContain(`Cancelled task ${s.pendingId}.`);
  expect(await main(page)).toMatch(/Status\s+cancelled/);
  // Cancelled is terminal: the page now offers Replay, not Cancel.
  expect(await page.$("main form button::-p-text(Cancel)")).toBeNull();
}

/** Tasks filtered to failed → the failed task, whose Replay button makes it pending again. */
async function replayFailed(page: Page, s: Seeded, shots: boolean) {
  await clickLink(page, "Tasks", "header");
  await page.select("select[name=status]", "failed");
  await clickAndWait(page, "form.filters button");
  expect(new URL(page.url()).searchParams.get("status")).toBe("failed");
  await clickLink(page, s.failedId, "tbody");
  expect(await main(page)).toMatch(/Status\s+failed/);
  expect(await main(page)).toContain('no data for month "bad"');
  await screenshot(page, "task", shots);
  await clickAndWait(page, "main form button::-p-text(Replay)");
  expect(await main(page)).toContain(`Replayed task ${s.failedId}`);
  expect(await main(page)).toMatch(/Status\s+pending/);
}

/** A script tag as input is shown as text; nothing runs and no script element exists. */
async function scriptStaysText(page: Page, base: string, s: Seeded) {
  await page.goto(`${base}/tasks/${s.xssId}`);
  const inputs = await page.$$eval("main pre", (pres) => pres.map((p) => p.textContent ?? ""));
  expect(inputs.some((text) => text.includes(XSS))).toBe(true);
  expect(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
  expect(await page.$$eval("script", (scripts) => scripts.length)).toBe(0);
}

/** The workers and schedules pages, reached from the navigation. */
async function workersAndSchedules(page: Page, shots: boolean) {
  await clickLink(page, "Workers", "header");
  expect(await h1(page)).toBe("Workers");
  expect(await main(page)).toContain("w-browser-1");
  await screenshot(page, "workers", shots);
  await clickLink(page, "Schedules", "header");
  expect(await h1(page)).toBe("Schedules");
  expect(await main(page)).toMatch(/nightly-report\s+report\s+0 3 \* \* \*/);
  await clickAndWait(page, "main form button::-p-text(Pause)");
  expect(await main(page)).toMatch(/nightly-report[^\n]*paused/);
  await clickAndWait(page, "main form button::-p-text(Resume)");
  expect(await main(page)).toMatch(/nightly-report[^\n]*enabled/);
  await screenshot(page, "schedules", shots);
}

describe.skipIf(!found && !inCi)("dashboard in a browser", () => {
  let browser: Browser | undefined;
  beforeAll(async () => {
    if (!found)
      throw new Error(
        `CI needs Chromium for the dashboard's browser tests: none at ${CHROMIUM} (apt-get install chromium, or set OQ_CHROMIUM)`,
      );
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--headless=new"],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  describe.each(targets)("on $name", (target) => {
    it("clicks through every page, cancels and replays with the buttons, and renders a script tag as text", async () => {
      const store = await target.create();
      let dashboard: { oq: RunningOq; base: string } | undefined;
      const page = await browser!.newPage();
      try {
        await page.setViewport({ width: 1200, height: 720 });
        const seeded = await seed(new Queue({ storage: store.storage, prefix: store.prefix }));
        dashboard = await startDashboard(store);
        const shots = target === fileTarget;
        await cancelFromOverview(page, dashboard.base, seeded, shots);
        await replayFailed(page, seeded, shots);
        await scriptStaysText(page, dashboard.base, seeded);
        await workersAndSchedules(page, shots);
        const queue = new Queue({ storage: store.storage, prefix: store.prefix });
        expect((await queue.get(seeded.pendingId)).status).toBe("cancelled");
        expect((await queue.get(seeded.failedId)).status).toBe("pending");
      } finally {
        await page.close();
        if (dashboard !== undefined) {
          dashboard.oq.child.kill("SIGTERM");
          await dashboard.oq.exited;
        }
        await store.cleanup();
      }
    }, 180_000);
  });
});
