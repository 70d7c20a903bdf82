/**
 * The `network` chaos scenario: workers and the submitter reach MinIO only through a
 * {@link FaultProxy} that resets answers part-way, loses the answers of writes that committed,
 * delays answers by seconds, holds a few connections until the client's request timeout, and,
 * once the work is under way, answers every request `503 SlowDown` for a while (a "503 storm").
 * The invariants are the harness's; this file adds the proxy, the schedule of its faults, and
 * the request rate reaching the proxy before and during the storm.
 *
 * @module
 */
import { S3Storage } from "../../src/storage/s3/driver.ts";
import type { TargetInstance } from "../helpers/targets.ts";
import {
  type FaultProxy,
  type NetworkFaultCounts,
  type NetworkFaultPlan,
  startFaultProxy,
} from "../support/fault-proxy.ts";
import type { ChaosInput, ChaosWorkerConfig } from "./chaos-worker.ts";
import type { Fleet, ScenarioOptions } from "./harness.ts";

/** A target whose every request goes through a fault proxy, and the proxy. */
export interface ProxiedTarget {
  proxy: FaultProxy;
  /** The same bucket and prefix, reached through the proxy (storage and worker environment). */
  target: TargetInstance;
}

/** Put a fault proxy (no faults yet) in front of an S3 target. */
export async function proxyTarget(target: TargetInstance): Promise<ProxiedTarget> {
  const env = target.env;
  if (env?.OQ_ENDPOINT === undefined || env.OQ_BUCKET === undefined) {
    throw new Error("the network scenario needs an S3 target (--target s3, OQ_TEST_S3_* set)");
  }
  const proxy = await startFaultProxy({ upstream: env.OQ_ENDPOINT });
  const storage = new S3Storage({
    endpoint: proxy.url,
    bucket: env.OQ_BUCKET,
    region: env.OQ_REGION ?? "us-east-1",
    accessKeyId: env.AWS_ACCESS_KEY_ID ?? "",
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? "",
    // The submitter's: a held submit then costs 5 s, not the storm's place in the run. Workers
    // keep the driver's default (30 s), as users run them.
    requestTimeoutMs: 5000,
  });
  return {
    proxy,
    target: {
      storage,
      prefix: target.prefix,
      env: { ...env, OQ_ENDPOINT: proxy.url },
      cleanup: () => proxy.close(),
    },
  };
}

/** What the network scenario measured (it lands in the result's `facts`). */
export interface NetworkFacts {
  /** Faults the proxy did, by kind. */
  proxyFaults: NetworkFaultCounts;
  /** Writes MinIO carried out whose answer the client never got in full. */
  committedWritesLost: number;
  /** Requests that reached the proxy, and those it forwarded to MinIO. */
  proxyRequests: number;
  proxyForwarded: number;
  /** The storm's length, ms. */
  stormMs: number;
  /** Requests reaching the proxy in the window of the storm's length just before it. */
  requestsBeforeStorm: number;
  /** The length of that window, ms (shorter when the submit ended less than a storm ago). */
  beforeWindowMs: number;
  /** Requests reaching the proxy during the storm. */
  requestsDuringStorm: number;
  /** Requests per second before and during the storm. */
  perSecondBeforeStorm: number;
  perSecondDuringStorm: number;
  /** Requests per second in each second of the storm, first to last. */
  perSecondInStorm: number[];
  /** Requests answered 503 SlowDown, by what they were. */
  slowdownsByRequest: Record<string, number>;
  /** Tasks finished when the storm began, and when it ended. */
  doneAtStormStart: number;
  doneAtStormEnd: number;
  /** From the storm's end until the next task finished, ms. */
  firstFinishAfterStormMs: number | undefined;
}

/** What the scenario needs of the harness's `runScenario`. */
export interface NetworkContext {
  fleet: Fleet;
  options: ScenarioOptions;
  proxy: FaultProxy;
  /** A worker's configuration with the scenario's lease. */
  config: (id: string, lease: number) => ChaosWorkerConfig;
  /** Submit through the proxy, then wait until every task is terminal. */
  submitAndWait: (input: (i: number) => ChaosInput) => Promise<void>;
  say: (line: string) => void;
}

