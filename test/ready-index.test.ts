/**
 * The ready index (markers) under faults: terminal tasks leave it, a marker we wrote is deleted
 * only when its task provably does not name it, a write that lands after the stale-marker grace
 * heals the index, and garbage is swept in batches.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ThrottledError, ValidationError } from "../src/errors.ts";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import { MARKER_GRACE_MS } from "../src/queue/ready-index.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { PutOptions, Storage } from "../src/storage/storage.ts";
import { DEFAULT_BACKOFF } from "../src/task/backoff.ts";
import { encodeTask, type TaskRecord } from "../src/task/record.ts";
import {
  claimTask,
  completeTask,
  createTask,
  expireLease,
  expireTask,
  failAttempt,
  finishCancelled,
  releaseTask,
  renewLease,
  replayTask,
  requestCancel,
} from "../src/task/transitions.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, pause, until } from "./helpers/wait.ts";
import { ERROR_FAULT_KINDS, type ErrorFaultKind, FaultyStorage } from "./support/faulty.ts";
import { pendingSpec } from "./worker/helpers.ts";

const only = (kind: ErrorFaultKind) =>
  Object.fromEntries(ERROR_FAULT_KINDS.map((k) => [k, k === kind ? 1 : 0]));

/** A storage that answers the next conditional PUT of `key` with the fault `kind`, once. */
function faultOnce(inner: Storage, key: string, kind: ErrorFaultKind): FaultyStorage {
  let armed = true;
  return new FaultyStorage(inner, {
    faultRate: 1,
    mix: only(kind),
    filter: (call) => {
      if (!armed || call.op !== "put" || call.key !== key || !call.conditional) return false;
      armed = false;
      return true;
    },
  });
}

/** A memory bucket with a batched delete (as S3 has) and a clock the test can move. */
function bucket() {
  const clock = { offset: 0, now: () => Date.now() + clock.offset };
  const inner = Object.assign(new MemoryStorage({ now: clock.now }), {
    async deleteMany(this: MemoryStorage, keys: readonly string[]) {
      for (const key of keys) await this.delete(key);
    },
  });
  return { inner, clock };
}

/** `inner` with some methods replaced (the others bound to it: it keeps private state). */
function override<T extends object>(inner: T, methods: Partial<T>): T {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop in methods) return methods[prop as keyof T];
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function exists(storage: Storage, key: string): Promise<boolean> {
  return storage.head(key).then(
    () => true,
    () => false,
  );
}

async function readyKeys(queue: Queue): Promise<string[]> {
  return (await queue.storage.list({ prefix: queue.keys.ready })).objects.map((o) => o.key);
}

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
});

