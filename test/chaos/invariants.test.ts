/**
 * The invariant checker must catch what it claims to catch: each case writes a history that
 * breaks one invariant (or runs a deliberately broken worker) and expects the violation.
 */
import { afterEach, describe, expect, it } from "vitest";
import { internals } from "../../src/queue/internals.ts";
import { Queue } from "../../src/queue/queue.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { DEFAULT_BACKOFF } from "../../src/task/backoff.ts";
import { encodeTask, type TaskRecord } from "../../src/task/record.ts";
import { claimTask, completeTask, createTask, renewLease } from "../../src/task/transitions.ts";
import { Worker } from "../../src/worker/worker.ts";
import { checkRun, type RunLog } from "./invariants.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const ID = "0123456789abcdef0123456789abcdef";

/** A bucket whose clock we move by hand, and a writer of raw task versions. */
function bucket() {
  let now = T0;
  const storage = new MemoryStorage({ now: () => now });
  const queue = new Queue({ storage, now: () => now });
  return {
    queue,
    at: (ms: number) => {
      now = T0 + ms;
    },
    write: (task: TaskRecord) => storage.put(queue.keys.task(task.id), encodeTask(task)),
  };
}

function submitted(now = T0): TaskRecord {
  return createTask(
    {
      id: ID,
      type: "t",
      input: null,
      maxRetries: 3,
      backoff: DEFAULT_BACKOFF,
      timeoutSeconds: null,
      availableAt: now,
      expiresAt: null,
      idempotencyKey: null,
      marker: `ready/x/t/${ID}.00000000`,
    },
    now,
  );
}

const claim = (t: TaskRecord, workerId: string, token: string, now: number) =>
  claimTask(t, { workerId, token, leaseMs: 10_000, now: T0 + now });

const log = (extra: Partial<RunLog> = {}): RunLog => ({
  submitted: [ID],
  executions: [],
  completions: [],
  ...extra,
});

