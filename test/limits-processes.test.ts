/**
 * Fleet-wide limits hold across worker PROCESSES (issue 13, item 3): four workers, each in its
 * own process with room for three tasks, against a fleet limit of 3 running never run more than
 * 3 at once, as observed by the handlers themselves; a rate limit of R never starts more than R
 * in a second. Also when a worker holding slots is killed: its slots free when its leases would
 * have run out, and its tasks still run. On the file store and, with `OQ_TEST_S3_*`, on MinIO.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Queue } from "../src/queue/queue.ts";
import { maxOverlap, mostInWindow } from "./helpers/overlap.ts";
import { sharedTargets, type TargetInstance } from "./helpers/targets.ts";
import { until } from "./helpers/wait.ts";

/** What the worker processes' handlers reported. */
interface Observed {
  starts: Map<string, { type: string; at: number }[]>;
  runs: { type: string; id: string; start: number; end: number; claimed?: number }[];
}

/** Start the fixture worker in its own process; resolves once it printed `ready`. */
function startWorker(env: Record<string, string>, seen: Observed): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/limited-worker.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    let buffer = "";
    child.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString();
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const [kind, ...rest] = buffer.slice(0, nl).split(" ");
        buffer = buffer.slice(nl + 1);
        if (kind === "ready") resolve(child);
        if (kind === "start") {
          const [type, id, at] = rest as [string, string, string];
          seen.starts.set(id, [...(seen.starts.get(id) ?? []), { type, at: Number(at) }]);
        }
        if (kind === "run") {
          const [type, id, start, end, claimed] = rest as [string, string, string, string, string?];
          const run = { type, id, start: Number(start), end: Number(end) };
          seen.runs.push(claimed === undefined ? run : { ...run, claimed: Number(claimed) });
        }
      }
    });
    child.on("exit", (code) => reject(new Error(`worker exited (${code}) before ready: ${err}`)));
  });
}

for (const target of sharedTargets) {
  describe(`fleet limits across worker processes on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    let seen: Observed;
    const children: ChildProcess[] = [];
    const fleet = (n: number, extra: Record<string, string> = {}) =>
      Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const child = await startWorker({ ...env.env!, WORKER_ID: `p${i}`, ...extra }, seen);
          children.push(child);
          return child;
        }),
      );

    beforeEach(async () => {
      env = await target.create();
      queue = new Queue({ storage: env.storage, prefix: env.prefix });
      seen = { starts: new Map(), runs: [] };
    });
    afterEach(async () => {
      for (const c of children.splice(0)) c.kill("SIGKILL");
      await env.cleanup();
    });

    it("4 worker processes never run more than the fleet limit of 3 at once", {
      timeout: 120_000,
    }, async () => {
      await queue.setLimits("limited", { concurrency: 3 });
      const tasks = await queue.submitMany(
        Array.from({ length: 24 }, () => ({ type: "limited", input: null })),
      );
      await fleet(4);
      await until("every task ran", () => seen.runs.length >= 24, 90_000);
      const runs = seen.runs.filter((r) => r.type === "limited");
      expect(new Set(runs.map((r) => r.id))).toEqual(new Set(tasks.map((t) => t.id)));
      expect(runs.length).toBe(24);
      expect(maxOverlap(runs)).toBeLessThanOrEqual(3);
      // The limit is used, not merely respected by running one at a time.
      expect(maxOverlap(runs)).toBeGreaterThanOrEqual(2);
    });

    it("4 worker processes never start more than R tasks of a rate-limited type per second", {
      timeout: 120_000,
    }, async () => {
      const rate = 5;
      await queue.setLimits("rated", { ratePerSecond: rate });
      await queue.submitMany(Array.from({ length: 20 }, () => ({ type: "rated", input: null })));
      await fleet(4);
      await until("every task ran", () => seen.runs.length >= 20, 90_000);
      const starts = seen.runs.map((r) => r.start);
      // Slots are stamped in server time before the claim is written; a handler starts up to a
      // claim write later, so windows 250 ms shorter than a second are checked.
      expect(mostInWindow(starts, 750)).toBeLessThanOrEqual(rate);
      expect(Math.max(...starts) - Math.min(...starts)).toBeGreaterThanOrEqual(3000 - 250);
    });

    it("a killed worker's slots free when its leases run out, and its tasks run elsewhere", {
      timeout: 120_000,
    }, async () => {
      await queue.setLimits("limited", { concurrency: 2 });
      const tasks = await queue.submitMany(
        Array.from({ length: 6 }, () => ({ type: "limited", input: null })),
      );
      const [doomed] = await fleet(1, { LEASE_SECONDS: "2", LIMITED_MS: "60000" });
      await until("the doomed worker holds both slots", () => seen.starts.size === 2, 30_000);
      doomed!.kill("SIGKILL");
      await new Promise((r) => doomed!.once("exit", r));
      const killedAt = Date.now();
      const held = [...seen.starts.keys()];
      await fleet(3, { LEASE_SECONDS: "2", LIMITED_MS: "200" });
      await until("every task ran", () => new Set(seen.runs.map((r) => r.id)).size === 6, 90_000);
      expect(new Set(seen.runs.map((r) => r.id))).toEqual(new Set(tasks.map((t) => t.id)));
      // Nothing started again before the killed worker's leases (2 s) had run out.
      const restarts = seen.runs.filter((r) => !held.includes(r.id) || r.start > killedAt);
      expect(Math.min(...restarts.map((r) => r.start))).toBeGreaterThanOrEqual(killedAt);
      // The killed handlers count as running until their leases ran out.
      const all = [
        ...seen.runs,
        ...held.map((id) => ({ start: seen.starts.get(id)![0]!.at, end: killedAt })),
      ];
      expect(maxOverlap(all)).toBeLessThanOrEqual(2);
    });
  });
}
