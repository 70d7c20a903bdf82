import { describe, expect, it } from "vitest";
import {
  checkFates,
  checkPlateau,
  checkPruned,
  type Point,
  type TaskFate,
} from "../scripts/soak-checks.ts";

const MINUTE = 60_000;
const retentionMs = { completed: MINUTE, failed: MINUTE, cancelled: MINUTE, expired: MINUTE };
const options = { retentionMs, toleranceMs: 1000 };

/** A task completed at `finishedMs` (attempt 1 ran once), deleted at `deletedMs` if given. */
function fate(id: string, finishedMs: number, deletedMs?: number): TaskFate {
  return {
    id,
    lastStatus: "completed",
    finished: { status: "completed", atMs: finishedMs },
    executions: { 1: 1 },
    presentAtEnd: deletedMs === undefined,
    ...(deletedMs === undefined ? {} : { deletedMs, statusAtDelete: "completed" }),
  };
}

/** A series sampled every 15 s for 10 minutes. */
const series = (value: (s: number) => number): Point[] =>
  Array.from({ length: 41 }, (_, i) => ({ elapsedS: i * 15, value: value(i * 15) }));

describe("soak checks", () => {
  it("pass a task deleted after its retention and one still stored", () => {
    expect(checkFates([fate("a", 0, MINUTE + 5), fate("b", 0)], options)).toEqual([]);
  });

  it("accept a delete up to the tolerance early (whole-second times), not more", () => {
    expect(checkFates([fate("a", 0, MINUTE - 999)], options)).toEqual([]);
    expect(checkFates([fate("a", 0, MINUTE - 1500)], options)).toEqual([
      "a: completed at 1970-01-01T00:00:00.000Z, deleted 1.5 s before its retention passed",
    ]);
  });

  it("catch a live task deleted (pending or running when the delete was sent)", () => {
    const live: TaskFate = {
      id: "r",
      lastStatus: "running",
      executions: { 1: 1 },
      presentAtEnd: false,
      deletedMs: 5000,
      statusAtDelete: "running",
    };
    expect(checkFates([live], options)).toEqual(["r: deleted while running (live task deleted)"]);
  });

  it("judge a task deleted while the witness saw it running by the version the delete removed (its ending's answer was lost to a kill)", () => {
    const stored = (status: string) => ({
      status,
      finishedAt: status === "running" ? null : new Date(0).toISOString(),
      attempt: 1,
      leaseExpiresAt: null,
      marker: null,
      markerExists: false,
      beforeDelete: true,
    });
    const unseen = (status: string, deletedMs: number): TaskFate => ({
      id: status,
      lastStatus: "running",
      executions: { 1: 1 },
      presentAtEnd: false,
      deletedMs,
      statusAtDelete: "running",
      stored: stored(status),
    });
    expect(checkFates([unseen("completed", MINUTE + 5)], options)).toEqual([]);
    expect(checkFates([unseen("completed", 5000)], options)).toEqual([
      "completed: completed at 1970-01-01T00:00:00.000Z, deleted 55.0 s before its retention passed",
    ]);
    expect(checkFates([unseen("running", MINUTE + 5)], options)).toEqual([
      "running: deleted while running (live task deleted)",
    ]);
  });

  it("catch a task gone without a delete by oq, and an attempt run twice", () => {
    const lost = { ...fate("l", 0), presentAtEnd: false };
    const twice = { ...fate("t", 0), executions: { 1: 2 } };
    expect(checkFates([lost, twice], options)).toEqual([
      "l: gone at the end, but oq never deleted it (lost)",
      "t: attempt 1 ran 2 times",
    ]);
  });

  it("catch a finished task still stored long after its retention (never pruned), not one within the allowance", () => {
    const check = { endMs: 20 * MINUTE, retentionMs, lateMs: 5 * MINUTE };
    expect(
      checkPruned([fate("recent", 14 * MINUTE), fate("pruned", 0, MINUTE + 5)], check),
    ).toEqual([]);
    expect(checkPruned([fate("old", 13 * MINUTE)], check)).toEqual([
      "old: completed at 1970-01-01T00:13:00.000Z, still stored 360 s after its retention passed (never pruned)",
    ]);
    // Judged by what storage holds when the witness missed the ending write.
    const unseen: TaskFate = {
      id: "u",
      lastStatus: "running",
      executions: { 1: 1 },
      presentAtEnd: true,
      stored: {
        status: "completed",
        finishedAt: new Date(0).toISOString(),
        attempt: 1,
        leaseExpiresAt: null,
        marker: null,
        markerExists: false,
      },
    };
    expect(checkPruned([unseen], check)).toHaveLength(1);
  });

  it("see a count that levels off after the first minutes as levelled off", () => {
    const verdict = checkPlateau(series((s) => Math.min(s, 90) * 20 + (s % 30 === 0 ? 40 : 0)));
    expect(verdict.ok).toBe(true);
  });

  it("see a count that keeps growing, even slowly, as not levelled off", () => {
    expect(checkPlateau(series((s) => 1000 + s * 2)).ok).toBe(false);
    expect(checkPlateau(series((s) => Math.min(s, 90) * 20 + s)).ok).toBe(false);
  });

  it("refuse to judge a run too short to have a second quarter", () => {
    const verdict = checkPlateau([
      { elapsedS: 0, value: 0 },
      { elapsedS: 60, value: 10 },
    ]);
    expect(verdict.ok).toBe(false);
    expect(verdict.reason).toMatch(/too few samples/);
  });
});
