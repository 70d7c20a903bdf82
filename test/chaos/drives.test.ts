/**
 * The `drives` chaos scenario, small: 2 worker processes on 150 tasks against a private
 * erasure-coded MinIO (4 drives) that loses a drive, briefly a second one (below write quorum),
 * gets them back and is killed and restarted once. `scripts/chaos.ts --scenario drives` runs it
 * at full size.
 *
 * Needs the MinIO binary `scripts/minio.sh install` builds. Without it the test is skipped with
 * the reason printed, except in CI (`CI` set), where it fails: `.ci/run` builds MinIO first, so a
 * missing binary there is a broken CI, not a reason to test less.
 */
import { describe, expect, it } from "vitest";
import { ErasureMinio, minioMissing } from "../helpers/minio.ts";
import { s3TargetOf } from "../helpers/targets.ts";
import { runDrivesScenario } from "./drives.ts";
import { describeReport } from "./invariants.ts";

const missing = await minioMissing();
if (missing !== undefined && !process.env.CI) console.warn(`chaos: drives skipped: ${missing}`);

describe("chaos: drives", () => {
  it.skipIf(missing !== undefined && !process.env.CI)(
    "no task is lost, completed twice or claimed twice while MinIO loses drives and restarts; doctor never calls it safe below quorum",
    async () => {
      if (missing !== undefined) throw new Error(`CI must run the drives scenario: ${missing}`);
      const minio = await ErasureMinio.start(4);
      try {
        const env = await s3TargetOf(minio.config).create();
        const result = await runDrivesScenario({
          minio,
          target: env,
          tasks: 150,
          workers: 2,
          handlerMs: [200, 700],
          leaseSeconds: 2,
          belowQuorumMs: 2000,
          timeoutMs: 40_000,
        });
        const summary = [
          `drives: ${result.elapsedMs} ms, steps ${JSON.stringify(result.steps)}`,
          `doctor ${JSON.stringify(result.doctor)}, errors ${JSON.stringify(result.storageErrors)}`,
          describeReport(result.report),
          ...result.problems.map((p) => `  ! ${p}`),
        ].join("\n");
        expect(result.ok, summary).toBe(true);
        expect(result.report.tasks).toBe(150);
        expect(result.steps.map((s) => s.step)).toHaveLength(5);
        // One drive of four lost keeps quorum: doctor proves the races as on a whole store.
        expect(result.doctor.oneDriveLost?.verdict, summary).toBe("safe");
        // Two lost: nothing can be written, so nothing can be proven, and nothing is wrongly
        // condemned either: "could not check", never safe, never unsafe.
        expect(result.doctor.belowQuorum?.verdict, summary).toBe("error");
        await env.cleanup();
      } finally {
        await minio.stop();
      }
    },
    90_000,
  );
});