describe("terminal tasks leave the ready index (defect 6)", () => {
  const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
  const pending = (over: Partial<Parameters<typeof createTask>[0]> = {}) =>
    createTask(
      {
        id: "abc",
        type: "t",
        input: null,
        maxRetries: 0,
        backoff: DEFAULT_BACKOFF,
        timeoutSeconds: null,
        availableAt: T0,
        expiresAt: null,
        idempotencyKey: null,
        marker: "ready/20261128T120000Z/t/abc.00000000",
        ...over,
      },
      T0,
    );
  const claim = (t: TaskRecord) =>
    claimTask(t, { workerId: "w", token: "tok", leaseMs: 1000, now: T0 });

  it("every transition to a terminal state clears the marker (defect 6)", () => {
    const running = claim(pending());
    const cancelRequested = requestCancel(running, null, T0);
    const finished: TaskRecord[] = [
      expireTask(pending({ expiresAt: T0 + 1 }), T0 + 2),
      expireLease(running, T0 + 5000, 0.5), // out of retries: failed by lease recovery
      completeTask(running, "tok", 1, T0),
      failAttempt(running, "tok", { name: "E", message: "x" }, T0, 0.5),
      requestCancel(pending(), null, T0),
      finishCancelled(cancelRequested, "tok", T0),
      releaseTask(cancelRequested, "tok", T0),
    ];
    for (const t of finished) {
      expect(["completed", "failed", "cancelled", "expired"], t.event).toContain(t.status);
      expect(t.marker, t.event).toBeNull();
    }
  });

  it("an idle monitor does not keep reading 20 expired tasks nor one failed by lease recovery (defect 6)", async () => {
    const storage = countRequests(new MemoryStorage());
    const queue = new Queue({ storage });
    const expiring = await queue.submitMany(
      Array.from({ length: 20 }, (_, i) => ({
        type: "nobody",
        input: i,
        options: { ttlSeconds: 0.2 },
      })),
    );
    const orphan = await queue.submit("nobody", null, { maxRetries: 0 });
    await internals(queue).update(orphan.id, (t) =>
      claimTask(t, { workerId: "gone", token: "tok", leaseMs: 100, now: queue.now() }),
    );
    // Its worker's first renewal moved it to a lease marker, the one a monitor looks at for a
    // type no live worker runs (a worker of the type takes over one still on its claim marker).
    const renewed = await internals(queue).update(orphan.id, (t) =>
      renewLease(t, "tok", 100, queue.now()),
    );
    // The monitor's first round lists markers due by then, and the next is 10 minutes later:
    // start it once both the TTL markers (rounded up to the second) and the lease marker (the
    // takeover time, to the second) are due. A fixed pause raced the lease marker's second.
    const leaseMarker = queue.keys.parseReadyMarker(queue.keys.full(renewed.task.marker!))!;
    const dueBy = Math.max(leaseMarker.dueMs, Date.parse(expiring[0]!.createdAt) + 1200) + 100;
    await until("markers due", () => queue.now() >= dueBy, 5000);
    const monitor = new Worker(queue, fast);
    workers.push(monitor);
    await monitor.start();
    await until("all handled", () => monitor.stats.expired === 20 && monitor.stats.recovered === 1);
    expect((await queue.get(orphan.id)).status).toBe("failed");
    expect((await queue.get(expiring[0]!.id)).status).toBe("expired");
    await until("markers deleted", async () => (await readyKeys(queue)).length === 0, 3000).catch(
      () => {},
    );
    await pause(200);
    storage.reset();
    // About 15 polls at 100 ms: a worker without handlers lists no partition of its own, and
    // its monitor's round (default length) reads none of these tasks again.
    await pause(1500);
    expect(storage.counts.GET).toBe(0);
    expect(await readyKeys(queue)).toEqual([]);
  });
});

describe("terminal tasks written before the fix (defect 6)", () => {
  it("a monitor sweeps the marker that an expired task written by an older version still names (defect 6)", async () => {
    const { inner, clock } = bucket();
    const storage = countRequests(inner);
    const queue = new Queue({ storage, now: clock.now });
    const task = await queue.submit("nobody", null, { ttlSeconds: 1 });
    const current = (await queue.read(task.id))!;
    // What the old monitor wrote: expired, still naming its marker.
    const old = { ...expireTask(current.task, queue.now() + 2000), marker: task.marker };
    await inner.put(queue.keys.task(task.id), encodeTask(old), { ifMatch: current.etag });
    clock.offset += MARKER_GRACE_MS + 1000;
    // Rounds of 1 s: each reads the manifest (one GET), and reads the swept task no more.
    const monitor = new Worker(queue, { ...fast, monitorRoundSeconds: 1 });
    workers.push(monitor);
    await monitor.start();
    await until("swept", async () => (await readyKeys(queue)).length === 0);
    const reads: string[] = [];
    const getTask = inner.get.bind(inner);
    inner.get = (key, options) => {
      reads.push(key);
      return getTask(key, options);
    };
    await pause(2500);
    expect(reads.filter((key) => key === queue.keys.task(task.id))).toEqual([]);
    expect(reads.length).toBeGreaterThan(0); // the rounds went on
    expect(await readyKeys(queue)).toEqual([]);
  });
});

/**
 * A cancelled task in `inner`, a plain queue over it, and a queue whose next conditional PUT of
 * that task meets `kind`.
 */
async function cancelledBehindFault(kind: ErrorFaultKind, inner: Storage, prefix = "") {
  const plain = new Queue({ storage: inner, prefix });
  const task = await plain.submit("t", null);
  await plain.cancel(task.id);
  const storage = faultOnce(inner, plain.keys.task(task.id), kind);
  const queue = new Queue({ storage, prefix });
  return { inner, plain, queue, storage, id: task.id };
}

