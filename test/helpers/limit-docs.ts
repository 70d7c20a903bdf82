/** Limit objects and admission requests for the pure tests of `admit` and `holds`. */
import type { LimitDocument } from "../../src/queue/limits.ts";

/** The time the fixtures are written at: 2026-11-30 12:00:00 UTC. */
export const T0 = Date.parse("2026-11-30T12:00:00.000Z");

/** `ms` as an ISO string. */
export const iso = (ms: number) => new Date(ms).toISOString();

/** A limit object of `type` with no limits, holders or starts; `over` wins. */
export function limitDoc(type: string, over: Partial<LimitDocument> = {}): LimitDocument {
  return {
    oq: "limit",
    type,
    concurrency: null,
    ratePerSecond: null,
    updatedAt: iso(T0),
    holders: {},
    starts: [],
    ...over,
  };
}

/** A start of task `task-{token}` by worker `w1` at `now`, its slot held for a minute. */
export const startSpec = (token: string, now = T0) => ({
  taskId: `task-${token}`,
  worker: "w1",
  token,
  until: now + 60_000,
  now,
});
