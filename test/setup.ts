/**
 * Fails any test that leaves a worker running: a leaked worker keeps polling and would make
 * later tests (and CI) flaky. Stop every worker you start, even when the test fails.
 */
import { afterEach, expect } from "vitest";
import { liveWorkers } from "../src/worker/worker.ts";

afterEach(async () => {
  const leaked = liveWorkers();
  if (leaked.length === 0) return;
  await Promise.all(leaked.map((w) => w.stop({ graceMs: 0 })));
  expect(
    leaked.map((w) => w.id),
    "workers left running by this test",
  ).toEqual([]);
});
