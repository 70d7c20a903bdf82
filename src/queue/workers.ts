/**
 * Worker heartbeats as read back: `workers/{id}.json`, one per worker that writes heartbeats
 * (docs/protocol.md, "Sharing the work"). One parser for `oq workers`, `queue.stats()` and the
 * dashboard.
 *
 * @module
 */
import { MalformedObjectError, NotFoundError } from "../errors.ts";
import { MAX_HEARTBEAT_SECONDS } from "../options.ts";
import { getBounded } from "../store/bounds.ts";
import { mapLimit } from "../util/async.ts";
import { isCount, isStoredDate } from "../util/stored-values.ts";
import type { Queue } from "./queue.ts";

/** One worker, as its last heartbeat describes it. */
export interface WorkerInfo {
  /** Worker id. */
  id: string;
  /** Task types it handles (empty: a monitor). */
  types: string[];
  /** Tasks it runs at once at most. */
  concurrency: number | null;
  /** Ids of the tasks it was running at its last heartbeat. */
  active: string[];
  /** When it started (ISO 8601). */
  startedAt: string | null;
  /** Its last heartbeat (ISO 8601, server time). */
  seenAt: string;
  /** Seconds between its heartbeats. */
  heartbeatSeconds: number;
  /** True when no heartbeat came for 3 intervals: it likely died without deleting its heartbeat. */
  stale: boolean;
  /** Its counters at the last heartbeat, as it wrote them. */
  stats: Record<string, number> | null;
}

/**
 * A heartbeat's body as a {@link WorkerInfo}, judged stale at server time `now`; `undefined` when
 * it is not a heartbeat (not JSON, no `id` or `seenAt`).
 */
export function parseHeartbeat(text: string, now: number): WorkerInfo | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (typeof r.id !== "string" || !isStoredDate(r.seenAt)) return undefined;
  const seen = Date.parse(r.seenAt);
  // Numbers are held to what a worker writes (../util/stored-values.ts): a hand-written
  // `1e999` reads as Infinity, which would make a heartbeat never stale or print "Infinity".
  const heartbeatSeconds =
    typeof r.heartbeatSeconds === "number" &&
    r.heartbeatSeconds > 0 &&
    r.heartbeatSeconds <= MAX_HEARTBEAT_SECONDS
      ? r.heartbeatSeconds
      : 60;
  const strings = (v: unknown) =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  return {
    id: r.id,
    types: strings(r.types),
    concurrency: isCount(r.concurrency) ? r.concurrency : null,
    active: strings(r.active),
    startedAt: isStoredDate(r.startedAt) ? r.startedAt : null,
    seenAt: r.seenAt,
    heartbeatSeconds,
    stale: now - seen > 3 * heartbeatSeconds * 1000,
    stats: counters(r.stats),
  };
}

/** The counters of a heartbeat's `stats`: those that are counts; null when it has none. */
function counters(value: unknown): Record<string, number> | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  return Object.fromEntries(Object.entries(value).filter(([, n]) => isCount(n)));
}

/** Sort workers by id. */
export function byWorkerId(a: WorkerInfo, b: WorkerInfo): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Every worker heartbeat of the queue, sorted by id: one LIST per 1,000 heartbeats and one GET
 * each. Malformed ones are skipped with a warning on the queue's logger.
 */
export async function readWorkers(queue: Queue): Promise<WorkerInfo[]> {
  const keys: string[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await queue.storage.list({
      prefix: queue.keys.workers,
      // Stopped workers' files (`workers/stopped/`) roll up into one prefix, not listed.
      delimiter: "/",
      ...(continuationToken === undefined ? {} : { continuationToken }),
    });
    for (const o of page.objects)
      if (/^[^/]+\.json$/.test(o.key.slice(queue.keys.workers.length))) keys.push(o.key);
    continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (continuationToken !== undefined);
  const decoder = new TextDecoder();
  const found = await mapLimit(keys, 16, async (key) => {
    try {
      const got = await getBounded(queue.storage, key);
      const info = parseHeartbeat(decoder.decode(got.body), queue.now());
      if (info === undefined) queue.logger.warn(`Skipping ${key}: not a worker heartbeat.`);
      return info;
    } catch (error) {
      // The worker stopped and deleted its heartbeat between the listing and the read.
      if (error instanceof NotFoundError) return undefined;
      if (!(error instanceof MalformedObjectError)) throw error;
      queue.logger.warn(`Skipping ${key}: ${error.message}`);
      return undefined;
    }
  });
  return found.filter((w): w is WorkerInfo => w !== undefined).sort(byWorkerId);
}
