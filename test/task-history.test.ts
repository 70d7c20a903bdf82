/**
 * The event log each task record keeps (`TaskRecord.history`): every transition appends its
 * entry, renewals do not flood it, it keeps the last `TASK_HISTORY_LIMIT` entries with errors cut
 * short, and records written before it existed still read. Pure: no storage.
 */
import { describe, expect, it } from "vitest";
import { eventLog, TASK_HISTORY_ERROR_CHARS, TASK_HISTORY_LIMIT } from "../src/task/event-log.ts";
import { encodeTask, parseTask, type TaskRecord } from "../src/task/record.ts";
import {
  claimTask,
  completeTask,
  type createTask,
  expireLease,
  expireTask,
  failAttempt,
  finishCancelled,
  LEASE_TAKEOVER_MARGIN_MS,
  releaseTask,
  renewLease,
  replayTask,
  requestCancel,
} from "../src/task/transitions.ts";
import { makeTask, T0 } from "./helpers/task.ts";

const at = (ms: number) => new Date(ms).toISOString();
const make = (over: Partial<Parameters<typeof createTask>[0]> = {}): TaskRecord =>
  makeTask(over, null);
const claim = (t: TaskRecord, now: number, worker = "w1", token = "tok") =>
  claimTask(t, { workerId: worker, token, leaseMs: 10_000, now });
const boom = { message: "boom", name: "Error" };
const events = (t: TaskRecord) => t.history.map((e) => e.event);