describe("chaos invariants", () => {
  it("accept a clean history with a legitimate takeover", async () => {
    const b = bucket();
    const s = submitted();
    await b.write(s);
    b.at(100);
    const a = claim(s, "A", "ta", 100);
    await b.write(a);
    b.at(20_000); // A's lease ran out at 10.1 s
    const bb = claim(a, "B", "tb", 20_000);
    await b.write(bb);
    b.at(21_000);
    await b.write(completeTask(bb, "tb", 1, T0 + 21_000));
    const report = await checkRun(
      b.queue,
      log({
        executions: [
          { id: ID, workerId: "A", attempt: 1 },
          { id: ID, workerId: "B", attempt: 2 },
        ],
        completions: [{ id: ID, workerId: "B", attempt: 2 }],
      }),
    );
    expect(report.violations).toEqual([]);
    expect(report).toMatchObject({ ok: true, takeovers: 1, duplicated: [ID], lost: [] });
  });

  it("catch an event log that disagrees with the versions (an entry lost or appended twice)", async () => {
    const b = bucket();
    const s = submitted();
    await b.write(s);
    b.at(100);
    const a = claim(s, "A", "ta", 100);
    await b.write(a);
    b.at(200);
    const done = completeTask(a, "ta", 1, T0 + 200);
    // The log lost the claim and logged the completion twice.
    const last = done.history.at(-1)!;
    await b.write({ ...done, history: [done.history[0]!, last, last] });
    const report = await checkRun(
      b.queue,
      log({ completions: [{ id: ID, workerId: "A", attempt: 1 }] }),
    );
    expect(report.violations).toEqual([
      `${ID}: its event log reads submitted,completed,completed, its versions submitted,claimed,completed`,
    ]);
  });

  it("catch a worker whose lease was taken over writing afterwards", async () => {
    const b = bucket();
    const s = submitted();
    await b.write(s);
    const a = claim(s, "A", "ta", 100);
    b.at(100);
    await b.write(a);
    b.at(20_000);
    const bb = claim(a, "B", "tb", 20_000);
    await b.write(bb);
    // A, from its stale copy, renews and then completes over B's claim.
    b.at(20_100);
    await b.write(renewLease(a, "ta", 10_000, T0 + 20_100));
    b.at(20_200);
    await b.write(completeTask(a, "ta", 1, T0 + 20_200));
    const report = await checkRun(
      b.queue,
      log({ completions: [{ id: ID, workerId: "B", attempt: 2 }] }),
    );
    expect(report.ok).toBe(false);
    const text = report.violations.join("\n");
    expect(text).toMatch(/renewed by A, but the lease was B's/);
    expect(text).toMatch(/a stale writer/);
    // B believes it completed; the history says the stale A's write did.
    expect(text).toMatch(
      /B reported completing attempt 2, but the history says A completed attempt 1/,
    );
  });

  it("catch a premature takeover, an early run, a double completion and a lost task", async () => {
    const b = bucket();
    const s = { ...submitted(), availableAt: new Date(T0 + 5000).toISOString() };
    await b.write(s);
    b.at(1000); // before availableAt
    const a = claimTask(s, { workerId: "A", token: "ta", leaseMs: 10_000, now: T0 + 6000 });
    await b.write(a);
    b.at(2000); // A's lease runs to 16 s
    const bb = claimTask(a, { workerId: "B", token: "tb", leaseMs: 10_000, now: T0 + 17_000 });
    await b.write(bb);
    b.at(3000);
    const done = completeTask(bb, "tb", 1, T0 + 3000);
    await b.write(done);
    b.at(4000);
    await b.write(done);
    const other = "fedcba9876543210fedcba9876543210";
    const running = claim({ ...submitted(), id: other }, "C", "tc", 0);
    await b.write({ ...submitted(), id: other });
    await b.write(running);
    const report = await checkRun(
      b.queue,
      log({
        submitted: [ID, other, "00000000000000000000000000000000"],
        executions: [{ id: ID, workerId: "Z", attempt: 7 }],
      }),
    );
    const text = report.violations.join("\n");
    expect(text).toMatch(/early run: due at/);
    expect(text).toMatch(/premature takeover from A/);
    expect(text).toMatch(/invalid transition completed -> completed/);
    expect(report.completedTwice).toEqual([ID]);
    expect(text).toMatch(/Z ran attempt 7 without a claim/);
    expect(report.lost.sort()).toEqual(["00000000000000000000000000000000", other].sort());
    expect(text).toMatch(/still running after the run/);
    expect(text).toMatch(/missing/);
  });

  it("catch workers that trust a clock 5 minutes fast (the skew scenario has teeth)", async () => {
    // A queue that ignored server time: no Date headers to correct it, and a clock 5 min fast.
    const storage = new MemoryStorage();
    const blind: Storage = new Proxy(storage, {
      get(target, prop, receiver) {
        if (prop === "serverTime") return () => undefined;
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const honest = new Queue({ storage });
    const delayed = await honest.submit("t", null, { delay: 60 });
    const leased = await honest.submit("t", null);
    const log: RunLog = { submitted: [delayed.id, leased.id], executions: [], completions: [] };
    const holder = new Worker(honest, { leaseSeconds: 60, heartbeatSeconds: 0, minPollMs: 20 });
    holder.task("t", async (_i, ctx) => {
      log.executions.push({ id: ctx.task.id, workerId: ctx.workerId, attempt: ctx.attempt });
      await new Promise((r) => setTimeout(r, 300));
    });
    await holder.start();
    await honest.wait(leased.id, { timeout: 10 }).catch(() => {});
    await holder.stop({ graceMs: 0 });
    // Put the finished one back to running with a live lease, as if its worker were still on it.
    const running = await internals(honest).update(leased.id, (t) => ({
      ...t,
      status: "running",
      event: "lease-renewed",
      lease: {
        token: "x",
        workerId: holder.id,
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      },
      finishedAt: null,
      marker: delayed.marker!.replace(delayed.id, leased.id),
    }));
    await storage.put(honest.keys.full(running.task.marker!), "");
    const thief = new Worker(new Queue({ storage: blind, now: () => Date.now() + 5 * 60_000 }), {
      heartbeatSeconds: 0,
      minPollMs: 20,
      maxPollMs: 50,
    }).task("t", (_i, ctx) => {
      log.executions.push({ id: ctx.task.id, workerId: ctx.workerId, attempt: ctx.attempt });
    });
    workers.push(thief);
    await thief.start();
    await honest.wait(delayed.id, { timeout: 10 });
    await thief.stop();
    const report = await checkRun(honest, log, { expectStatus: null });
    const text = report.violations.join("\n");
    expect(text).toMatch(/early run/);
    expect(text).toMatch(/premature takeover/);
  });
});

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
});