describe("a marker is deleted only when its task provably does not name it (defect 7)", () => {
  const setup = (kind: ErrorFaultKind) => cancelledBehindFault(kind, bucket().inner);

  it("keeps the marker of a write whose outcome was unknown and that commits after the read-back (defect 7a)", async () => {
    const { inner, plain, queue, storage, id } = await setup("late-commit");
    const current = (await queue.read(id))!;
    // The PUT fails with an unknown outcome; the read-back still shows the cancelled version;
    // then the PUT lands. We cannot call it ours, but must not delete the marker it names.
    await internals(queue).write(current, replayTask(current.task, queue.now()));
    expect(storage.faults["late-commit"]).toBe(1);
    const stored = await plain.get(id);
    expect(stored.event).toBe("replayed");
    expect(stored.marker).not.toBeNull();
    expect(await exists(inner, plain.keys.full(stored.marker!))).toBe(true);
  });

  it("recognises a 412 from a layer below that re-sent our committed PUT, and keeps its marker (defect 7b)", async () => {
    const { inner, plain, queue, storage, id } = await setup("precondition-failed-after-commit");
    const current = (await queue.read(id))!;
    const written = await internals(queue).write(current, replayTask(current.task, queue.now()));
    expect(storage.faults["precondition-failed-after-commit"]).toBe(1);
    expect(written?.task.event).toBe("replayed");
    const stored = await plain.get(id);
    expect(stored.marker).toBe(written!.task.marker);
    expect(await exists(inner, plain.keys.full(stored.marker!))).toBe(true);
  });

  it("still deletes the marker of a write that lost a real race (defect 7)", async () => {
    const { inner } = bucket();
    const queue = new Queue({ storage: inner });
    const task = await queue.submit("t", null);
    await queue.cancel(task.id);
    const stale = (await queue.read(task.id))!;
    const winner = await queue.replay(task.id);
    expect(
      await internals(queue).write(stale, replayTask(stale.task, queue.now())),
    ).toBeUndefined();
    expect(await readyKeys(queue)).toEqual([queue.keys.full(winner.marker!)]);
  });
});

describe("a write that lands after the stale-marker grace heals the index (defect 8)", () => {
  it("a sweeper that deletes a marker whose task write lands meanwhile puts it back (defect 8)", async () => {
    const { inner, clock } = bucket();
    const queue = new Queue({ storage: inner, now: clock.now });
    // A submit paused between its two writes: the marker is stored, the task create is not.
    const marker = internals(queue).newMarker(pendingSpec("late1"), queue.now());
    await inner.put(queue.keys.full(marker), new Uint8Array(0));
    const task = createTask(
      {
        id: "late1",
        type: "t",
        input: "ok",
        maxRetries: 0,
        backoff: DEFAULT_BACKOFF,
        timeoutSeconds: null,
        availableAt: queue.now(),
        expiresAt: null,
        idempotencyKey: null,
        marker,
      },
      queue.now(),
    );
    clock.offset += MARKER_GRACE_MS + 1000;
    // The create lands just as the monitor's delete does (after the monitor's read said stale).
    const landing = override(inner, {
      async deleteMany(keys: readonly string[]) {
        await inner.deleteMany(keys);
        if (keys.includes(queue.keys.full(marker)))
          await inner.put(queue.keys.task("late1"), encodeTask(task), { ifNoneMatch: "*" });
      },
      async delete(key: string) {
        await inner.delete(key);
        if (key === queue.keys.full(marker))
          await inner.put(queue.keys.task("late1"), encodeTask(task), { ifNoneMatch: "*" });
      },
    });
    const monitorQueue = new Queue({ storage: landing, now: clock.now });
    const w = new Worker(monitorQueue, fast).task("t", (x) => x);
    workers.push(w);
    await w.start();
    await until("the late create", async () => (await queue.read("late1")) !== undefined);
    const done = await queue.wait("late1", { timeout: 5 });
    expect(done).toMatchObject({ status: "completed", output: "ok" });
  });

  /** A queue whose task PUTs take `MARKER_GRACE_MS + 5 s`, during which a sweeper deletes `victim()`. */
  function slowWrites(victim: () => string | undefined) {
    const { inner, clock } = bucket();
    const slow = override(inner, {
      async put(key: string, body: Uint8Array | string, options?: PutOptions) {
        const conditional = options?.ifMatch !== undefined || options?.ifNoneMatch !== undefined;
        if (conditional && key.startsWith("tasks/")) {
          clock.offset += MARKER_GRACE_MS + 5000;
          const v = victim();
          if (v !== undefined) await inner.delete(v);
        }
        return inner.put(key, body, options);
      },
    });
    return { inner, clock, queue: new Queue({ storage: slow, now: clock.now }) };
  }

  it("a submit whose task create took longer than half the grace puts its marker again (defect 8)", async () => {
    let victim: string | undefined;
    const { inner, queue } = slowWrites(() => victim);
    const index = internals(queue).index;
    const orig = index.newMarker.bind(index);
    index.newMarker = (task, due) => {
      const m = orig(task, due);
      victim = queue.keys.full(m);
      return m;
    };
    const task = await queue.submit("t", null);
    expect(await exists(inner, queue.keys.full(task.marker!))).toBe(true);
  });

  it("a move whose CAS took longer than half the grace puts its new marker again (defect 8)", async () => {
    let victim: string | undefined;
    let slowOn = false;
    const { inner, queue } = slowWrites(() => (slowOn ? victim : undefined));
    const task = await queue.submit("t", null);
    await queue.cancel(task.id);
    const index = internals(queue).index;
    const orig = index.newMarker.bind(index);
    index.newMarker = (task, due) => {
      const m = orig(task, due);
      victim = queue.keys.full(m);
      return m;
    };
    slowOn = true;
    const replayed = await queue.replay(task.id);
    expect(victim).toBe(queue.keys.full(replayed.marker!));
    expect(await exists(inner, queue.keys.full(replayed.marker!))).toBe(true);
  });
});

