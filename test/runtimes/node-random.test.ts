/**
 * The CLI's random source (src/runtime/node-random.ts): hex from the kernel's random device, so a
 * starting `oq worker` does not load Node's web crypto before its first task (12-20 ms of CPU).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { openQueueInSteps } from "../../src/cli/config.ts";
import { silentLogger } from "../../src/logger.ts";
import { deviceFill, nodeRandomHex } from "../../src/runtime/node-random.ts";
import { Worker } from "../../src/worker/worker.ts";
import { cliTargets } from "../helpers/cli-queue.ts";

/** Count reads of `globalThis.crypto` from now on (the first one loads web crypto on Node). */
function watchCrypto(): { reads: () => number } {
  const spy = vi.spyOn(globalThis, "crypto", "get");
  return { reads: () => spy.mock.calls.length };
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe("nodeRandomHex", () => {
  it("returns lower-case hex of the length asked for, never the same twice across pool refills", () => {
    const seen = new Set<string>();
    // 3,000 ids of 32 characters are 48 kB: about twelve refills of the 4 kB pool.
    for (let i = 0; i < 3_000; i++) {
      const id = nodeRandomHex(32);
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(3_000);
    for (const length of [1, 7, 10, 16, 9_000]) expect(nodeRandomHex(length)).toHaveLength(length);
  });

  it("reads the kernel's device without touching web crypto", () => {
    const crypto = watchCrypto();
    const fill = deviceFill("/dev/urandom");
    const bytes = new Uint8Array(4096);
    fill(bytes);
    expect(crypto.reads()).toBe(0);
    // 4,096 random bytes are not all zero (the chance is 2^-32768).
    expect(bytes.some((b) => b !== 0)).toBe(true);
  });

  it("falls back to web crypto where the device cannot be opened, and stays there", () => {
    const crypto = watchCrypto();
    const fill = deviceFill("/dev/oq-no-such-device");
    const a = new Uint8Array(64);
    const b = new Uint8Array(64);
    fill(a);
    fill(b);
    expect(crypto.reads()).toBe(2);
    expect(a.some((x) => x !== 0)).toBe(true);
    expect(a).not.toEqual(b);
  });
});

describe.each(cliTargets)("a worker on a queue the CLI opens ($name)", (target) => {
  it("names itself, claims and starts its first task without loading web crypto", async () => {
    const instance = await target.create();
    try {
      for (const [name, value] of Object.entries(instance.env ?? {})) vi.stubEnv(name, value);
      const { queue, checked } = openQueueInSteps({}, { logger: silentLogger });
      await checked;
      const crypto = watchCrypto();
      await queue.submit("first", { n: 1 });
      let readsAtStart = -1;
      const worker = new Worker(queue, { skipDoctor: true, monitor: false });
      worker.task("first", () => {
        readsAtStart = crypto.reads();
      });
      await worker.drain();
      expect(readsAtStart).toBe(0);
    } finally {
      await instance.cleanup();
    }
  });
});
