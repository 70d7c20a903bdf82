import { describe, expect, it } from "vitest";
import { InvalidStateError, ValidationError } from "../src/errors.ts";
import { parseTimeKey, timeKey } from "../src/keys.ts";
import { backoffMs, DEFAULT_BACKOFF } from "../src/task/backoff.ts";
import { parseTask, type TaskRecord } from "../src/task/record.ts";
import {
  claimTask,
  completeTask,
  type createTask,
  expireLease,
  expireTask,
  failAttempt,
  finishCancelled,
  isClaimable,
  isLeaseExpired,
  LEASE_MARKER_SLACK_MS,
  LEASE_TAKEOVER_MARGIN_MS,
  leaseTakeoverAt,
  placeMarker,
  releaseTask,
  renewLease,
  replayTask,
  requestCancel,
} from "../src/task/transitions.ts";
import { makeTask, T0 } from "./helpers/task.ts";

const make = (over: Partial<Parameters<typeof createTask>[0]> = {}): TaskRecord =>
  makeTask(over, { x: 1 });
const claim = (t: TaskRecord, now = T0, token = "tok") =>
  claimTask(t, { workerId: "w1", token, leaseMs: 10_000, now });

describe("task state machine", () => {
  it("creates a pending task and refuses one that expires before it is available", () => {
    const t = make();
    expect(t).toMatchObject({
      status: "pending",
      attempt: 0,
      event: "submitted",
      marker: "ready/m.1",
      output: null,
    });
    expect(() => make({ availableAt: T0 + 10, expiresAt: T0 + 5 })).toThrow(ValidationError);
  });

  it("claims only due, unexpired pending tasks", () => {
    expect(() => claim(make({ availableAt: T0 + 1 }))).toThrow(InvalidStateError);
    expect(() => claim(make({ expiresAt: T0 + 1 }), T0 + 1)).toThrow(InvalidStateError);
    const r = claim(make());
    expect(r).toMatchObject({
      status: "running",
      attempt: 1,
      lease: { token: "tok", workerId: "w1", expiresAt: new Date(T0 + 10_000).toISOString() },
    });
    expect(() => claim(r, T0 + 5000, "other")).toThrow(InvalidStateError);
  });

  it("takes over an expired lease and records the lost attempt", () => {
    const r = claim(make());
    const taken = claim(r, T0 + 10_000 + LEASE_TAKEOVER_MARGIN_MS, "tok2");
    expect(taken.attempt).toBe(2);
    expect(taken.lease?.token).toBe("tok2");
    expect(taken.lastError?.name).toBe("LeaseExpired");
  });

  it("lets only the lease holder renew, complete, fail or release", () => {
    const r = claim(make());
    expect(() => completeTask(r, "nope", 1, T0)).toThrow(/lease was lost/);
    expect(() => renewLease(r, "nope", 1000, T0)).toThrow(InvalidStateError);
    expect(renewLease(r, "tok", 30_000, T0 + 1).lease?.expiresAt).toBe(
      new Date(T0 + 30_001).toISOString(),
    );
    // Never shorter: a holder whose clock stepped back a minute keeps the lease it has.
    const renewed = renewLease(r, "tok", 30_000, T0 + 1);
    expect(renewLease(renewed, "tok", 10_000, T0 - 60_000).lease?.expiresAt).toBe(
      new Date(T0 + 30_001).toISOString(),
    );
    const done = completeTask(r, "tok", { ok: true }, T0 + 2);
    expect(done).toMatchObject({
      status: "completed",
      output: { ok: true },
      lease: null,
      finishedAt: new Date(T0 + 2).toISOString(),
    });
    expect(() => completeTask(done, "tok", 1, T0)).toThrow(InvalidStateError);
    const back = releaseTask(r, "tok", T0 + 3);
    expect(back).toMatchObject({ status: "pending", attempt: 0, event: "released" });
  });

  it("retries with exponential backoff and equal jitter, then fails", () => {
    expect(backoffMs(DEFAULT_BACKOFF, 1, 0)).toBe(500);
    expect(backoffMs(DEFAULT_BACKOFF, 1, 0.999)).toBeLessThanOrEqual(1000);
    expect(backoffMs(DEFAULT_BACKOFF, 3, 0)).toBe(2000);
    expect(backoffMs(DEFAULT_BACKOFF, 30, 1)).toBe(300_000);
    let t = claim(make());
    t = failAttempt(t, "tok", { name: "E", message: "1" }, T0, 0);
    expect(t).toMatchObject({
      status: "pending",
      event: "retry-scheduled",
      availableAt: new Date(T0 + 500).toISOString(),
    });
    t = failAttempt(claim(t, T0 + 500), "tok", { name: "E", message: "2" }, T0 + 600, 0);
    expect(t.status).toBe("pending");
    t = failAttempt(claim(t, T0 + 5000), "tok", { name: "E", message: "3" }, T0 + 5001, 0);
    expect(t).toMatchObject({
      status: "failed",
      attempt: 3,
      lastError: { message: "3", attempt: 3 },
    });
  });

  it("fails permanent errors at once", () => {
    const t = failAttempt(
      claim(make()),
      "tok",
      { name: "P", message: "x", permanent: true },
      T0,
      0,
    );
    expect(t).toMatchObject({ status: "failed", lastError: { permanent: true } });
  });

  it("cancels pending at once and running cooperatively", () => {
    expect(requestCancel(make(), "r", T0)).toMatchObject({
      status: "cancelled",
      cancel: { reason: "r" },
    });
    const running = claim(make());
    const asked = requestCancel(running, null, T0 + 1);
    expect(asked).toMatchObject({ status: "running", event: "cancel-requested" });
    expect(requestCancel(asked, "again", T0 + 2)).toBe(asked);
    expect(completeTask(asked, "tok", "out", T0 + 3)).toMatchObject({
      status: "cancelled",
      output: "out",
    });
    expect(failAttempt(asked, "tok", { name: "E", message: "x" }, T0 + 3, 0).status).toBe(
      "cancelled",
    );
    expect(finishCancelled(asked, "tok", T0 + 3).status).toBe("cancelled");
    expect(() => requestCancel(completeTask(running, "tok", 1, T0), null, T0)).toThrow(
      InvalidStateError,
    );
    expect(() => claim(asked, T0 + 20_000, "x")).toThrow(InvalidStateError);
    expect(expireLease(asked, T0 + 20_000, 0).status).toBe("cancelled");
  });

  it("expires leases and TTLs only when they have run out", () => {
    const running = claim(make());
    expect(() => expireLease(running, T0 + 9_999, 0)).toThrow(InvalidStateError);
    expect(expireLease(running, T0 + 10_000 + LEASE_TAKEOVER_MARGIN_MS, 0)).toMatchObject({
      status: "pending",
      event: "lease-expired",
      lastError: { name: "LeaseExpired" },
    });
    const ttl = make({ expiresAt: T0 + 100 });
    expect(isClaimable(ttl, T0 + 99)).toBe(true);
    expect(() => expireTask(ttl, T0 + 99)).toThrow(InvalidStateError);
    expect(expireTask(ttl, T0 + 100)).toMatchObject({
      status: "expired",
      finishedAt: new Date(T0 + 100).toISOString(),
    });
  });

  it("takes a lease over only a margin after its expiry, never at the expiry itself (defect 2)", () => {
    const running = claim(make());
    const expiry = T0 + 10_000;
    expect(leaseTakeoverAt(running)).toBe(expiry + LEASE_TAKEOVER_MARGIN_MS);
    for (const now of [expiry, expiry + LEASE_TAKEOVER_MARGIN_MS - 1]) {
      expect(isLeaseExpired(running, now)).toBe(false);
      expect(() => expireLease(running, now, 0)).toThrow(InvalidStateError);
      expect(() => claim(running, now, "other")).toThrow(InvalidStateError);
    }
    expect(isLeaseExpired(running, expiry + LEASE_TAKEOVER_MARGIN_MS)).toBe(true);
    expect(claim(running, expiry + LEASE_TAKEOVER_MARGIN_MS, "other").attempt).toBe(2);
  });

  it("replays failed, expired and cancelled tasks with a fresh budget", () => {
    const failed = failAttempt(
      claim(make()),
      "tok",
      { name: "P", message: "x", permanent: true },
      T0,
      0,
    );
    const again = replayTask(failed, T0 + 5);
    expect(again).toMatchObject({
      status: "pending",
      attempt: 0,
      expiresAt: null,
      event: "replayed",
      lastError: { message: "x" },
    });
    expect(() => replayTask(make(), T0)).toThrow(InvalidStateError);
  });

  it("places markers: kept while in place, new when moved, none when terminal", () => {
    const t = make();
    const next = (ms: number) => `ready/new-${ms}`;
    expect(placeMarker(t, claim(t), next).marker).toBe("ready/m.1");
    const retried = failAttempt(claim(t), "tok", { name: "E", message: "x" }, T0, 0);
    expect(placeMarker(claim(t), retried, next).marker).toBe(`ready/new-${T0 + 500}`);
    expect(placeMarker(claim(t), completeTask(claim(t), "tok", 1, T0), next).marker).toBeNull();
  });

  it("a renewal moves a running task's marker past its takeover time, by a lease length of at most a minute, and not while it lies beyond", () => {
    const t = claim(make());
    const at = (relative: string | null) => parseTimeKey(relative!.split("/")[3]!)!;
    const next = (ms: number) => `ready/t/0/${timeKey(ms)}/x.n.lease`;
    const short = renewLease(t, "tok", 6000, T0 + 1000);
    const moved = placeMarker(t, short, next);
    expect(at(moved.marker)).toBeGreaterThanOrEqual(leaseTakeoverAt(short) + 6000);
    const again = renewLease(moved, "tok", 6000, T0 + 4000);
    expect(placeMarker(moved, again, next).marker).toBe(moved.marker);
    const long = renewLease(t, "tok", 3_600_000, T0 + 1000);
    const far = at(placeMarker(t, long, next).marker);
    expect(far).toBeGreaterThanOrEqual(leaseTakeoverAt(long));
    expect(far).toBeLessThanOrEqual(leaseTakeoverAt(long) + LEASE_MARKER_SLACK_MS + 1000);
  });

  it("parses stored tasks and names what is wrong with foreign objects", () => {
    const t = make();
    expect(parseTask(JSON.stringify(t), "k")).toEqual(t);
    expect(() => parseTask("{", "k")).toThrow(/not JSON/);
    expect(() => parseTask(JSON.stringify({ ...t, status: "weird" }), "k")).toThrow(/status/);
    expect(() => parseTask(JSON.stringify({ ...t, attempt: -1 }), "k")).toThrow(/attempt/);
  });
});
