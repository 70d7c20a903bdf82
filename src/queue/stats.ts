/**
 * `queue.stats()`: per task type, the pending (due, delayed) and running tasks, the age of the
 * oldest due task, the tasks finished in the last hour and day, and throughput. Its cost does
 * not grow with the number of finished tasks: live counts come from the ready index (one marker
 * per non-terminal task), finished counts from the buckets that workers write in their
 * heartbeats (`./finished-counts.ts`). See docs/protocol.md, "Stats".
 *
 * @module
 */
import { MalformedObjectError, NotFoundError } from "../errors.ts";
import { checkTaskType, timeKey } from "../keys.ts";
import { checkOptions, statsOptionsSchema } from "../options.ts";
import { getBounded } from "../store/bounds.ts";
import { mapLimit } from "../util/async.ts";
import {
  addWindows,
  emptyTally,
  FINISHED_KEEP_MS,
  type FinishedTally,
  type FinishedWindows,
  parseSnapshot,
} from "./finished-counts.ts";
import type { QueueInternals } from "./internals.ts";
import { byWorkerId, parseHeartbeat, type WorkerInfo } from "./workers.ts";

/** Options of `queue.stats()`. */
export interface StatsOptions {
  /**
   * Report only these task types, and list only their markers (no listing of `ready/` to find
   * the types). Default: every type that has markers or finished counts.
   */
  types?: readonly string[];
  /**
   * Pages of markers (up to 1,000 markers each) read per type at most. A type with more markers
   * than that is reported with `capped: true`, its pending and running counts as lower bounds.
   * Default: 10 (10,000 markers).
   */
  maxPagesPerType?: number;
  /**
   * Whole minutes (1 to 60) that `throughputPerMinute` is averaged over: the ones before the
   * current minute. Default: 10.
   */
  throughputMinutes?: number;
  /**
   * Also report each type's finished counts minute by minute and hour by hour
   * ({@link TypeStats.series}), e.g. to chart them. Costs no request more. Default false.
   */
  series?: boolean;
}

/** One task type's counts, as `queue.stats()` reports them. */
export interface TypeStats {
  /** The task type. */
  type: string;
  /** Pending tasks: `due` (may be claimed now) and `delayed` (due later, or waiting a backoff). */
  pending: { due: number; delayed: number };
  /** Running tasks (claimed, whose first lease renewal has moved their marker). */
  running: number;
  /** Milliseconds since the oldest due pending task became due; `null` when none is due. */
  oldestDueAgeMs: number | null;
  /**
   * Tasks that reached each terminal state, as workers reported in their heartbeats: in the
   * current minute and the 59 before it (`lastHour`), in the current hour and the 23 before it
   * (`lastDay`).
   */
  finished: { lastHour: FinishedTally; lastDay: FinishedTally };
  /** Completed plus failed tasks per minute, over the `throughputMinutes` before this minute. */
  throughputPerMinute: number;
  /** True when the type had more markers than `maxPagesPerType` pages: counts are lower bounds. */
  capped: boolean;
  /** True when the type is paused (`queue.pause`): workers claim none of its tasks. */
  paused: boolean;
  /**
   * With `series: true`: the finished counts of each minute of the last hour (60, oldest first,
   * the current minute last) and of each hour of the last day (24, the current hour last).
   */
  series?: { minutes: FinishedTally[]; hours: FinishedTally[] };
}

/** What `queue.stats()` returns. */
export interface QueueStats {
  /** Server time the counts are for (ISO 8601). */
  at: string;
  /** Per task type, sorted by type. */
  types: TypeStats[];
  /** True when any type is `capped`. */
  capped: boolean;
  /**
   * The workers whose heartbeat (`workers/{id}.json`) was written in the last 25 hours, by id,
   * read in the same GETs as their finished counts; `stale` ones stopped writing it.
   */
  workers: WorkerInfo[];
  /** The requests this call made (LIST and GET; nothing else). */
  requests: { LIST: number; GET: number };
}

const decoder = new TextDecoder();

/**
 * Count a queue's tasks by type (see {@link QueueStats}). Costs, whatever the number of finished
 * tasks: one LIST per 1,000 types (none with `types`), per type one LIST per 1,000 markers (at
 * most `maxPagesPerType`), and 2 LISTs plus one GET per heartbeat or stopped worker's file of
 * the last 25 hours.
 */
export async function queueStats(q: QueueInternals, given: StatsOptions = {}): Promise<QueueStats> {
  const options = checkOptions(statsOptionsSchema, given, "stats options");
  const maxPages = options.maxPagesPerType ?? 10;
  const minutes = options.throughputMinutes ?? 10;
  const only = options.types?.map((t) => checkTaskType(t));
  const requests = { LIST: 0, GET: 0 };
  const now = q.now();

  const types = only ?? (await allTypes(q, requests));
  const live = await mapLimit(types, 8, (type) => liveCounts(q, type, now, maxPages, requests));
  const { windows: finished, workers } = await finishedCounts(q, now, minutes, requests);

  const byType = new Map<string, TypeStats>();
  const entry = (type: string): TypeStats => {
    let s = byType.get(type);
    if (s === undefined) {
      s = {
        type,
        pending: { due: 0, delayed: 0 },
        running: 0,
        oldestDueAgeMs: null,
        finished: { lastHour: emptyTally(), lastDay: emptyTally() },
        throughputPerMinute: 0,
        capped: false,
        paused: false,
      };
      if (options.series === true) s.series = emptySeries();
      byType.set(type, s);
    }
    return s;
  };
  // A type listed with no marker left (MinIO lists the prefix of deleted keys in a versioned
  // bucket) and nothing finished is not reported.
  for (const l of live)
    if (l.pending.due + l.pending.delayed + l.running > 0 || l.paused || only?.includes(l.type))
      Object.assign(entry(l.type), l);
  for (const [type, w] of finished) {
    if (only !== undefined && !only.includes(type)) continue;
    const s = entry(type);
    s.finished = { lastHour: w.lastHour, lastDay: w.lastDay };
    s.throughputPerMinute = w.recent / minutes;
    if (options.series === true) s.series = { minutes: w.minutes, hours: w.hours };
  }
  const sorted = [...byType.values()].sort((a, b) => (a.type < b.type ? -1 : 1));
  return {
    at: new Date(now).toISOString(),
    types: sorted,
    capped: sorted.some((s) => s.capped),
    workers,
    requests,
  };
}

