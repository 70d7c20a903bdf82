/**
 * The index layout of protocol 2 (issue 10): per-type partitions, lease markers, monitor rounds
 * and the manifest, on every storage. The costs are counted on the idle worker's own view of the
 * storage, so the busy workers' requests do not blur them.
 */
import { afterEach, describe, expect, it } from "vitest";
import { isOqError, ValidationError } from "../src/errors.ts";
import { PROTOCOL } from "../src/queue/manifest.ts";
import { Queue } from "../src/queue/queue.ts";
import { countRequests } from "../src/storage/count.ts";
import type { ListOptions, Storage } from "../src/storage/storage.ts";
import { ms } from "../src/task/transitions.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, pause, until } from "./helpers/wait.ts";

/** `inner` with every GET key and LIST prefix recorded. */
function recording(inner: Storage) {
  const counted = countRequests(inner);
  const gets: string[] = [];
  const lists: string[] = [];
  const storage: Storage = Object.assign(Object.create(counted) as Storage, {
    get: (key: string, options?: Parameters<Storage["get"]>[1]) => {
      gets.push(key);
      return counted.get(key, options);
    },
    list: (options?: ListOptions) => {
      lists.push(options?.prefix ?? "");
      return counted.list(options);
    },
  });
  return { storage, gets, lists };
}

for (const target of targets) {
  describe(`index layout on ${target.name}`, () => {
    let env: TargetInstance | undefined;
    const workers: Worker[] = [];
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env?.cleanup();
      env = undefined;
    });
    const open = async (wrap: (s: Storage) => Storage = (s) => s) => {
      env ??= await target.create();
      return new Queue({ storage: wrap(env.storage), prefix: env.prefix });
    };
    /** A queue whose requests are recorded, and the record. */
    const openRecorded = async () => {
      let seen: ReturnType<typeof recording> | undefined;
      const queue = await open((s) => {
        seen = recording(s);
        return seen.storage;
      });
      return { queue, seen: seen! };
    };
    const worker = (queue: Queue, options = {}) => {
      const w = new Worker(queue, { ...fast, skipDoctor: true, ...options });
      workers.push(w);
      return w;
    };

    it("an idle worker reads none of the tasks running elsewhere once their markers moved to their lease expiry", async () => {
      const queue = await open();
      let open_ = () => {};
      const gate = new Promise<void>((r) => {
        open_ = r;
      });
      const busy = worker(queue, { concurrency: 20, leaseSeconds: 6 }).task("email", () => gate);
      const tasks = await queue.submitMany(
        Array.from({ length: 20 }, (_, i) => ({ type: "email", input: i })),
      );
      await busy.start();
      await until("all 20 running", () => busy.active.length === 20);
      // The first lease check, a second into each run, moves the marker.
      await until("every marker at its lease expiry", async () => {
        for (const t of tasks) {
          const task = await queue.get(t.id);
          const marker = queue.keys.parseReadyMarker(queue.keys.full(task.marker!))!;
          if (task.lease === null || marker.dueMs < ms(task.lease.expiresAt)) return false;
        }
        return true;
      });
      await pause(200); // the claim-time markers' deletes, which follow the task writes
      const recorded = await openRecorded();
      const seen = recorded.seen;
      const idle = worker(recorded.queue);
      idle.task("email", () => {});
      await idle.start();
      await pause(1500);
      expect(idle.stats.polls).toBeGreaterThan(5);
      expect(seen.gets.filter((k) => k.startsWith(queue.keys.tasks))).toEqual([]);
      open_();
      for (const t of tasks)
        expect((await queue.wait(t.id, { timeout: 30 })).status).toBe("completed");
    });

    it("a worker never lists or reads the partitions of types it has no handler for, monitor on", async () => {
      const queue = await open();
      await queue.submitMany(
        Array.from({ length: 60 }, (_, i) => ({ type: `video${i % 3}`, input: i })),
      );
      const mine = await queue.submit("email", 1);
      const recorded = await openRecorded();
      const seen = recorded.seen;
      const w = worker(recorded.queue).task("email", () => "sent");
      await w.start();
      expect((await queue.wait(mine.id, { timeout: 20 })).output).toBe("sent");
      await pause(500);
      const taskReads = seen.gets.filter((k) => k.startsWith(queue.keys.tasks));
      expect(new Set(taskReads)).toEqual(new Set([queue.keys.task(mine.id)]));
      // Its monitor's round lists each unhandled partition once (for TTLs); polls never do.
      for (const type of ["video0", "video1", "video2"]) {
        const listed = seen.lists.filter((p) => p.startsWith(queue.keys.readyType(type)));
        expect(listed.length).toBeLessThanOrEqual(1);
      }
    });

    it("a monitor expires a TTL'd task of a type nobody runs, reading no other task of it", async () => {
      const queue = await open();
      const doomed = await queue.submit("video", 1, { ttlSeconds: 1 });
      const kept = await queue.submit("video", 2);
      await pause(2100);
      const recorded = await openRecorded();
      const seen = recorded.seen;
      const w = worker(recorded.queue).task("email", () => {});
      await w.start();
      await until("expired", async () => (await queue.get(doomed.id)).status === "expired");
      expect((await queue.get(kept.id)).status).toBe("pending");
      expect(seen.gets).not.toContain(queue.keys.task(kept.id));
    });

    it("the manifest is created once, names protocol 2, and records shards that only grow", async () => {
      const queue = await open();
      await queue.submit("t", 1);
      const manifest = await queue.manifest();
      expect(manifest).toMatchObject({ oq: "queue", protocol: PROTOCOL, shards: {} });
      expect(PROTOCOL).toBe(2);
      const other = await open();
      expect(await other.manifest()).toEqual(manifest);
      expect((await queue.setShards("video", 4)).shards).toEqual({ video: 4 });
      await expect(other.setShards("video", 2)).rejects.toBeInstanceOf(ValidationError);
      await expect(other.setShards("video", 0)).rejects.toBeInstanceOf(ValidationError);
      await expect(other.setShards("bad type", 2)).rejects.toBeInstanceOf(ValidationError);
      // The writer of the change uses it at once; others once they re-read (10 minutes).
      const tasks = await queue.submitMany(
        Array.from({ length: 40 }, (_, i) => ({ type: "video", input: i })),
      );
      const parts = new Set(
        tasks.map((t) => queue.keys.parseReadyMarker(queue.keys.full(t.marker!))!.part),
      );
      expect(parts.size).toBeGreaterThan(1);
      const w = worker(await open(), { concurrency: 10 }).task("video", () => "ok");
      await w.start();
      for (const t of tasks) expect((await queue.wait(t.id, { timeout: 30 })).output).toBe("ok");
    });

    it("a queue of another protocol is refused with PROTOCOL_MISMATCH, by submit and by a worker", async () => {
      const queue = await open();
      await env!.storage.put(
        queue.keys.manifest,
        JSON.stringify({ oq: "queue", protocol: 3, createdAt: "2030-01-01T00:00:00Z", shards: {} }),
      );
      const err = await queue.submit("t", 1).catch((e: unknown) => e);
      expect(isOqError(err, "PROTOCOL_MISMATCH")).toBe(true);
      expect((err as Error).message).toMatch(/protocol 3.*protocol 2/);
      const w = worker(await open()).task("t", () => {});
      await expect(w.start()).rejects.toMatchObject({ code: "PROTOCOL_MISMATCH" });
      const listed = await env!.storage.list({ prefix: queue.keys.tasks });
      expect(listed.objects).toEqual([]);
    });
  });
}
