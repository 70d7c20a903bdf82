/**
 * A starting worker's first heartbeat (and its look for peers) waits for its first claims: on
 * the one thread a process has, requests sent beside the first listing, read and claim took
 * turns between them and delayed the first task (issue 15: peer discovery off the critical path).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { Worker } from "../../src/worker/worker.ts";
import { type TargetInstance, targets } from "../helpers/targets.ts";
import { pause, until } from "../helpers/wait.ts";

/** `storage` with every call logged as `start METHOD key` and `end METHOD key`, in order. */
function logged(storage: Storage): { storage: Storage; log: string[] } {
  const log: string[] = [];
  const wrapped = new Proxy(storage, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const first = args[0];
        const what = typeof first === "string" ? first : JSON.stringify(first ?? "");
        const name = `${String(property)} ${what}`;
        log.push(`start ${name}`);
        const result = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.finally(() => log.push(`end ${name}`));
      };
    },
  });
  return { storage: wrapped, log };
}

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.map((c) => c()));
  cleanups = [];
});

describe.each(targets)("a starting worker, on $name", (target) => {
  it("writes its first heartbeat only after its first claim", async () => {
    const instance: TargetInstance = await target.create();
    const { storage, log } = logged(instance.storage);
    const queue = new Queue({ storage, prefix: instance.prefix });
    await queue.submit("t", 1);
    // Surely due by the worker's lower bound of the server's clock (whole seconds from a Date
    // header): else its first pass reads the task, leaves it, and ends without a claim.
    await pause(1200);
    log.length = 0;
    let ran = 0;
    const worker = new Worker(queue, { skipDoctor: true, heartbeatSeconds: 60 }).task("t", () => {
      ran++;
      return null;
    });
    cleanups.push(async () => {
      await worker.stop();
      await instance.cleanup();
    });
    await worker.start();
    const workers = `${queue.keys.prefix}workers/`;
    const tasks = `${queue.keys.prefix}tasks/`;
    await until(
      "the first task and heartbeat",
      () => ran === 1 && log.some((line) => line.startsWith(`end put ${workers}`)),
    );
    const claimed = log.findIndex((line) => line.startsWith(`end put ${tasks}`));
    const firstPeerCall = log.findIndex((line) => line.includes(workers));
    expect(claimed).toBeGreaterThanOrEqual(0);
    expect(firstPeerCall).toBeGreaterThan(claimed);
  });
});
