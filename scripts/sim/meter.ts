/**
 * What the simulated S3 counts: requests per partition per second by class (what AWS limits),
 * SlowDown answers, requests by kind (what AWS bills), and the claim conflicts of task objects
 * (GETs that led to no won write, and 412 answers). Kept per virtual second so that any phase of
 * a run can be summarized afterwards ({@link Meter.summary}).
 *
 * @module
 */
import type { RequestKind } from "../../src/storage/storage.ts";

/** AWS's two per-prefix limits: writes (PUT/COPY/POST/DELETE) and reads (GET/HEAD, and LIST here). */
export type RequestClass = "read" | "write";

/** The class a request kind is limited by. LIST counts as a read (AWS: "GET/HEAD" rate). */
export function classOf(kind: RequestKind): RequestClass {
  return kind === "GET" || kind === "HEAD" || kind === "LIST" ? "read" : "write";
}

/** Every request kind, in report order. */
export const KINDS: readonly RequestKind[] = ["GET", "HEAD", "LIST", "PUT", "POST", "DELETE"];

interface PartitionSecond {
  /** Units admitted (a DeleteObjects counts one per key). */
  read: number;
  write: number;
  /** Units refused with SlowDown. */
  refusedRead: number;
  refusedWrite: number;
  /** Units by what they were ({@link Meter.detail}), admitted and refused alike. */
  detail: Map<string, number>;
  /** Clients that sent write units here this second. */
  writers: Set<string>;
  /** Distinct keys written here this second (a key deleted by three clients counts once). */
  keysWritten: Set<string>;
}

interface Second {
  kinds: Record<RequestKind, number>;
  slowDown: number;
  parts: Map<string, PartitionSecond>;
}

/** Claim-conflict counts of one period. */
export interface Conflicts {
  /** GETs of task objects. */
  taskGets: number;
  /** Of those, GETs whose ETag the same client then wrote over with a won `If-Match` PUT. */
  taskGetsThatWon: number;
  /** `taskGets - taskGetsThatWon`: reads that won nothing. */
  wastedTaskGets: number;
  /** 412 answers (any key). */
  preconditionFailed: number;
  /** 404 answers to an `If-Match` PUT (AWS's answer when the key was deleted meanwhile). */
  ifMatchNotFound: number;
}

/** One partition's load over a period, in units per second. */
export interface PartitionLoad {
  partition: string;
  peakRead: number;
  /** Second of the period (from its start) of the read peak. */
  peakReadAt: number;
  meanRead: number;
  peakWrite: number;
  /** Second of the period (from its start) of the write peak. */
  peakWriteAt: number;
  meanWrite: number;
  /** Units refused with SlowDown over the period. */
  slowDown: number;
}

/**
 * What one partition's units were in one second: the breakdown that says what a peak was made
 * of ({@link Meter.breakdown}).
 */
export interface PeakBreakdown {
  partition: string;
  /** Second of the period (from its start). */
  at: number;
  /** The class whose peak this is. */
  cls: RequestClass;
  /** Units admitted of that class in that second. */
  units: number;
  /** Units refused with SlowDown in that second (both classes). */
  refused: number;
  /**
   * Units by what they were, most first: request kind (`DeleteObjects key` for one key of a
   * batched delete), the key's class where the run names one (`marker`, `lease marker`), and
   * `already gone` for a delete of a key that no longer existed; `refused` when SlowDown'd.
   */
  byWhat: { what: string; units: number }[];
  /** Clients that sent write units. */
  writers: number;
  /** Distinct keys written. */
  distinctKeysWritten: number;
}

/** What a period of a run cost and how hard it pressed each partition. */
export interface MeterSummary {
  /** Seconds in the period. */
  seconds: number;
  /** Requests by kind, SlowDown answers included (they are requests too). */
  requests: Record<RequestKind, number>;
  /** All requests. */
  total: number;
  /** SlowDown answers. */
  slowDown: number;
  /** Per partition, busiest first (by peak share of its limit). */
  partitions: PartitionLoad[];
  conflicts: Conflicts;
}