/** A series of nothing finished: 60 minutes and 24 hours of zeros. */
function emptySeries(): NonNullable<TypeStats["series"]> {
  return {
    minutes: Array.from({ length: 60 }, emptyTally),
    hours: Array.from({ length: 24 }, emptyTally),
  };
}

/** Every type with markers in the ready index (a delimiter LIST per 1,000 types). */
async function allTypes(q: QueueInternals, requests: { LIST: number }): Promise<string[]> {
  const found: string[] = [];
  let next: string | undefined;
  do {
    requests.LIST++;
    const page = await q.index.typesPage(next);
    found.push(...page.types);
    next = page.next;
  } while (next !== undefined);
  return found;
}

/** The counts of one type from its markers, at most `maxPages` pages. */
async function liveCounts(
  q: QueueInternals,
  type: string,
  now: number,
  maxPages: number,
  requests: { LIST: number },
): Promise<
  Pick<TypeStats, "type" | "pending" | "running" | "oldestDueAgeMs" | "capped" | "paused">
> {
  const progress = { capped: false, pages: 0, paused: false };
  const pending = { due: 0, delayed: 0 };
  let running = 0;
  let oldestDue = Number.POSITIVE_INFINITY;
  const prefix = q.keys.readyType(type);
  try {
    for await (const marker of q.index.markers({ prefix, maxPages, progress })) {
      if (marker.lease === true) running++;
      else if (marker.dueMs <= now) {
        pending.due++;
        oldestDue = Math.min(oldestDue, marker.dueMs);
      } else pending.delayed++;
    }
  } finally {
    requests.LIST += progress.pages;
  }
  return {
    type,
    pending,
    running,
    oldestDueAgeMs: oldestDue === Number.POSITIVE_INFINITY ? null : Math.max(0, now - oldestDue),
    capped: progress.capped,
    paused: progress.paused,
  };
}

/**
 * The finished counts of the last day, summed over the heartbeats (`workers/{id}.json`, listed
 * with a delimiter so `workers/stopped/` is one entry) and the stopped workers' files of the
 * last 25 hours (`workers/stopped/{time}/{id}.json`, listed from that time on), and the live
 * heartbeats as workers. A file deleted between the listing and the read (its worker stopped) is
 * skipped.
 */
async function finishedCounts(
  q: QueueInternals,
  now: number,
  throughputMinutes: number,
  requests: { LIST: number; GET: number },
): Promise<{ windows: Map<string, FinishedWindows>; workers: WorkerInfo[] }> {
  const since = now - FINISHED_KEEP_MS;
  const keys: string[] = [];
  const heartbeats = new Set<string>();
  const collect = async (prefix: string, extra: { delimiter?: string; startAfter?: string }) => {
    let continuationToken: string | undefined;
    do {
      requests.LIST++;
      const page = await q.storage.list({
        prefix,
        ...(continuationToken === undefined ? extra : { ...extra, continuationToken }),
      });
      for (const o of page.objects) {
        const rest = o.key.slice(prefix.length);
        const shape = extra.delimiter === undefined ? /^[^/]+\/[^/]+\.json$/ : /^[^/]+\.json$/;
        if (!shape.test(rest) || o.lastModified.getTime() < since) continue;
        keys.push(o.key);
        if (extra.delimiter !== undefined) heartbeats.add(o.key);
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken !== undefined);
  };
  await collect(q.keys.workers, { delimiter: "/" });
  await collect(q.keys.stoppedWorkers, {
    startAfter: `${q.keys.stoppedWorkers}${timeKey(since)}`,
  });
  const windows = new Map<string, FinishedWindows>();
  const workers: WorkerInfo[] = [];
  await mapLimit(keys, 16, async (key) => {
    requests.GET++;
    let text: string;
    try {
      text = decoder.decode((await getBounded(q.storage, key)).body);
    } catch (error) {
      if (error instanceof NotFoundError) return;
      if (!(error instanceof MalformedObjectError)) throw error;
      q.warnOnce(key, error.message);
      return;
    }
    const worker = heartbeats.has(key) ? parseHeartbeat(text, now) : undefined;
    if (worker !== undefined) workers.push(worker);
    let snapshot: ReturnType<typeof parseSnapshot>;
    try {
      snapshot = parseSnapshot((JSON.parse(text) as { finished?: unknown }).finished);
    } catch {
      snapshot = undefined;
    }
    if (snapshot === undefined) return;
    addWindows(windows, snapshot, now, throughputMinutes);
  });
  return { windows, workers: workers.sort(byWorkerId) };
}
