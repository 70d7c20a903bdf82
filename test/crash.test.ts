import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "../src/connect.ts";
import type { Queue } from "../src/queue/queue.ts";
import { Worker } from "../src/worker/worker.ts";
import { sharedTargets, type TargetInstance } from "./helpers/targets.ts";

/** Start the worker fixture in its own process; resolves once it printed `ready`. */
function startWorkerProcess(
  env: Record<string, string>,
  onLine: (line: string) => void,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/worker-process.ts"], {
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
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line === "ready") resolve(child);
        onLine(line);
        nl = buffer.indexOf("\n");
      }
    });
    child.on("exit", (code) =>
      reject(new Error(`worker process exited (${code}) before it was ready: ${err}`)),
    );
  });
}

for (const target of sharedTargets) {
  describe(`crash recovery on ${target.name}`, () => {
    let env: TargetInstance;
    let queue: Queue;
    const children: ChildProcess[] = [];
    beforeEach(async () => {
      env = await target.create();
      queue = await connect({ storage: env.storage, prefix: env.prefix });
    });
    afterEach(async () => {
      for (const c of children.splice(0)) c.kill("SIGKILL");
      await env.cleanup();
    });

    it("a worker process killed with SIGKILL mid-task: its task is recovered after the lease and completed elsewhere", async () => {
      const hung = await queue.submit("hang", { n: 1 });
      const others = await queue.submitMany(
        Array.from({ length: 5 }, (_, i) => ({ type: "echo", input: i, options: { delay: 2 } })),
      );
      const started: string[] = [];
      const child = await startWorkerProcess(
        { ...env.env!, LEASE_SECONDS: "2", WORKER_ID: "doomed" },
        (line) => {
          if (line.startsWith("started ")) started.push(line.slice(8));
        },
      );
      children.push(child);
      const deadline = Date.now() + 20_000;
      while (!started.includes(hung.id) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect((await queue.get(hung.id)).lease?.workerId).toBe("doomed");
      // A worker writes its first heartbeat while its first claims run (a start does not wait
      // for it), so the task can start first: kill only once the heartbeat is there.
      const heartbeat = queue.keys.worker("doomed");
      while (!(await env.storage.list({ prefix: heartbeat })).objects.length) {
        if (Date.now() > deadline) throw new Error("the worker never wrote its heartbeat");
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));

      const rescuer = new Worker(queue, {
        leaseSeconds: 5,
        minPollMs: 20,
        maxPollMs: 200,
        heartbeatSeconds: 0,
      })
        .task("hang", (_input, ctx) => `rescued on attempt ${ctx.attempt}`)
        .task("echo", (input) => input);
      await rescuer.start();
      try {
        const done = await queue.wait(hung.id, { timeout: 30 });
        expect(done).toMatchObject({
          status: "completed",
          output: "rescued on attempt 2",
          attempt: 2,
        });
        expect(done.lastError).toMatchObject({ name: "LeaseExpired" });
        for (const t of others)
          expect((await queue.wait(t.id, { timeout: 30 })).status).toBe("completed");
        // Renewals depend on how long the kill waited for the heartbeat: not counted.
        const events = (await queue.getVersions(hung.id))
          .map((h) => h.task?.event)
          .filter((e) => e !== "lease-renewed");
        expect(events).toEqual(["submitted", "claimed", "claimed", "completed"]);
      } finally {
        await rescuer.stop();
      }
      // The killed worker's heartbeat remains (it could not delete it): that is how `oq workers` shows it stale.
      const beats = await env.storage.list({ prefix: queue.keys.workers });
      expect(beats.objects.map((o) => o.key)).toEqual([queue.keys.worker("doomed")]);
    }, 60_000);
  });
}