describe("task event log", () => {
  it("every transition appends its event, time, worker, attempt and error", () => {
    const submitted = make();
    expect(submitted.history).toEqual([
      { event: "submitted", at: at(T0), worker: null, attempt: 0, error: null },
    ]);
    const claimed = claim(submitted, T0 + 1000);
    const renewed = renewLease(claimed, "tok", 10_000, T0 + 4000);
    const retried = failAttempt(renewed, "tok", boom, T0 + 5000, 0);
    const due = Date.parse(retried.availableAt);
    const again = claim(retried, due, "w2", "tok2");
    const asked = requestCancel(again, "stop", due + 1000);
    const cancelled = finishCancelled(asked, "tok2", due + 2000);
    const replayed = replayTask(cancelled, due + 3000);
    const third = claim(replayed, due + 3000, "w3", "tok3");
    const released = releaseTask(third, "tok3", due + 4000);
    const fourth = claim(released, due + 5000, "w3", "tok4");
    const done = completeTask(fourth, "tok4", 42, due + 6000);
    expect(done.history).toEqual([
      { event: "submitted", at: at(T0), worker: null, attempt: 0, error: null },
      { event: "claimed", at: at(T0 + 1000), worker: "w1", attempt: 1, error: null },
      { event: "lease-renewed", at: at(T0 + 4000), worker: "w1", attempt: 1, error: null },
      // The end of an attempt clears the lease; the entry still names the worker that ran it.
      {
        event: "retry-scheduled",
        at: at(T0 + 5000),
        worker: "w1",
        attempt: 1,
        error: "Error: boom",
      },
      { event: "claimed", at: at(due), worker: "w2", attempt: 2, error: null },
      { event: "cancel-requested", at: at(due + 1000), worker: "w2", attempt: 2, error: null },
      { event: "cancelled", at: at(due + 2000), worker: "w2", attempt: 2, error: null },
      { event: "replayed", at: at(due + 3000), worker: null, attempt: 0, error: null },
      { event: "claimed", at: at(due + 3000), worker: "w3", attempt: 1, error: null },
      { event: "released", at: at(due + 4000), worker: "w3", attempt: 0, error: null },
      { event: "claimed", at: at(due + 5000), worker: "w3", attempt: 1, error: null },
      { event: "completed", at: at(due + 6000), worker: "w3", attempt: 1, error: null },
    ]);
  });

  it("logs expiries, lease recoveries and takeovers with the lost attempt's error", () => {
    const ttl = expireTask(make({ expiresAt: T0 + 1000 }), T0 + 1000);
    expect(ttl.history.at(-1)).toEqual({
      event: "expired",
      at: at(T0 + 1000),
      worker: null,
      attempt: 0,
      error: null,
    });
    const gone = T0 + 10_000 + LEASE_TAKEOVER_MARGIN_MS;
    const recovered = expireLease(claim(make(), T0), gone, 0);
    expect(recovered.history.at(-1)).toMatchObject({
      event: "lease-expired",
      worker: "w1",
      attempt: 1,
      error: `LeaseExpired: lease of w1 expired at ${at(T0 + 10_000)}`,
    });
    const taken = claim(claim(make(), T0), gone, "w2", "tok2");
    expect(taken.history.at(-1)).toEqual({
      event: "claimed",
      at: at(gone),
      worker: "w2",
      attempt: 2,
      error: `LeaseExpired: lease of w1 expired at ${at(T0 + 10_000)}`,
    });
    const pendingCancel = requestCancel(make(), null, T0 + 1);
    expect(pendingCancel.history.at(-1)).toMatchObject({ event: "cancelled", worker: null });
  });

  it("a repeated cancel request changes nothing, so it logs nothing", () => {
    const asked = requestCancel(claim(make(), T0), "stop", T0 + 1);
    expect(requestCancel(asked, "again", T0 + 2)).toBe(asked);
    expect(events(asked)).toEqual(["submitted", "claimed", "cancel-requested"]);
  });

  it("consecutive lease renewals keep one entry, the latest, so a long run does not push its claim out", () => {
    let t = claim(make(), T0);
    for (let i = 1; i <= 100; i++) t = renewLease(t, "tok", 10_000, T0 + i * 3000);
    expect(t.history).toHaveLength(3);
    expect(t.history.at(-1)).toEqual({
      event: "lease-renewed",
      at: at(T0 + 300_000),
      worker: "w1",
      attempt: 1,
      error: null,
    });
    // A renewal after another event starts a new entry.
    t = requestCancel(t, null, T0 + 300_001);
    t = renewLease(t, "tok", 10_000, T0 + 303_000);
    t = renewLease(t, "tok", 10_000, T0 + 306_000);
    expect(events(t)).toEqual([
      "submitted",
      "claimed",
      "lease-renewed",
      "cancel-requested",
      "lease-renewed",
    ]);
  });

  it(`keeps the last ${TASK_HISTORY_LIMIT} entries`, () => {
    let t = make();
    for (let i = 1; i <= 15; i++) {
      t = releaseTask(claim(t, T0 + i * 100, "w1", `tok${i}`), `tok${i}`, T0 + i * 100 + 50);
    }
    // 1 submitted + 15 × (claimed, released) = 31 transitions; the oldest 11 are gone.
    expect(t.history).toHaveLength(TASK_HISTORY_LIMIT);
    expect(t.history[0]).toMatchObject({ event: "claimed", at: at(T0 + 600) });
    expect(t.history.at(-1)).toMatchObject({ event: "released", at: at(T0 + 1550) });
  });

  it(`cuts errors to ${TASK_HISTORY_ERROR_CHARS} characters, so the log stays small whatever handlers throw`, () => {
    let t = make({ maxRetries: 100 });
    const huge = { name: "Error", message: "x".repeat(100_000) };
    for (let i = 1; i <= 40; i++) {
      const now = Date.parse(t.availableAt);
      t = failAttempt(claim(t, now, "w1", `tok${i}`), `tok${i}`, huge, now + 1, 0);
    }
    const error = t.history.at(-1)!.error!;
    expect(error).toHaveLength(TASK_HISTORY_ERROR_CHARS);
    expect(error.startsWith("Error: xxx")).toBe(true);
    expect(error.endsWith("…")).toBe(true);
    expect(JSON.stringify(t.history).length).toBeLessThan(8 * 1024);
  });

  it("reads a record written before the log existed, and its next transition starts the log from its last event", () => {
    const claimed = claim(make(), T0);
    const { history: _, ...old } = claimed;
    const parsed = parseTask(JSON.stringify(old), "tasks/abc.json");
    expect(parsed.history).toEqual([]);
    const stand = { event: "claimed", at: at(T0), worker: "w1", attempt: 1, error: null };
    expect(eventLog(parsed)).toEqual([stand]);
    const done = completeTask(parsed, "tok", 1, T0 + 1000);
    expect(done.history).toEqual([
      stand,
      { event: "completed", at: at(T0 + 1000), worker: "w1", attempt: 1, error: null },
    ]);
    // And it survives the round trip through storage.
    expect(parseTask(encodeTask(done), "tasks/abc.json").history).toEqual(done.history);
  });

  it("rejects a malformed log entry", () => {
    const bad = { ...make(), history: [{ event: "exploded", at: at(T0) }] };
    expect(() => parseTask(JSON.stringify(bad), "tasks/abc.json")).toThrow(/history/);
  });
});
