import { describe, expect, it } from "vitest";
import type { StoredAtEnd, TaskFate } from "../scripts/soak-checks.ts";
import {
  checkRssFlat,
  checkSocketsFlat,
  checkTasksEnded,
  type ExpectedTask,
  type ProcessSample,
} from "../scripts/soak-processes-checks.ts";

const MIB = 1024;
const options = { warmupS: 120 };

/** A process spawned at `spawnedS`, read every 10 s for `minutes`. */
function lifetime(
  spawnedS: number,
  minutes: number,
  rssKb: (s: number) => number,
  sockets: (s: number) => number = () => 6,
): ProcessSample[] {
  return Array.from({ length: (minutes * 60) / 10 + 1 }, (_, i) => {
    const age = i * 10;
    return { elapsedS: spawnedS + age, rssKb: rssKb(age), sockets: sockets(age) };
  });
}

describe("process soak: RSS flat", () => {
  it("passes a process whose RSS settles after start-up and then jitters", () => {
    const samples = lifetime(300, 30, (s) =>
      s < 90 ? 40 * MIB + s * MIB : 150 * MIB + ((s / 10) % 3) * 2 * MIB,
    );
    const verdict = checkRssFlat(samples, 300, options);
    expect(verdict).toMatchObject({ judged: true, ok: true });
  });

  it("flags a process whose RSS keeps growing (2 MiB a minute for 30 minutes)", () => {
    const samples = lifetime(0, 30, (s) => 150 * MIB + (s / 60) * 2 * MIB);
    const verdict = checkRssFlat(samples, 0, options);
    expect(verdict.judged).toBe(true);
    expect(verdict.ok).toBe(false);
    expect(verdict.reason).toMatch(/RSS still growing/);
    expect(verdict.slopePerMinute).toBeCloseTo(2 * MIB, 0);
  });

  it("ignores the warm-up: a slow start-up alone is not growth", () => {
    // RSS climbs for the first 600 s of a 15-minute lifetime, then stays put.
    const slow = lifetime(0, 15, (s) => (s < 600 ? 20 * MIB + (s / 600) * 130 * MIB : 150 * MIB));
    expect(checkRssFlat(slow, 0, { warmupS: 600 }).ok).toBe(true);
    expect(checkRssFlat(slow, 0, { warmupS: 0 }).ok).toBe(false);
  });

  it("does not judge a lifetime too short after its warm-up", () => {
    const short = lifetime(600, 3, () => 150 * MIB);
    expect(checkRssFlat(short, 600, options)).toMatchObject({ judged: false, ok: true });
  });
});

describe("process soak: sockets flat", () => {
  it("passes a process whose sockets stay within the slack", () => {
    const samples = lifetime(
      0,
      20,
      () => 0,
      (s) => 5 + ((s / 10) % 4),
    );
    expect(checkSocketsFlat(samples, 0, options)).toMatchObject({ judged: true, ok: true });
  });

  it("flags sockets that pile up (one more a minute)", () => {
    const samples = lifetime(
      0,
      20,
      () => 0,
      (s) => 5 + Math.floor(s / 60),
    );
    const verdict = checkSocketsFlat(samples, 0, options);
    expect(verdict.ok).toBe(false);
    expect(verdict.reason).toMatch(/sockets piling up/);
  });
});

describe("process soak: no task lost", () => {
  const endMs = 3_600_000;
  const task = (id: string, submittedMs = 0): ExpectedTask => ({
    id,
    expected: "completed",
    submittedMs,
  });
  const fate = (id: string, over: Partial<TaskFate>): [string, TaskFate] => [
    id,
    { id, lastStatus: "pending", executions: {}, presentAtEnd: true, ...over },
  ];
  const check = (tasks: ExpectedTask[], fates: [string, TaskFate][]) =>
    checkTasksEnded(tasks, new Map(fates), { endMs, liveBoundMs: 300_000 });

  it("counts a task that ended as meant, pruned or not, and a young live one", () => {
    const finished = { status: "completed" as const, atMs: 1000 };
    const result = check(
      [task("a"), task("b"), task("c", endMs - 10_000)],
      [
        fate("a", { lastStatus: "completed", finished, presentAtEnd: false, deletedMs: 70_000 }),
        fate("b", { lastStatus: "completed", finished }),
        fate("c", { lastStatus: "running" }),
      ],
    );
    expect(result).toEqual({ ended: 2, live: 1, violations: [], endedUnseen: [] });
  });

  it("flags a task gone without finishing, one stuck past the bound, one ended wrongly, one never seen", () => {
    const result = check(
      [task("lost"), task("stuck"), task("wrong"), task("unseen")],
      [
        fate("lost", { lastStatus: "running", presentAtEnd: false }),
        fate("stuck", { lastStatus: "running" }),
        fate("wrong", { lastStatus: "failed", finished: { status: "failed", atMs: 5 } }),
      ],
    );
    expect(result.ended).toBe(0);
    expect(result.live).toBe(0);
    expect(result.violations).toEqual([
      "lost: running, not finished and gone at the end (lost)",
      "stuck: still running 3600 s after its submit (stuck; bound 300 s)",
      "wrong: ended failed, meant to end completed",
      "unseen: submitted, but no write of it was seen",
    ]);
  });

  it("a task whose ending its SIGKILLed worker never saw answered is not stuck: its object says how it ended (issue 16)", () => {
    // The witness notes a write once its worker read the answer: the soak of 2026-11-30 took two
    // tasks completed by such writes for tasks stuck `running`.
    const stored = (status: string, over: Partial<StoredAtEnd> = {}): Partial<TaskFate> => ({
      lastStatus: "running",
      stored: {
        status,
        finishedAt: status === "running" ? null : "2026-11-30T20:39:17.000Z",
        attempt: 1,
        leaseExpiresAt: status === "running" ? "2026-11-30T20:40:17.000Z" : null,
        marker: status === "running" ? "ready/soak/0/20261130T203917Z/s.0a1b2c3d" : null,
        markerExists: false,
        ...over,
      },
    });
    const result = check(
      [task("done"), task("wrong"), task("stuck")],
      [
        fate("done", stored("completed")),
        fate("wrong", stored("failed")),
        fate("stuck", stored("running", { markerExists: true })),
      ],
    );
    expect(result.ended).toBe(1);
    expect(result.endedUnseen).toEqual([
      "done: completed at 2026-11-30T20:39:17.000Z (attempt 1) by a write its worker never saw answered (killed); the witness last saw running",
    ]);
    expect(result.violations).toEqual([
      "wrong: ended failed, meant to end completed",
      "stuck: still running 3600 s after its submit (stuck; bound 300 s); stored running, attempt 1, lease until 2026-11-30T20:40:17.000Z, marker ready/soak/0/20261130T203917Z/s.0a1b2c3d",
    ]);
  });
});
