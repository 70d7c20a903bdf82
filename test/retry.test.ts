import { describe, expect, it } from "vitest";
import {
  AccessDeniedError,
  AmbiguousWriteError,
  ConflictError,
  NotFoundError,
  StorageError,
  ThrottledError,
  UnavailableError,
} from "../src/errors.ts";
import { backoffDelay, isTransient, retry } from "../src/retry.ts";

function recorder() {
  const sleeps: number[] = [];
  return { sleeps, sleep: async (ms: number) => void sleeps.push(ms) };
}

describe("isTransient", () => {
  it("retries outages, throttling, 5xx, ambiguous writes and conflicts", () => {
    expect(isTransient(new UnavailableError("down"))).toBe(true);
    expect(isTransient(new ThrottledError("slow down", { status: 503 }))).toBe(true);
    expect(isTransient(new StorageError("boom", { status: 500 }))).toBe(true);
    expect(isTransient(new StorageError("no status"))).toBe(true);
    expect(isTransient(new AmbiguousWriteError("maybe"))).toBe(true);
    expect(isTransient(new ConflictError("busy"))).toBe(true);
  });

  it("does not retry client errors, missing objects or foreign errors", () => {
    expect(isTransient(new StorageError("bad request", { status: 400 }))).toBe(false);
    expect(isTransient(new NotFoundError("gone", { status: 404 }))).toBe(false);
    expect(isTransient(new AccessDeniedError("no", { status: 403 }))).toBe(false);
    expect(isTransient(new Error("plain"))).toBe(false);
    expect(isTransient("a string")).toBe(false);
  });
});

describe("backoffDelay", () => {
  const policy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 250, random: () => 0.5 };

  it("doubles the cap per retry, takes a random share of it, and never exceeds maxDelayMs", () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(policy, n))).toEqual([50, 100, 125, 125]);
  });

  it("waits at least a server-requested delay, but not past maxDelayMs", () => {
    expect(backoffDelay(policy, 1, 200)).toBe(200);
    expect(backoffDelay(policy, 1, 10_000)).toBe(250);
  });
});

describe("retry", () => {
  it("returns the first success and passes the try number", async () => {
    const { sleeps, sleep } = recorder();
    const seen: number[] = [];
    const result = await retry(
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 3) throw new UnavailableError("down");
        return "ok";
      },
      { attempts: 4, baseDelayMs: 100, maxDelayMs: 5000, random: () => 1, sleep },
    );
    expect(result).toBe("ok");
    expect(seen).toEqual([1, 2, 3]);
    expect(sleeps).toEqual([100, 200]);
  });

  it("rethrows the last failure unchanged after `attempts` tries", async () => {
    const { sleeps, sleep } = recorder();
    const errors = [new UnavailableError("1"), new UnavailableError("2")];
    let i = 0;
    const run = retry(
      async () => {
        throw errors[i++];
      },
      { attempts: 2, baseDelayMs: 10, maxDelayMs: 10, random: () => 1, sleep },
    );
    await expect(run).rejects.toBe(errors[1]);
    expect(sleeps).toEqual([10]);
  });

  it("does not retry what is not retryable", async () => {
    const { sleeps, sleep } = recorder();
    let tries = 0;
    const denied = new AccessDeniedError("no");
    const run = retry(
      async () => {
        tries++;
        throw denied;
      },
      { attempts: 5, baseDelayMs: 10, maxDelayMs: 10, sleep },
    );
    await expect(run).rejects.toBe(denied);
    expect(tries).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("lets the caller decide what is retryable and how long the server asked to wait", async () => {
    const { sleeps, sleep } = recorder();
    let tries = 0;
    const result = await retry(
      async () => {
        if (++tries === 1) throw new AccessDeniedError("clock skew, corrected");
        return tries;
      },
      {
        attempts: 3,
        baseDelayMs: 10,
        maxDelayMs: 1000,
        random: () => 0,
        sleep,
        retryable: (error) => error instanceof AccessDeniedError,
        retryAfterMs: () => 300,
      },
    );
    expect(result).toBe(2);
    expect(sleeps).toEqual([300]);
  });
});
