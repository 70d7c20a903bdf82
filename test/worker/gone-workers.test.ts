/**
 * Heartbeats of workers that are gone (crashed, killed: they never deleted their own) are deleted
 * once a day old by the first live worker, a bounded batch per heartbeat; heartbeats of live
 * workers, deeper keys under `workers/` and the worker's own are left alone. On memory with a
 * clock the test moves, and on memory, file and MinIO with a server clock running a day ahead.
 */
import { afterEach, describe, expect, it } from "vitest";
import { internals } from "../../src/queue/internals.ts";
import { Queue } from "../../src/queue/queue.ts";
import { countRequests } from "../../src/storage/count.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { newStats } from "../../src/worker/events.ts";
import { GONE_HEARTBEAT_MS, GONE_HEARTBEATS_PER_BEAT } from "../../src/worker/gone-workers.ts";
import { Peers } from "../../src/worker/peers.ts";
import { targets } from "../helpers/targets.ts";
import { memoryQueue } from "./helpers.ts";

const state = () => ({ types: ["t"], concurrency: 1, active: [], startedAt: 0, stats: newStats() });
const HOUR = 60 * 60 * 1000;

async function workerKeys(storage: Storage, prefix: string): Promise<string[]> {
  const page = await storage.list({ prefix: `${prefix}workers/` });
  return page.objects.map((o) => o.key.slice(`${prefix}workers/`.length));
}

/** The storage, with a server clock that runs `aheadMs` ahead of the real server's. */
function serverAhead(inner: Storage, aheadMs: number): Storage {
  return {
    name: inner.name,
    get: (k, o) => inner.get(k, o),
    head: (k) => inner.head(k),
    put: (k, b, o) => inner.put(k, b, o),
    delete: (k) => inner.delete(k),
    ...(inner.deleteMany === undefined ? {} : { deleteMany: (k) => inner.deleteMany!(k) }),
    list: (o) => inner.list(o),
    listVersions: (o) => inner.listVersions(o),
    versioning: () => inner.versioning(),
    serverTime() {
      const seen = inner.serverTime();
      return seen === undefined ? undefined : { ...seen, serverMs: seen.serverMs + aheadMs };
    },
  };
}

describe("heartbeats of gone workers", () => {
  it("a crashed worker's heartbeat is deleted once a day old, by the first live worker only", async () => {
    const { queue, storage, advance } = memoryQueue();
    const q = internals(queue);
    const crashed = new Peers(q, "crashed", 60, state);
    await crashed.heartbeat(); // and never stops: its heartbeat stays behind
    await storage.put(`${queue.keys.workers}stopped/crashed.json`, "{}");
    const a = new Peers(q, "a", 60, state);
    const b = new Peers(q, "b", 60, state);

    advance(GONE_HEARTBEAT_MS - HOUR);
    await a.heartbeat();
    await b.heartbeat();
    expect(await workerKeys(storage, "")).toEqual([
      "a.json",
      "b.json",
      "crashed.json",
      "stopped/crashed.json",
    ]);

    advance(2 * HOUR);
    // b sees a live and is not first: it leaves the gone heartbeat to a.
    await storage.put(queue.keys.worker("a"), "{}");
    await b.refresh();
    expect(b.live).toEqual(["a", "b"]);
    expect(await workerKeys(storage, "")).toContain("crashed.json");
    await a.refresh();
    // Only heartbeats directly under workers/ are judged: deeper keys are other records'.
    expect(await workerKeys(storage, "")).toEqual(["a.json", "b.json", "stopped/crashed.json"]);
  });

  it("deletes at most a bounded batch per heartbeat", async () => {
    const { queue, storage, clock, advance } = memoryQueue();
    const counted = countRequests(storage);
    const q = new Queue({ storage: counted, now: clock.now });
    const gone = GONE_HEARTBEATS_PER_BEAT + 5;
    for (let i = 0; i < gone; i++) await storage.put(queue.keys.worker(`w${i}`), "{}");
    advance(GONE_HEARTBEAT_MS + HOUR);
    const a = new Peers(internals(q), "a", 60, state);
    counted.reset();
    await a.heartbeat();
    expect(counted.counts.DELETE).toBe(GONE_HEARTBEATS_PER_BEAT);
    expect(await workerKeys(storage, "")).toHaveLength(5 + 1);
    await a.heartbeat();
    expect(await workerKeys(storage, "")).toEqual(["a.json"]);
  });
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

for (const target of targets) {
  describe(`gone heartbeats on ${target.name}`, () => {
    it("a heartbeat is deleted once a day older than the server's clock, not sooner; the worker's own and deeper keys stay", async () => {
      const instance = await target.create();
      cleanups.push(() => instance.cleanup());
      const { storage, prefix } = instance;
      const today = new Queue({ storage, prefix });
      await new Peers(internals(today), "crashed", 60, state).heartbeat();
      await storage.put(`${prefix}workers/stopped/crashed.json`, "{}");
      const a = new Peers(internals(today), "a", 60, state);
      await a.heartbeat();
      expect(await workerKeys(storage, prefix)).toEqual([
        "a.json",
        "crashed.json",
        "stopped/crashed.json",
      ]);

      // The same bucket a day and an hour later (by the server's clock).
      const later = new Queue({ storage: serverAhead(storage, GONE_HEARTBEAT_MS + HOUR), prefix });
      const aLater = new Peers(internals(later), "a", 60, state);
      await aLater.heartbeat();
      expect(await workerKeys(storage, prefix)).toEqual(["a.json", "stopped/crashed.json"]);
    });
  });
}