describe("a throttled batch delete is not split into one request per key", () => {
  it("leaves the batch's markers for a later sweep instead of sending N DELETEs to the partition that refused one", async () => {
    const { inner } = bucket();
    let refuse = true;
    const deletes: string[] = [];
    const storage = override(inner, {
      async deleteMany(keys: readonly string[]) {
        if (refuse) throw new ThrottledError("SlowDown", { status: 503, s3Code: "SlowDown" });
        for (const key of keys) await inner.delete(key);
      },
      async delete(key: string) {
        deletes.push(key);
        await inner.delete(key);
      },
    });
    const queue = new Queue({ storage });
    const tasks = await queue.submitMany(
      Array.from({ length: 5 }, (_, i) => ({ type: "t", input: i })),
    );
    for (const t of tasks) await queue.cancel(t.id);
    // Cancels delete at once, one by one; a finish batches: use the index directly.
    const index = internals(queue).index;
    const extra = tasks.map((t) => internals(queue).newMarker(pendingSpec(t.id), queue.now()));
    for (const m of extra) await index.put(m);
    deletes.length = 0;
    for (const m of extra) await index.remove(m, { batch: true });
    await index.flush();
    expect(deletes).toEqual([]);
    const stored = (await inner.list({ prefix: queue.keys.ready })).objects.map((o) => o.key);
    expect(stored.sort()).toEqual(extra.map((m) => queue.keys.full(m)).sort());
    refuse = false;
    for (const m of extra) await index.remove(m, { batch: true });
    await index.flush();
    expect((await inner.list({ prefix: queue.keys.ready })).objects).toEqual([]);
  });
});

