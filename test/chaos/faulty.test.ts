import { describe, expect, it } from "vitest";
import {
  AmbiguousWriteError,
  ConflictError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
} from "../../src/errors.ts";
import { countRequests } from "../../src/storage/count.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import {
  ERROR_FAULT_KINDS,
  type ErrorFaultKind,
  FaultyStorage,
  type FaultyStorageOptions,
} from "../support/faulty.ts";

/** A storage that always injects exactly `kind` (when it can hit the call), sleeping for free. */
function only(kind: ErrorFaultKind, extra: FaultyStorageOptions = {}) {
  // With a batched delete, as the S3 driver has, so that deleteMany is wrapped too.
  const inner = Object.assign(new MemoryStorage(), {
    async deleteMany(this: MemoryStorage, keys: readonly string[]) {
      for (const key of keys) await this.delete(key);
    },
  });
  const slept: number[] = [];
  const mix = Object.fromEntries(ERROR_FAULT_KINDS.map((k) => [k, k === kind ? 1 : 0]));
  const faulty = new FaultyStorage(inner, {
    faultRate: 1,
    mix,
    timeoutMs: 1234,
    sleep: async (ms) => {
      slept.push(ms);
    },
    ...extra,
  });
  return { inner, faulty, slept };
}

describe("FaultyStorage", () => {
  it("raises the typed errors the S3 driver would raise, before anything reaches storage", async () => {
    const cases: [ErrorFaultKind, new (...a: never[]) => Error, number | undefined][] = [
      ["server-error", StorageError, 500],
      ["slow-down", ThrottledError, 503],
      ["dropped", UnavailableError, undefined],
      ["timeout", UnavailableError, undefined],
    ];
    for (const [kind, type, status] of cases) {
      const { inner, faulty } = only(kind);
      const error = await faulty.put("k", "v").catch((e: unknown) => e);
      expect(error, kind).toBeInstanceOf(type);
      expect((error as { status?: number }).status, kind).toBe(status);
      await expect(inner.get("k"), kind).rejects.toBeInstanceOf(NotFoundError);
      await expect(faulty.get("k"), kind).rejects.toBeInstanceOf(type);
      await expect(faulty.list({ prefix: "" }), kind).rejects.toBeInstanceOf(type);
      expect(faulty.faults[kind], kind).toBe(3);
    }
  });

  it("answers a conditional PUT with an unknown outcome the way the driver does", async () => {
    // A 500 or a timeout on a conditional write: the driver cannot know whether it committed.
    for (const kind of ["server-error", "timeout"] as const) {
      const { inner, faulty } = only(kind);
      await expect(faulty.put("k", "v", { ifNoneMatch: "*" })).rejects.toBeInstanceOf(
        AmbiguousWriteError,
      );
      await expect(inner.get("k")).rejects.toBeInstanceOf(NotFoundError);
    }
    // A dropped connection that never reached storage is not ambiguous, conditional or not.
    const { faulty } = only("dropped");
    await expect(faulty.put("k", "v", { ifNoneMatch: "*" })).rejects.toBeInstanceOf(
      UnavailableError,
    );
  });

  it("injects 409 ConditionalRequestConflict only into conditional writes", async () => {
    const { inner, faulty } = only("conflict");
    const error = await faulty.put("k", "v", { ifNoneMatch: "*" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect(error).toMatchObject({ status: 409, s3Code: "ConditionalRequestConflict" });
    await expect(inner.get("k")).rejects.toBeInstanceOf(NotFoundError);
    // Nothing else can be hit by a conflict, so these pass.
    await faulty.put("k", "v");
    expect((await faulty.get("k")).body.length).toBe(1);
    expect(faulty.faults.conflict).toBe(1);
  });

  it("commits writes whose answer is lost: ambiguous when conditional, a plain error otherwise", async () => {
    const cases: [ErrorFaultKind, new (...a: never[]) => Error][] = [
      ["dropped-after-commit", UnavailableError],
      ["timeout-after-commit", UnavailableError],
      ["server-error-after-commit", StorageError],
    ];
    for (const [kind, plain] of cases) {
      const { inner, faulty, slept } = only(kind);
      await expect(faulty.put("a", "1"), kind).rejects.toBeInstanceOf(plain);
      expect(new TextDecoder().decode((await inner.get("a")).body)).toBe("1");
      const { etag } = await inner.get("a");
      await expect(faulty.put("a", "2", { ifMatch: etag }), kind).rejects.toBeInstanceOf(
        AmbiguousWriteError,
      );
      expect(new TextDecoder().decode((await inner.get("a")).body)).toBe("2");
      await expect(faulty.delete("a"), kind).rejects.toBeInstanceOf(plain);
      await expect(inner.get("a")).rejects.toBeInstanceOf(NotFoundError);
      await expect(faulty.deleteMany!(["a"]), kind).rejects.toBeInstanceOf(plain);
      // Reads cannot commit anything, so they pass.
      await expect(faulty.get("a")).rejects.toBeInstanceOf(NotFoundError);
      expect(faulty.faults[kind]).toBe(4);
      expect(slept.filter((ms) => ms === 1234).length).toBe(
        kind === "timeout-after-commit" ? 4 : 0,
      );
    }
  });

  it("hits calls at the configured rate, spread over the kinds that can hit them", async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const faulty = new FaultyStorage(new MemoryStorage(), {
      faultRate: 0.1,
      random,
      sleep: async () => {},
    });
    await faulty.put("k", "v");
    let failed = 0;
    for (let i = 0; i < 4000; i++) await faulty.get("k").catch(() => failed++);
    expect(failed / 4000).toBeGreaterThan(0.085);
    expect(failed / 4000).toBeLessThan(0.115);
    // Reads are hit only by the four kinds that can happen before a request commits.
    for (const k of ["server-error", "slow-down", "dropped", "timeout"] as const)
      expect(faulty.faults[k]).toBeGreaterThan(50);
    expect(faulty.faults.conflict + faulty.faults["dropped-after-commit"]).toBe(0);
    expect(faulty.calls).toBe(4001);
  });

  it("adds latency with spikes, half before and half after the call, and counts spikes", async () => {
    const slept: number[] = [];
    const draws = [0.5, 0.001, 0.5, 0.9]; // base pick, spike draw (hit), spike pick; then no spike
    let i = 0;
    const faulty = new FaultyStorage(new MemoryStorage(), {
      latency: { baseMs: [10, 30], spikeRate: 0.01, spikeMs: [1000, 3000] },
      random: () => draws[i++ % draws.length]!,
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
    await faulty.put("k", "v");
    expect(slept).toEqual([1000, 1000]);
    expect(faulty.faults["latency-spike"]).toBe(1);
  });

  it("passes everything through when disabled or filtered out, and counts requests underneath", async () => {
    const counted = countRequests(new MemoryStorage());
    const faulty = new FaultyStorage(counted, {
      faultRate: 1,
      sleep: async () => {},
      filter: (call) => call.key?.startsWith("tasks/") === true,
    });
    await faulty.put("ready/x", "");
    await expect(faulty.put("tasks/x", "")).rejects.toThrow(/injected/);
    faulty.enabled = false;
    await faulty.put("tasks/x", "");
    expect(faulty.injected()).toBe(1);
    expect(faulty.calls).toBe(1);
    expect(counted.counts.PUT).toBeGreaterThanOrEqual(2);
    expect(faulty.deleteVersion).toBeTypeOf("function");
  });

  it("lands a late-commit write after the next call on its key was answered, checked as sent (defect 7)", async () => {
    const { inner, faulty } = only("late-commit", { sleep: () => new Promise<void>(() => {}) });
    const first = await inner.put("k", "v1");
    await expect(faulty.put("k", "v2", { ifMatch: first.etag })).rejects.toBeInstanceOf(
      AmbiguousWriteError,
    );
    expect(new TextDecoder().decode((await inner.get("k")).body)).toBe("v1");
    // The read-back meant to settle it still sees v1; the write lands right after it.
    faulty.enabled = false;
    expect(new TextDecoder().decode((await faulty.get("k")).body)).toBe("v1");
    expect(new TextDecoder().decode((await inner.get("k")).body)).toBe("v2");
    // A late conditional write is still checked when it lands: a stale one changes nothing.
    faulty.enabled = true;
    await expect(faulty.put("k", "v3", { ifMatch: first.etag })).rejects.toBeInstanceOf(
      AmbiguousWriteError,
    );
    faulty.enabled = false;
    await faulty.head("k");
    expect(new TextDecoder().decode((await inner.get("k")).body)).toBe("v2");
    expect(faulty.faults["late-commit"]).toBe(2);
  });

  it("answers 412 for a conditional PUT that committed (a layer below re-sent it) (defect 7)", async () => {
    const { inner, faulty } = only("precondition-failed-after-commit");
    await expect(faulty.put("k", "v", { ifNoneMatch: "*" })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect(new TextDecoder().decode((await inner.get("k")).body)).toBe("v");
    // Unconditional writes cannot get it.
    await faulty.put("u", "x");
    expect(faulty.faults["precondition-failed-after-commit"]).toBe(1);
  });

  it("skews the local clock it reports alongside server time", async () => {
    const inner = new MemoryStorage({ now: () => 1_000_000 });
    const faulty = new FaultyStorage(inner, { clockSkewMs: -300_000, now: () => 1_000_000 });
    await faulty.head("x").catch(() => {});
    expect(faulty.serverTime()).toEqual({
      serverMs: 1_000_000,
      resolutionMs: 1,
      sentMs: 700_000,
      localMs: 700_000,
    });
    expect(faulty.localNow()).toBe(700_000);
  });
});
