/** What a worker does with a task its listing found (the pure decision of src/worker/next-step.ts). */
import { describe, expect, it } from "vitest";
import { claimTask, leaseTakeoverAt } from "../../src/task/transitions.ts";
import { nextStep, type StepContext } from "../../src/worker/next-step.ts";
import { UNHANDLED_RECHECK_MS } from "../../src/worker/poller-settings.ts";
import { makeTask, T0 } from "../helpers/task.ts";

const at = (over: Partial<StepContext> = {}): StepContext => ({
  now: T0 + 1000,
  latest: T0 + 1000,
  handled: true,
  monitor: false,
  listedAs: "t",
  ...over,
});

describe("nextStep", () => {
  it("claims a due pending task of a type it runs, waits for one not due yet", () => {
    expect(nextStep(makeTask(), at())).toEqual({ kind: "claim" });
    expect(nextStep(makeTask({ availableAt: T0 + 5000 }), at())).toEqual({
      kind: "not-due",
      at: T0 + 5000,
    });
  });

  it("expires a pending task past its TTL, as a monitor or a worker of its type", () => {
    const task = makeTask({ expiresAt: T0 + 500 });
    const step = nextStep(task, at());
    expect(step).toMatchObject({ kind: "monitor", as: "expired" });
    if (step.kind !== "monitor") return;
    expect(step.change(task, T0 + 1000, 0.5).status).toBe("expired");
    expect(nextStep(task, at({ handled: false }))).toEqual({ kind: "leave" });
    expect(nextStep(task, at({ handled: false, monitor: true }))).toMatchObject({
      kind: "monitor",
    });
  });

  it("never starts a task whose TTL may have run out by the server's latest time; expires it once surely", () => {
    // The server's time is somewhere in [T0 + 1000, T0 + 1800]; the TTL ends at T0 + 1500.
    const task = makeTask({ expiresAt: T0 + 1500 });
    const loose = at({ latest: T0 + 1800 });
    expect(nextStep(task, loose)).toEqual({ kind: "not-due", at: T0 + 1500 });
    expect(nextStep(task, at({ latest: T0 + 1400 }))).toEqual({ kind: "claim" });
    expect(nextStep(task, at({ now: T0 + 1500, latest: T0 + 2300 }))).toMatchObject({
      kind: "monitor",
      as: "expired",
    });
  });

  it("ends cancelled a pending record with a cancel request, keeping the request", () => {
    const cancel = { requestedAt: new Date(T0).toISOString(), reason: "by hand" };
    const task = { ...makeTask({ availableAt: T0 + 60_000 }), cancel };
    const step = nextStep(task, at());
    expect(step).toMatchObject({ kind: "monitor", as: "recovered" });
    if (step.kind !== "monitor") return;
    const ended = step.change(task, T0 + 1000, 0.5);
    expect(ended.status).toBe("cancelled");
    expect(ended.cancel).toEqual(cancel);
  });

  it("skips a type it does not run, and warns when the record's type is not its marker's", () => {
    expect(nextStep(makeTask(), at({ handled: false }))).toEqual({
      kind: "unhandled",
      at: T0 + 1000 + UNHANDLED_RECHECK_MS,
    });
    const misfiled = nextStep(makeTask({ type: "other" }), at({ handled: false }));
    expect(misfiled).toMatchObject({ kind: "unhandled" });
    if (misfiled.kind !== "unhandled") return;
    expect(misfiled.warning).toContain("is of type other but indexed under t");
  });

  it("leaves a live lease until its takeover time, then takes it over or recovers it", () => {
    const running = claimTask(makeTask(), { workerId: "w", token: "k", leaseMs: 5000, now: T0 });
    expect(nextStep(running, at())).toEqual({ kind: "lease-live", at: leaseTakeoverAt(running) });
    const later = at({ now: leaseTakeoverAt(running) + 1 });
    expect(nextStep(running, later)).toEqual({ kind: "claim" });
    expect(nextStep(running, { ...later, handled: false })).toEqual({ kind: "leave" });
    const recover = nextStep(running, { ...later, handled: false, monitor: true });
    expect(recover).toMatchObject({ kind: "monitor", as: "recovered" });
  });
});
