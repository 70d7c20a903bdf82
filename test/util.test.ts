import { describe, expect, it, vi } from "vitest";
import { MAX_TIMER_MS, mapLimit, sleep, startTimer } from "../src/util/async.ts";
import { errorMessage } from "../src/util/errors.ts";
import { iso, randomHex, toHex } from "../src/util/format.ts";

describe("mapLimit", () => {
  it("keeps input order and never runs more than `limit` calls at once", async () => {
    let running = 0;
    let peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n, i) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(n);
      running--;
      return `${i}:${n}`;
    });
    expect(out).toEqual(["0:5", "1:1", "2:4", "3:2", "4:3"]);
    expect(peak).toBe(2);
  });
});

describe("startTimer", () => {
  it("waits longer than a timer's 32-bit limit instead of firing at once", async () => {
    let fired = false;
    const timer = startTimer(() => {
      fired = true;
    }, MAX_TIMER_MS + 1000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    timer.clear();
    expect(fired).toBe(false);
  });

  it("fires once the whole delay has passed, in parts", () => {
    vi.useFakeTimers();
    try {
      let fired = 0;
      startTimer(() => fired++, MAX_TIMER_MS + 1000);
      vi.advanceTimersByTime(MAX_TIMER_MS);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(999);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(1);
      expect(fired).toBe(1);
      const cleared = startTimer(() => fired++, 10);
      cleared.clear();
      vi.advanceTimersByTime(20);
      expect(fired).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("sleep", () => {
  it("ends early, without error, when its signal aborts", async () => {
    const controller = new AbortController();
    const done = sleep(60_000, controller.signal);
    controller.abort();
    await expect(done).resolves.toBeUndefined();
  });
});

describe("format helpers", () => {
  it("formats times, bytes and random ids", () => {
    expect(iso(Date.UTC(2026, 0, 2, 3, 4, 5, 6))).toBe("2026-01-02T03:04:05.006Z");
    expect(toHex(new Uint8Array([0, 15, 255]))).toBe("000fff");
    expect(randomHex(4)).toMatch(/^[0-9a-f]{8}$/);
  });

  it("draws random ids from a pool without ever handing out the same bytes twice", () => {
    // Past several refills of the 4,096-byte pool, and sizes that straddle its end.
    const long: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const id = randomHex(1 + (i % 13));
      expect(id).toMatch(new RegExp(`^[0-9a-f]{${2 * (1 + (i % 13))}}$`));
      if (id.length >= 16) long.push(id);
    }
    expect(new Set(long).size).toBe(long.length);
    expect(long.length).toBeGreaterThan(1000);
    expect(randomHex(5000)).toMatch(/^[0-9a-f]{10000}$/);
    // Consecutive draws are not slices of one another (the pool moves on).
    const a = randomHex(16);
    const b = randomHex(16);
    expect(a).not.toBe(b);
  });

  it("errorMessage takes an Error's message and stringifies anything else", () => {
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorMessage("plain")).toBe("plain");
    expect(errorMessage(42)).toBe("42");
  });
});