describe("garbage in the ready index is swept in batches (defect 21)", () => {
  it("deletes markers of malformed objects, malformed keys and stale markers after the grace, in batches (defect 21)", async () => {
    const { inner, clock } = bucket();
    const storage = countRequests(inner);
    const warnings: string[] = [];
    const queue = new Queue({
      storage,
      now: clock.now,
      logger: { info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    });
    const k = queue.keys;
    const t0 = k.partition("t", 0);
    await inner.put(`${k.ready}garbage`, "x");
    await inner.put(`${t0}20200101T000000Z/deadbeef.abc`, "");
    await inner.put(k.task("deadbeef"), "{not json");
    await inner.put(`${t0}20200101T000000Z/cafe.abc`, "");
    await inner.put(k.task("cafe"), JSON.stringify({ oq: 1, id: "cafe" }));
    for (let i = 0; i < 10; i++) await inner.put(`${t0}20200101T000000Z/gone${i}.abc`, "");
    const live = await queue.submit("t", "fine", { delay: 3600 });
    // Markers in t's partition are swept by workers of t; junk at the top by any monitor's round.
    const w = new Worker(queue, fast).task("t", () => {});
    workers.push(w);
    await w.start();
    await pause(300);
    // During the grace nothing is deleted: a writer may be between its two writes.
    expect((await readyKeys(queue)).length).toBe(14);
    // Past the grace, and past the 10 minutes after which a monitor starts its next round.
    clock.offset += 10 * 60_000 + 1000;
    await until("garbage swept", async () => (await readyKeys(queue)).length === 1).catch(
      async (e) => {
        console.log(await readyKeys(queue), warnings);
        throw e;
      },
    );
    expect(await readyKeys(queue)).toEqual([k.full(live.marker!)]);
    // 13 keys in at most 3 requests: the batches of t's partition, and the junk at the top
    // (found by a monitor round, perhaps at another listing).
    expect(storage.counts.DELETE + storage.counts.POST).toBeLessThanOrEqual(3);
    expect(warnings.some((m) => m.includes("garbage"))).toBe(true);
    // The objects themselves are left for an operator; only the index entries are gone.
    await expect(queue.read("cafe")).rejects.toBeInstanceOf(ValidationError);
  });
});

for (const target of targets.filter((t) => t.name.startsWith("s3"))) {
  describe(`ready index on ${target.name}`, () => {
    let env: TargetInstance;
    afterEach(async () => env?.cleanup());

    it("recognises a 412 for our own committed PUT and keeps its marker (defect 7b)", async () => {
      env = await target.create();
      const { plain, queue, id } = await cancelledBehindFault(
        "precondition-failed-after-commit",
        env.storage,
        env.prefix,
      );
      const current = (await queue.read(id))!;
      const written = await internals(queue).write(current, replayTask(current.task, queue.now()));
      expect(written?.task.event).toBe("replayed");
      expect(await exists(env.storage, plain.keys.full(written!.task.marker!))).toBe(true);
    });

    it("keeps the marker of a write that commits after the read-back (defect 7a)", async () => {
      env = await target.create();
      const { plain, queue, id } = await cancelledBehindFault(
        "late-commit",
        env.storage,
        env.prefix,
      );
      const current = (await queue.read(id))!;
      await internals(queue).write(current, replayTask(current.task, queue.now()));
      const stored = await plain.get(id);
      expect(stored.event).toBe("replayed");
      expect(await exists(env.storage, plain.keys.full(stored.marker!))).toBe(true);
    });

    it("a sweep puts back a marker whose task came to name it during the delete (defect 8)", async () => {
      env = await target.create();
      const inner = env.storage;
      const plain = new Queue({ storage: inner, prefix: env.prefix });
      const task = await plain.submit("t", null);
      await plain.cancel(task.id);
      const cancelled = (await plain.read(task.id))!;
      // A replay paused between its two writes: its new marker is stored, the CAS is not.
      const next = { ...replayTask(cancelled.task, plain.now()) };
      next.marker = internals(plain).newMarker(pendingSpec(task.id), plain.now());
      const markerKey = plain.keys.full(next.marker);
      await inner.put(markerKey, new Uint8Array(0));
      const land = async (keys: readonly string[]) => {
        if (keys.includes(markerKey))
          await inner.put(plain.keys.task(task.id), encodeTask(next), { ifMatch: cancelled.etag });
      };
      const sweeper = new Queue({
        prefix: env.prefix,
        storage: override(inner, {
          async delete(key: string) {
            await inner.delete(key);
            await land([key]);
          },
          async deleteMany(keys: readonly string[]) {
            await inner.deleteMany!(keys);
            await land(keys);
          },
        }),
      });
      const stale = sweeper.keys.parseReadyMarker(markerKey)!;
      expect(await internals(sweeper).sweepMarkers([stale])).toEqual([markerKey]);
      expect((await plain.get(task.id)).marker).toBe(next.marker);
      expect(await exists(inner, markerKey)).toBe(true);
    });

    it("an idle monitor does not keep reading expired tasks (defect 6)", async () => {
      env = await target.create();
      const storage = countRequests(env.storage);
      const queue = new Queue({ storage, prefix: env.prefix });
      await queue.submitMany(
        Array.from({ length: 5 }, (_, i) => ({
          type: "nobody",
          input: i,
          options: { ttlSeconds: 0.2 },
        })),
      );
      await pause(300);
      const monitor = new Worker(queue, fast);
      workers.push(monitor);
      await monitor.start();
      await until("expired", () => monitor.stats.expired === 5);
      await pause(800);
      storage.reset();
      await pause(1500);
      expect(storage.counts.GET).toBe(0);
      expect(await readyKeys(queue)).toEqual([]);
    });
  });
}
