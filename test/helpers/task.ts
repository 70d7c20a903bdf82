/**
 * A task record built by the state machine itself, for the pure tests of transitions and of the
 * event log: one fixture, so both suites start from the same record.
 */
import { DEFAULT_BACKOFF } from "../../src/task/backoff.ts";
import type { TaskRecord } from "../../src/task/record.ts";
import { createTask } from "../../src/task/transitions.ts";

/** The time fixtures are created at: 2026-11-28 12:00:00 UTC. */
export const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/** A pending task `abc` of type `t` created at {@link T0}, due then, with 2 retries; `over` wins. */
export function makeTask(
  over: Partial<Parameters<typeof createTask>[0]> = {},
  input: unknown = null,
): TaskRecord {
  return createTask(
    {
      id: "abc",
      type: "t",
      input,
      maxRetries: 2,
      backoff: DEFAULT_BACKOFF,
      timeoutSeconds: null,
      availableAt: T0,
      expiresAt: null,
      idempotencyKey: null,
      marker: "ready/m.1",
      ...over,
    },
    T0,
  );
}
