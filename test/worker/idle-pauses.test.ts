/**
 * An idle worker's pauses between polls: doubling to `maxPollMs`, and the first pause at the
 * ceiling shortened at random, so workers that went idle together do not poll in step.
 * Fake timers: listing times are exact.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { observeRequests } from "../../src/storage/count.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { IdlePauses } from "../../src/worker/poll-pause.ts";
import { Worker } from "../../src/worker/worker.ts";

/** The pauses `pauses` gives for `n` idle polls in a row. */
function take(pauses: IdlePauses, n: number, steppedOnly = false): number[] {
  return Array.from({ length: n }, () => {
    const ms = pauses.ms;
    pauses.advance(steppedOnly);
    return ms;
  });
}

describe("IdlePauses", () => {
  it("double to the ceiling; the first pause there is shortened by random() times itself, the rest are whole", () => {
    const pauses = new IdlePauses(250, 6000, () => 0.5);
    expect(take(pauses, 8)).toEqual([250, 500, 1000, 2000, 4000, 3000, 6000, 6000]);
    // Work found: the ramp starts over, and reaching the ceiling again spreads the phase again.
    pauses.reset();
    expect(take(pauses, 7)).toEqual([250, 500, 1000, 2000, 4000, 3000, 6000]);
  });

  it("a poll spent on a monitor step keeps the pause; random() = 0 keeps the ramp as it was", () => {
    const pauses = new IdlePauses(250, 6000, () => 0);
    expect(take(pauses, 2, true)).toEqual([250, 250]);
    expect(take(pauses, 7)).toEqual([250, 500, 1000, 2000, 4000, 6000, 6000]);
  });

  it("minPollMs at the ceiling already: nothing to shorten", () => {
    expect(take(new IdlePauses(500, 500, () => 0.9), 3)).toEqual([500, 500, 500]);
  });
});

/** `storage` as one worker's client, noting the (fake) time of each of its listings in `log`. */
function listingTimes(storage: MemoryStorage, log: number[]) {
  return observeRequests(storage, (kind) => {
    if (kind === "LIST") log.push(Date.now());
  });
}

describe("idle workers that went idle together", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("poll at different instants once at the ceiling (they listed in step for as long as they stayed idle)", async () => {
    const storage = new MemoryStorage();
    const a: number[] = [];
    const b: number[] = [];
    const workers = [[0, a] as const, [0.8, b] as const].map(([r, log]) =>
      new Worker(new Queue({ storage: listingTimes(storage, log), random: () => r }), {
        skipDoctor: true,
        heartbeatSeconds: 0,
        monitor: false,
        minPollMs: 250,
        maxPollMs: 6000,
      }).task("t", () => null),
    );
    await Promise.all(workers.map((w) => w.start()));
    await vi.advanceTimersByTimeAsync(60_000);
    await Promise.all(workers.map((w) => w.stop()));
    // The ramp is the same for both (they start together); from the ceiling on, w1 lists 4.8 s
    // (0.8 * 6000) before w0, every time: their phases differ by 4.8 s.
    const start = a[0]!;
    const late = (times: number[]) => times.filter((t) => t - start > 20_000);
    const phases = (times: number[]) => late(times).map((t) => (t - start) % 6000);
    expect(phases(a).length).toBeGreaterThan(5);
    expect(new Set(phases(a))).toEqual(new Set([1750]));
    expect(new Set(phases(b))).toEqual(new Set([(1750 - 4800 + 6000) % 6000]));
    // And as many listings a minute as before: one per 6 s at the ceiling.
    for (const times of [late(a), late(b)])
      expect(times.slice(1).map((t, i) => t - times[i]!)).toEqual(times.slice(1).map(() => 6000));
  });
});
