/**
 * Waiting in tests: a pause, a poll until a condition holds, and worker options that poll fast,
 * shared so every suite waits the same way.
 */
import type { WorkerOptions } from "../../src/worker/worker.ts";

/** Worker options for tests: poll every 20-100 ms, no heartbeats, listings reused for 200 ms. */
export const fast: WorkerOptions = {
  minPollMs: 20,
  maxPollMs: 100,
  heartbeatSeconds: 0,
  listReuseMs: 200,
};

/** Resolve after `ms` milliseconds. */
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` every 25 ms until it holds; throw naming `what` after `timeoutMs` (default 20 s). */
export async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await pause(25);
  }
}