/** Task reads remembered per client for crediting a won write (more than a worker's slots). */
const RECENT_READS = 16;

const zeroKinds = (): Record<RequestKind, number> => ({
  GET: 0,
  HEAD: 0,
  PUT: 0,
  POST: 0,
  LIST: 0,
  DELETE: 0,
});

/** The counters, bucketed by virtual second since `originMs`. */
export class Meter {
  readonly #originMs: number;
  readonly #seconds = new Map<number, Second>();
  readonly #conflicts = new Map<number, Conflicts>();
  /**
   * The last few task objects each client read, with the ETag read: a claim writes over what
   * its worker just read, so a short memory per client suffices (and stays small when most
   * reads win nothing).
   */
  readonly #lastReads = new Map<string, { key: string; etag: string }[]>();

  constructor(originMs: number) {
    this.#originMs = originMs;
  }

  /** The second of a run that `nowMs` falls in. */
  second(nowMs: number): number {
    return Math.floor((nowMs - this.#originMs) / 1000);
  }

  /** Units admitted so far in the second of `nowMs` on `partition`, for the rate limit. */
  admitted(nowMs: number, partition: string, cls: RequestClass): number {
    return this.#seconds.get(this.second(nowMs))?.parts.get(partition)?.[cls] ?? 0;
  }

  /** Count one request of `kind` answered at `nowMs`, with its units per partition. */
  request(
    nowMs: number,
    kind: RequestKind,
    units: ReadonlyMap<string, number>,
    slowDown: boolean,
  ): void {
    const s = this.#second(nowMs);
    s.kinds[kind]++;
    if (slowDown) s.slowDown++;
    const cls = classOf(kind);
    for (const [partition, n] of units) {
      let p = s.parts.get(partition);
      if (p === undefined) {
        p = newPartitionSecond();
        s.parts.set(partition, p);
      }
      if (!slowDown) p[cls] += n;
      else if (cls === "read") p.refusedRead += n;
      else p.refusedWrite += n;
    }
  }

  /**
   * What one unit of a request on `key` in `partition` was (`what`: its kind and key class),
   * written by `client` (for write units): the breakdown behind a peak.
   */
  detail(
    nowMs: number,
    partition: string,
    what: string,
    write: { client: string; key: string } | undefined,
  ): void {
    const s = this.#second(nowMs);
    let p = s.parts.get(partition);
    if (p === undefined) {
      p = newPartitionSecond();
      s.parts.set(partition, p);
    }
    p.detail.set(what, (p.detail.get(what) ?? 0) + 1);
    if (write !== undefined) {
      p.writers.add(write.client);
      p.keysWritten.add(write.key);
    }
  }

  /** What `partition`'s units were in second `second` (of the run) of class `cls`, period from `from`. */
  breakdown(partition: string, second: number, cls: RequestClass, from: number): PeakBreakdown {
    const p = this.#seconds.get(second)?.parts.get(partition) ?? newPartitionSecond();
    return {
      partition,
      at: second - from,
      cls,
      units: p[cls],
      refused: p.refusedRead + p.refusedWrite,
      byWhat: [...p.detail.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([what, units]) => ({ what, units })),
      writers: p.writers.size,
      distinctKeysWritten: p.keysWritten.size,
    };
  }

  /** A task object was read by `client` (its ETag, for crediting a later won write). */
  taskRead(nowMs: number, client: string, key: string, etag: string | undefined): void {
    this.#conflict(nowMs).taskGets++;
    if (etag === undefined) return;
    let reads = this.#lastReads.get(client);
    if (reads === undefined) {
      reads = [];
      this.#lastReads.set(client, reads);
    }
    reads.push({ key, etag });
    if (reads.length > RECENT_READS) reads.shift();
  }

  /** `client` won an `If-Match: etag` write of task object `key`. */
  taskWriteWon(nowMs: number, client: string, key: string, etag: string): void {
    const reads = this.#lastReads.get(client);
    const at = reads?.findIndex((r) => r.key === key && r.etag === etag) ?? -1;
    if (at === -1) return;
    reads!.splice(at, 1);
    this.#conflict(nowMs).taskGetsThatWon++;
  }

  /** A 412 answer. */
  preconditionFailed(nowMs: number): void {
    this.#conflict(nowMs).preconditionFailed++;
  }

  /** A 404 answer to an `If-Match` write. */
  ifMatchNotFound(nowMs: number): void {
    this.#conflict(nowMs).ifMatchNotFound++;
  }

  /**
   * The period from second `from` (inclusive) to `to` (exclusive). Peaks and means are per
   * second over the whole period (a second with no request counts as 0 in the mean).
   */
  summary(from: number, to: number): MeterSummary {
    const seconds = Math.max(1, to - from);
    const requests = zeroKinds();
    let slowDown = 0;
    const loads = new Map<string, PartitionLoad & { sumRead: number; sumWrite: number }>();
    const conflicts: Conflicts = {
      taskGets: 0,
      taskGetsThatWon: 0,
      wastedTaskGets: 0,
      preconditionFailed: 0,
      ifMatchNotFound: 0,
    };
    for (let t = from; t < to; t++) {
      const s = this.#seconds.get(t);
      const c = this.#conflicts.get(t);
      if (c !== undefined) {
        conflicts.taskGets += c.taskGets;
        conflicts.taskGetsThatWon += c.taskGetsThatWon;
        conflicts.preconditionFailed += c.preconditionFailed;
        conflicts.ifMatchNotFound += c.ifMatchNotFound;
      }
      if (s === undefined) continue;
      for (const k of KINDS) requests[k] += s.kinds[k];
      slowDown += s.slowDown;
      for (const [partition, p] of s.parts) {
        let l = loads.get(partition);
        if (l === undefined) {
          l = {
            partition,
            peakRead: 0,
            peakReadAt: 0,
            meanRead: 0,
            peakWrite: 0,
            peakWriteAt: 0,
            meanWrite: 0,
            slowDown: 0,
            sumRead: 0,
            sumWrite: 0,
          };
          loads.set(partition, l);
        }
        if (p.read > l.peakRead) {
          l.peakRead = p.read;
          l.peakReadAt = t - from;
        }
        if (p.write > l.peakWrite) {
          l.peakWrite = p.write;
          l.peakWriteAt = t - from;
        }
        l.sumRead += p.read;
        l.sumWrite += p.write;
        l.slowDown += p.refusedRead + p.refusedWrite;
      }
    }
    conflicts.wastedTaskGets = conflicts.taskGets - conflicts.taskGetsThatWon;
    const partitions = [...loads.values()].map(({ sumRead, sumWrite, ...l }) => ({
      ...l,
      meanRead: round(sumRead / seconds),
      meanWrite: round(sumWrite / seconds),
    }));
    return {
      seconds,
      requests,
      total: KINDS.reduce((a, k) => a + requests[k], 0),
      slowDown,
      partitions,
      conflicts,
    };
  }

  #second(nowMs: number): Second {
    const t = this.second(nowMs);
    let s = this.#seconds.get(t);
    if (s === undefined) {
      s = { kinds: zeroKinds(), slowDown: 0, parts: new Map() };
      this.#seconds.set(t, s);
    }
    return s;
  }

  #conflict(nowMs: number): Conflicts {
    const t = this.second(nowMs);
    let c = this.#conflicts.get(t);
    if (c === undefined) {
      c = {
        taskGets: 0,
        taskGetsThatWon: 0,
        wastedTaskGets: 0,
        preconditionFailed: 0,
        ifMatchNotFound: 0,
      };
      this.#conflicts.set(t, c);
    }
    return c;
  }
}

function newPartitionSecond(): PartitionSecond {
  return {
    read: 0,
    write: 0,
    refusedRead: 0,
    refusedWrite: 0,
    detail: new Map(),
    writers: new Set(),
    keysWritten: new Set(),
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
