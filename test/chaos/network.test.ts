import { describe, expect, it } from "vitest";
import { AmbiguousWriteError, ThrottledError, UnavailableError } from "../../src/errors.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import { parseErrorBody } from "../../src/storage/s3/errors.ts";
import { s3Config, s3Target } from "../helpers/targets.ts";
import {
  describeRequest,
  type FaultProxy,
  slowDownBody,
  startFaultProxy,
} from "../support/fault-proxy.ts";
import { runScenario } from "./harness.ts";
import { describeReport } from "./invariants.ts";

describe("fault proxy", () => {
  it("answers a storm with the S3 error body AWS sends for 503 SlowDown", () => {
    const body = parseErrorBody(slowDownBody("/oq-test/a/tasks/1/1.json", "r1"));
    expect(body.code).toBe("SlowDown");
    expect(body.message).toBe("Please reduce your request rate.");
  });

  it("names requests by what they touch", () => {
    expect(describeRequest("GET", "/b/p/tasks/3/3f.json")).toBe("GET tasks");
    expect(describeRequest("GET", "/b/?list-type=2&prefix=p%2Fready%2Fchaos%2F0%2F")).toBe(
      "LIST ready",
    );
    expect(describeRequest("POST", "/b/?delete=")).toBe("POST delete");
    expect(describeRequest("PUT", "/b/p/workers/w1.json")).toBe("PUT workers");
  });
});

if (s3Config === undefined || s3Target === undefined) {
  console.warn(
    "Network chaos suite skipped: OQ_TEST_S3_* not set. Run it against MinIO with: npm run test:s3",
  );
} else {
  const c = s3Config;
  const target = s3Target;
  const through = (proxy: FaultProxy, requestTimeoutMs = 30_000) =>
    new S3Storage({
      endpoint: proxy.url,
      bucket: c.bucket,
      region: c.region,
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      requestTimeoutMs,
      retries: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
    });
  const failure = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (error) {
      return error;
    }
    throw new Error("expected a failure");
  };

  describe("fault proxy in front of MinIO", () => {
    it("loses the answer of a write that committed: the client sees an error for a write that happened", async () => {
      const env = await target.create();
      const proxy = await startFaultProxy({ upstream: c.endpoint, plan: { lostWriteRate: 1 } });
      try {
        const key = `${env.prefix}lost.json`;
        const error = await failure(through(proxy).put(key, "won", { ifNoneMatch: "*" }));
        expect(error).toBeInstanceOf(AmbiguousWriteError);
        const stored = await env.storage.get(key);
        expect(new TextDecoder().decode(stored.body)).toBe("won");
        expect(proxy.faults["lost-write"]).toBe(1);
        expect(proxy.committedWritesLost).toBe(1);
      } finally {
        await proxy.close();
        await env.cleanup();
      }
    });

    it("resets answers part-way, holds requests until the client's timeout, answers a storm 503 SlowDown", async () => {
      const env = await target.create();
      const proxy = await startFaultProxy({ upstream: c.endpoint });
      try {
        const key = `${env.prefix}k.json`;
        await env.storage.put(key, "x".repeat(2000));
        const storage = through(proxy, 300);
        proxy.setPlan({ resetRate: 1 });
        expect(await failure(storage.get(key))).toBeInstanceOf(UnavailableError);
        expect(proxy.faults.reset).toBe(2);
        proxy.setPlan({ holdRate: 1, maxHolds: 2 });
        const held = await failure(storage.get(key));
        expect(held).toBeInstanceOf(UnavailableError);
        expect((held as Error).message).toContain("timed out after 300 ms");
        expect(proxy.faults.hold).toBe(2);
        proxy.setPlan({});
        const storm = proxy.storm(1500);
        expect(await failure(storage.get(key))).toBeInstanceOf(ThrottledError);
        expect(proxy.faults.slowdown).toBe(2);
        expect(proxy.slowdownsByRequest).toEqual({ "GET bucket": 2 });
        await storm;
      } finally {
        await proxy.close();
        await env.cleanup();
      }
    });
  });

  describe("chaos: network", () => {
    it("2 workers finish 150 tasks exactly once through resets, lost answers, delays, holds and a 503 storm, and back off during the storm", async () => {
      const env = await target.create();
      try {
        const tasks = 150;
        const workers = 2;
        const result = await runScenario("network", {
          target: env,
          targetName: target.name,
          tasks,
          workers,
          timeoutMs: 75_000,
        });
        const f = result.facts as {
          requestsDuringStorm: number;
          stormMs: number;
          doneAtStormEnd: number;
        };
        const summary = [
          `network: ${result.elapsedMs} ms, ${JSON.stringify(result.facts)}`,
          describeReport(result.report),
          ...result.problems.map((p) => `  ! ${p}`),
        ].join("\n");
        expect(result.ok, summary).toBe(true);
        expect(result.report.tasks).toBe(tasks);
        // The storm hit a fleet at work.
        expect(f.doneAtStormEnd, summary).toBeLessThan(tasks);
        // Backing off: at most 5 requests a second per worker over the storm, by count. Each
        // throttled answer doubles the client's pause up to 5 s; without it, every request
        // spent its tries in 350 ms and two workers sent ~250 requests in an 8 s storm.
        expect(f.requestsDuringStorm, summary).toBeLessThanOrEqual(
          (workers * 5 * f.stormMs) / 1000,
        );
      } finally {
        await env.cleanup();
      }
    }, 90_000);
  });
}
