/**
 * The simulated AWS S3 of the scale model (scripts/sim/s3-sim.ts, docs/scale.md): its limits,
 * latency, partitions and killed views, on the model's virtual clock.
 */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../scripts/sim/random.ts";
import { SimS3 } from "../scripts/sim/s3-sim.ts";
import { settle, VirtualTime } from "../scripts/sim/virtual-time.ts";
import { type OqError, ThrottledError } from "../src/errors.ts";
import { isTransient } from "../src/retry.ts";

const T0 = Date.parse("2026-12-01T00:00:00.000Z");
const none = { p50: 0, p99: 0 };
const noLatency = { GET: none, HEAD: none, PUT: none, POST: none, DELETE: none, LIST: none };

/** A bucket on a virtual clock that moves only when the test runs it. */
function bucket(options: Partial<ConstructorParameters<typeof SimS3>[0]> = {}) {
  const vt = new VirtualTime(T0);
  const sim = new SimS3({
    queuePrefix: "q/",
    now: vt.now,
    random: seededRandom(1),
    sleep: (ms) => vt.sleep(ms),
    ...options,
  });
  return { vt, sim };
}

/** Whether `promise` has settled, after every pending microtask ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await settle();
  return done;
}

describe("simulated S3", () => {
  it("answers 503 SlowDown as the S3 driver does once a partition's writes for the second are spent", async () => {
    const { vt, sim } = bucket({ latency: noLatency, limits: { write: 3 } });
    const s = sim.view("w1");
    for (let i = 0; i < 3; i++) await s.put(`q/tasks/3/t${i}.json`, "{}");
    const refused = s.put("q/tasks/3/t3.json", "{}");
    refused.catch(() => {});
    await vt.runUntil(T0 + 900);
    const error = await refused.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ThrottledError);
    expect((error as OqError).status).toBe(503);
    expect((error as OqError).s3Code).toBe("SlowDown");
    expect(isTransient(error)).toBe(true);
    // Each of the driver's tries was a request, refused in the same second.
    const summary = sim.meter.summary(0, 1);
    expect(summary.slowDown).toBe(sim.retryPolicy.attempts);
    expect(summary.requests.PUT).toBe(3 + sim.retryPolicy.attempts);
    // Reads have their own limit, and other partitions theirs.
    await expect(s.get("q/tasks/3/t0.json")).resolves.toBeDefined();
    await expect(s.put("q/tasks/4/t0.json", "{}")).resolves.toBeDefined();
    // The next second brings a new allowance.
    await vt.runUntil(T0 + 1000);
    await expect(s.put("q/tasks/3/t3.json", "{}")).resolves.toBeDefined();
  });

  it("retries SlowDown like the driver: a try in the next second succeeds", async () => {
    const { vt, sim } = bucket({
      latency: { ...noLatency, PUT: { p50: 400, p99: 400 } },
      limits: { write: 1 },
    });
    const s = sim.view("w1");
    const first = s.put("q/a/1", "x");
    const second = s.put("q/a/2", "x");
    await vt.runUntil(T0 + 10_000);
    await expect(first).resolves.toBeDefined();
    await expect(second).resolves.toBeDefined();
    expect(sim.meter.summary(0, 10).slowDown).toBeGreaterThan(0);
  });

  it("applies latency: the server applies a request halfway, the answer arrives after all of it", async () => {
    const { vt, sim } = bucket({ latency: { PUT: { p50: 40, p99: 40 } } });
    const s = sim.view("w1");
    const put = s.put("q/tasks/3/t.json", "{}");
    await vt.runUntil(T0 + 19);
    await expect(sim.store.head("q/tasks/3/t.json")).rejects.toThrow();
    await vt.runUntil(T0 + 21);
    await expect(sim.store.head("q/tasks/3/t.json")).resolves.toBeDefined();
    expect(await settled(put)).toBe(false);
    await vt.runUntil(T0 + 41);
    expect(await settled(put)).toBe(true);
    // The answer's Date header: the server's time to the second, sent and received 40 ms apart.
    expect(s.serverTime()).toEqual({
      serverMs: T0,
      resolutionMs: 1000,
      sentMs: T0,
      localMs: T0 + 40,
    });
  });

  it("draws lognormal latencies around the given median", () => {
    const { sim } = bucket({ latency: { GET: { p50: 15, p99: 100 } } });
    const draws = Array.from({ length: 4001 }, () => sim.latency("GET")).sort((a, b) => a - b);
    expect(draws[2000]).toBeGreaterThan(13);
    expect(draws[2000]).toBeLessThan(17);
    expect(draws[3960]).toBeGreaterThan(70);
    expect(draws[3960]).toBeLessThan(140);
  });

  it("puts a key in the longest prefix a LIST has named, else its first two segments", async () => {
    const { sim } = bucket({ latency: noLatency });
    const s = sim.view("w1");
    // Before any LIST: the first two directories under the queue prefix.
    expect(sim.partitionOf("q/ready/20261201T000000Z/email/a.1")).toBe("q/ready/20261201T000000Z/");
    expect(sim.partitionOf("q/tasks/3/3f.json")).toBe("q/tasks/3/");
    expect(sim.partitionOf("q/workers/w1.json")).toBe("q/workers/");
    expect(sim.partitionOf("q/queue.json")).toBe("q/");
    // Today's layout lists ready/ as one range...
    await s.list({ prefix: "q/ready/" });
    expect(sim.partitionOf("q/ready/20261201T000000Z/email/a.1")).toBe("q/ready/");
    expect(sim.partitionOf("q/ready/email/3/20261201T000000Z/a.1")).toBe("q/ready/");
    // ...the new one lists one type's shard: the longest named prefix wins.
    await s.list({ prefix: "q/ready/email/3/" });
    expect(sim.partitionOf("q/ready/email/3/20261201T000000Z/a.1")).toBe("q/ready/email/3/");
    expect(sim.partitionOf("q/ready/video/0/20261201T000000Z/b.1")).toBe("q/ready/");
    // Listing the queue prefix itself (or the bucket) names no partition.
    await s.list({ prefix: "q/" });
    await s.list();
    expect(sim.partitionOf("q/tasks/3/3f.json")).toBe("q/tasks/3/");
    // A LIST is served by (and counted against) the partition it names.
    const parts = sim.meter.summary(0, 1).partitions.map((p) => p.partition);
    expect(parts).toContain("q/ready/email/3/");
  });

  it("counts a DeleteObjects as one POST and one write per key in each key's partition", async () => {
    const { sim } = bucket({ latency: noLatency });
    const s = sim.view("w1");
    await s.list({ prefix: "q/ready/" });
    await s.deleteMany(["q/ready/a/1", "q/ready/a/2", "q/tasks/3/x.json"]);
    const summary = sim.meter.summary(0, 1);
    expect(summary.requests.POST).toBe(1);
    const write = (p: string) => summary.partitions.find((x) => x.partition === p)?.peakWrite;
    expect(write("q/ready/")).toBe(2);
    expect(write("q/tasks/3/")).toBe(1);
  });

  it("counts a DeleteObjects once per partition it touches with deleteUnits: request", async () => {
    const { sim } = bucket({ latency: noLatency, deleteUnits: "request" });
    const s = sim.view("w1");
    await s.list({ prefix: "q/ready/" });
    await s.deleteMany(["q/ready/a/1", "q/ready/a/2", "q/tasks/3/x.json"]);
    const summary = sim.meter.summary(0, 1);
    const write = (p: string) => summary.partitions.find((x) => x.partition === p)?.peakWrite;
    expect(write("q/ready/")).toBe(1);
    expect(write("q/tasks/3/")).toBe(1);
  });

  it("breaks a partition's second down by kind, key class and keys already gone", async () => {
    const keyClass = (key: string) => (key.endsWith(".lease") ? "lease marker" : undefined);
    const { sim } = bucket({ latency: noLatency, keyClass });
    const a = sim.view("a");
    const b = sim.view("b");
    await a.list({ prefix: "q/ready/" });
    await a.put("q/ready/m1", "");
    await a.put("q/ready/m2.lease", "");
    await a.deleteMany(["q/ready/m1", "q/ready/m2.lease"]);
    // A second client deletes the same keys again: write units that delete nothing.
    await b.deleteMany(["q/ready/m1", "q/ready/m2.lease"]);
    await b.delete("q/ready/m1");
    const k = sim.meter.breakdown("q/ready/", 0, "write", 0);
    expect(k.units).toBe(7);
    expect(k.writers).toBe(2);
    expect(k.distinctKeysWritten).toBe(2);
    expect(Object.fromEntries(k.byWhat.map((w) => [w.what, w.units]))).toEqual({
      LIST: 1,
      PUT: 1,
      "PUT lease marker": 1,
      "DeleteObjects key": 1,
      "DeleteObjects key lease marker": 1,
      "DeleteObjects key (already gone)": 1,
      "DeleteObjects key lease marker (already gone)": 1,
      "DELETE (already gone)": 1,
    });
  });

  it("counts task GETs that won nothing and 412 answers as claim conflicts", async () => {
    const isTaskKey = (key: string) => key.startsWith("q/tasks/");
    const { sim } = bucket({ latency: noLatency, isTaskKey });
    const a = sim.view("a");
    const b = sim.view("b");
    const { etag } = await a.put("q/tasks/3/t.json", "v1");
    await a.get("q/tasks/3/t.json");
    await b.get("q/tasks/3/t.json");
    await a.put("q/tasks/3/t.json", "v2", { ifMatch: etag });
    await expect(b.put("q/tasks/3/t.json", "v2", { ifMatch: etag })).rejects.toThrow();
    expect(sim.meter.summary(0, 1).conflicts).toEqual({
      taskGets: 2,
      taskGetsThatWon: 1,
      wastedTaskGets: 1,
      preconditionFailed: 1,
      ifMatchNotFound: 0,
    });
  });

  it("a killed view never answers again, in flight or new; the others still do", async () => {
    const { vt, sim } = bucket({
      latency: { PUT: { p50: 40, p99: 40 }, GET: { p50: 40, p99: 40 } },
    });
    const dead = sim.view("dead");
    const live = sim.view("live");
    const landed = dead.put("q/tasks/3/landed.json", "x");
    await vt.runUntil(T0 + 30); // past the server: the write is applied, its answer is lost
    dead.kill();
    const after = dead.get("q/tasks/3/landed.json");
    await vt.runUntil(T0 + 60_000);
    expect(await settled(landed)).toBe(false);
    expect(await settled(after)).toBe(false);
    expect(dead.killed).toBe(true);
    const read = live.get("q/tasks/3/landed.json");
    await vt.runUntil(T0 + 61_000);
    expect(new TextDecoder().decode((await read).body)).toBe("x");
  });

  it("runs virtual timers in time order and jumps the clock between them", async () => {
    const vt = new VirtualTime(T0);
    const seen: string[] = [];
    vt.schedule(() => seen.push(`b@${vt.now() - T0}`), 500);
    vt.schedule(() => seen.push(`a@${vt.now() - T0}`), 100);
    const tick = vt.schedule(() => seen.push(`never`), 300);
    vt.cancel(tick);
    await vt.runUntil(T0 + 10_000);
    expect(seen).toEqual(["a@100", "b@500"]);
    expect(vt.now()).toBe(T0 + 10_000);
  });
});
