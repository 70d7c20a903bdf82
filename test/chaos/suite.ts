/**
 * Registers a chaos scenario as one test per target: memory (workers in this process), file and
 * MinIO (workers in their own processes; MinIO only when OQ_TEST_S3_* is set).
 *
 * @module
 */
import { describe, expect, it } from "vitest";
import { targets } from "../helpers/targets.ts";
import { runScenario, type ScenarioName, type ScenarioOptions } from "./harness.ts";
import { describeReport } from "./invariants.ts";

/** The scenario's test on every available target, small enough for `npm test`. */
export function scenarioSuite(
  name: ScenarioName,
  title: string,
  options: Omit<ScenarioOptions, "target" | "targetName">,
  timeoutMs = 60_000,
): void {
  describe(`chaos: ${name}`, () => {
    for (const target of targets) {
      it(
        `${title} (${target.name})`,
        async () => {
          const env = await target.create();
          try {
            const result = await runScenario(name, {
              ...options,
              target: env,
              targetName: target.name,
              timeoutMs: timeoutMs - 15_000,
            });
            const summary = [
              `${name} on ${target.name} (${result.mode}): ${result.elapsedMs} ms, faults ${JSON.stringify(result.faults)}`,
              describeReport(result.report),
              ...result.problems.map((p) => `  ! ${p}`),
            ].join("\n");
            expect(result.ok, summary).toBe(true);
            expect(result.report.tasks).toBeGreaterThanOrEqual(options.tasks);
          } finally {
            await env.cleanup();
          }
        },
        timeoutMs,
      );
    }
  });
}