/** The faults outside the storm. Holds last until the client's request timeout (30 s). */
export function backgroundPlan(tasks: number): NetworkFaultPlan {
  return {
    resetRate: 0.02,
    lostWriteRate: 0.02,
    delayRate: 0.01,
    delayMs: [1000, 3000],
    holdRate: 0.002,
    maxHolds: tasks >= 1000 ? 4 : 1,
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rid = () => Math.random().toString(36).slice(2, 8);

/**
 * Run the scenario: workers start, tasks are submitted through the proxy under the background
 * faults, and once the submit is done and 30% of the tasks finished, a storm of `stormMs`
 * (default 20 s; 8 s under 1,000 tasks) answers everything 503 SlowDown. Returns the facts.
 */
export async function runNetwork(ctx: NetworkContext, stormMs?: number): Promise<NetworkFacts> {
  const { fleet, options, proxy, say } = ctx;
  const storm = stormMs ?? (options.tasks >= 1000 ? 20_000 : 8000);
  proxy.setPlan(backgroundPlan(options.tasks));
  const n = options.workers ?? 4;
  await Promise.all(
    Array.from({ length: n }, (_, i) => fleet.start(ctx.config(`net-${i}-${rid()}`, 5))),
  );
  const [lo, hi] = options.handlerMs ?? [100, 400];
  const work = ctx.submitAndWait(() => ({ ms: Math.round(lo + Math.random() * (hi - lo)) }));
  let settled = false;
  void work.finally(() => {
    settled = true;
  });
  const done = () => fleet.reportedDone.size;
  let submittedAt = 0;
  while (!settled && (fleet.log.submitted.length < options.tasks || done() < options.tasks * 0.3)) {
    if (submittedAt === 0 && fleet.log.submitted.length >= options.tasks) submittedAt = Date.now();
    await sleep(50);
  }
  if (settled) throw new Error("the work ended before the storm could begin");
  const stormStart = Date.now();
  const doneAtStormStart = done();
  say(`503 storm for ${storm} ms (${doneAtStormStart} tasks done)`);
  await proxy.storm(storm);
  const stormEnd = proxy.storms.at(-1)!.endMs;
  const doneAtStormEnd = done();
  say(`storm over (${doneAtStormEnd} tasks done)`);
  let firstFinishAfterStormMs: number | undefined;
  while (!settled && firstFinishAfterStormMs === undefined) {
    if (done() > doneAtStormEnd) firstFinishAfterStormMs = Date.now() - stormEnd;
    else await sleep(50);
  }
  await work;
  const beforeFrom = Math.max(submittedAt || stormStart - storm, stormStart - storm);
  const perSecondInStorm: number[] = [];
  for (let t = stormStart; t + 1000 <= stormEnd; t += 1000)
    perSecondInStorm.push(proxy.requestsBetween(t, t + 1000));
  return {
    proxyFaults: { ...proxy.faults },
    committedWritesLost: proxy.committedWritesLost,
    proxyRequests: proxy.requests,
    proxyForwarded: proxy.forwarded,
    stormMs: storm,
    requestsBeforeStorm: proxy.requestsBetween(beforeFrom, stormStart),
    beforeWindowMs: stormStart - beforeFrom,
    requestsDuringStorm: proxy.requestsBetween(stormStart, stormEnd),
    perSecondBeforeStorm: round(proxy.rate(beforeFrom, stormStart)),
    perSecondDuringStorm: round(proxy.rate(stormStart, stormEnd)),
    perSecondInStorm,
    slowdownsByRequest: { ...proxy.slowdownsByRequest },
    doneAtStormStart,
    doneAtStormEnd,
    firstFinishAfterStormMs,
  };
}

const round = (x: number) => Math.round(x * 10) / 10;
