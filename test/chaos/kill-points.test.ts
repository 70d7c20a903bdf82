/**
 * A worker killed between any two writes of its claim, its first lease renewal or its outcome
 * (issue 16: two tasks of the process soak looked stuck `running` after their worker's SIGKILL).
 * The kill lands right after the chosen write reached storage and before the worker read the
 * answer (test/support/kill-switch.ts); another worker must then run the task once its lease has
 * expired, and no attempt may run twice.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { Worker, type WorkerOptions } from "../../src/worker/worker.ts";
import { type TargetInstance, targets } from "../helpers/targets.ts";
import { fast, until } from "../helpers/wait.ts";
import { type KillSwitch, killSwitch, type LandedCall } from "../support/kill-switch.ts";

/** Short leases, so a killed worker's task comes back within a few seconds. */
const options: WorkerOptions = { ...fast, skipDoctor: true, leaseSeconds: 1, signalGraceMs: 10 };

/** Where the doomed worker dies: right after this write of its landed (`p`: the queue prefix). */
type KillPoint = (call: LandedCall, before: readonly LandedCall[], p: string) => boolean;

const taskWrites = (calls: readonly LandedCall[], p: string) =>
  calls.filter((c) => c.op === "put" && c.key.startsWith(`${p}tasks/`)).length;

/** Kill points while the handler runs (it never returns): the claim and the first renewal. */
const whileRunning: [string, KillPoint][] = [
  ["its claim landed", (c, _, p) => c.op === "put" && c.key.startsWith(`${p}tasks/`)],
  ["its first renewal put the lease marker", (c) => c.op === "put" && c.key.endsWith(".lease")],
  [
    "its first renewal's task write landed",
    (c, before, p) =>
      c.op === "put" && c.key.startsWith(`${p}tasks/`) && taskWrites(before, p) === 1,
  ],
  [
    "its first renewal deleted the claim-time marker",
    // By the version the task names where the storage keeps versions, else plainly.
    (c, _, p) => (c.op === "delete" || c.op === "deleteVersion") && c.key.startsWith(`${p}ready/`),
  ],
];

for (const target of targets) {
  describe(`a worker killed at any point of an attempt, on ${target.name} (issue 16)`, () => {
    let env: TargetInstance;
    let doomed: KillSwitch;
    const workers: Worker[] = [];
    /** Handler runs: task id and attempt, in order. */
    let runs: string[];
    beforeEach(async () => {
      env = await target.create();
      runs = [];
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    /** Submit a task; a worker on a kill switch claims it and dies at `point`. */
    async function killedAt(point: KillPoint, handlerReturns: boolean, extra: WorkerOptions = {}) {
      const queue = new Queue({ storage: env.storage, prefix: env.prefix });
      const task = await queue.submit("t", { n: 1 });
      doomed = killSwitch(env.storage, (call, before) => point(call, before, env.prefix));
      const victim = new Worker(new Queue({ storage: doomed.storage, prefix: env.prefix }), {
        ...options,
        ...extra,
        id: "victim",
      }).task("t", (_input, ctx) => {
        runs.push(`${ctx.task.id}#${ctx.attempt}`);
        return handlerReturns ? "victim" : new Promise<never>(() => {});
      });
      workers.push(victim);
      victim.start();
      await until("the victim was killed", () => doomed.killed, 10_000);
      return { queue, task };
    }

    /** A healthy worker that takes over whatever the victim left. */
    function rescuer(queue: Queue): Worker {
      const worker = new Worker(queue, { ...options, id: "rescuer" }).task("t", (_input, ctx) => {
        runs.push(`${ctx.task.id}#${ctx.attempt}`);
        return "rescuer";
      });
      workers.push(worker);
      worker.start();
      return worker;
    }

    for (const [name, point] of whileRunning) {
      it(`killed when ${name}: the task runs again once its lease expired, each attempt once`, async () => {
        const { queue, task } = await killedAt(point, false);
        rescuer(queue);
        await until(
          "the task completed",
          async () => (await queue.get(task.id))?.status === "completed",
          15_000,
        );
        const done = (await queue.get(task.id))!;
        expect(done.output).toBe("rescuer");
        // The victim's attempt counts (its handler may have run); the rescuer's is the next.
        expect(done.attempt).toBe(2);
        expect(runs.filter((r) => r === `${task.id}#2`)).toHaveLength(1);
        expect(runs.every((r) => r === `${task.id}#1` || r === `${task.id}#2`)).toBe(true);
        expect(new Set(runs).size).toBe(runs.length);
      });
    }

    it("killed when its claim landed, its heartbeat still live (its share unowned): another worker steals the task", async () => {
      // The hour soak's tasks were stolen from a killed worker's share and their thief was killed
      // in turn: with heartbeats on, the dead worker counts as live for 3 intervals, and its
      // share is taken only by stealing (due for 3 s, newest first).
      const beats = { heartbeatSeconds: 1 };
      const { queue, task } = await killedAt(whileRunning[0]![1], false, beats);
      for (const id of ["rescuer-1", "rescuer-2"]) {
        const worker = new Worker(queue, { ...options, ...beats, id }).task("t", (_input, ctx) => {
          runs.push(`${ctx.task.id}#${ctx.attempt}`);
          return id;
        });
        workers.push(worker);
        worker.start();
      }
      await until(
        "the task completed",
        async () => (await queue.get(task.id))?.status === "completed",
        15_000,
      );
      expect((await queue.get(task.id))!.attempt).toBe(2);
      expect(new Set(runs).size).toBe(runs.length);
    });

    it("killed when its outcome landed: the task stays completed and never runs again", async () => {
      const { queue, task } = await killedAt(
        (c, before, p) =>
          c.op === "put" && c.key.startsWith(`${p}tasks/`) && taskWrites(before, p) === 1,
        true,
      );
      // The victim never saw the answer, yet its outcome is the truth in storage.
      expect((await queue.get(task.id))?.status).toBe("completed");
      rescuer(queue);
      await new Promise((r) => setTimeout(r, 3500));
      const done = (await queue.get(task.id))!;
      expect(done.status).toBe("completed");
      expect(done.output).toBe("victim");
      expect(runs).toEqual([`${task.id}#1`]);
    });
  });
}
