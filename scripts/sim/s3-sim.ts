/**
 * A simulated AWS S3 bucket for the scale model (docs/scale.md): the in-memory storage behind
 * AWS-like latencies and AWS's per-prefix request limits, seen by each simulated process through
 * its own view, which can be killed.
 *
 * - **Latency**: each request kind has a lognormal latency fitted to a p50 and p99
 *   ({@link DEFAULT_LATENCY}). The request reaches the server after half of it (where it is
 *   applied, limited and counted) and the answer arrives after the other half.
 * - **Limits**: per partition and per second of (virtual) time, 3,500 write units
 *   (PUT/COPY/POST/DELETE; a DeleteObjects counts one per key unless `deleteUnits: "request"`)
 *   and 5,500 read units (GET/HEAD,
 *   and LIST: a listing is served by the partition it reads). A request beyond either is refused
 *   with 503 SlowDown, raised as the S3 driver raises it (`ThrottledError`, status 503, S3 code
 *   `SlowDown`) after the driver's own retries: the view retries SlowDown with the driver's
 *   default policy (`resolveS3Options`) through oq's one retry rule (`src/retry.ts`), each try a
 *   request of its own. So oq above sees exactly what it would see from the S3 driver.
 * - **Partitions**: a key belongs to the longest prefix some LIST has named (deeper than the
 *   queue prefix) that it starts with, else to its first two `/` segments under the queue prefix
 *   ({@link SimS3.partitionOf}). S3 splits a bucket into key ranges and splits hot ones, but a
 *   range that is listed in order must be served from one place; the index a fleet lists is
 *   exactly such a range, whatever the layout names it.
 * - **Views**: {@link SimS3.view} gives each simulated process its own `Storage` over the one
 *   bucket and counters, with its own server-time samples. {@link SimView.kill} makes the process
 *   die: its requests (in flight or new) never answer, as if the machine lost power.
 *
 * Test-only code: it lives in `scripts/`, not `src/`, so it never ships.
 *
 * @module
 */
import {
  NotFoundError,
  type OqError,
  PreconditionFailedError,
  ThrottledError,
} from "../../src/errors.ts";
import { type RetryPolicy, retry } from "../../src/retry.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { resolveS3Options } from "../../src/storage/s3/options.ts";
import type {
  GetOptions,
  GetResult,
  HeadResult,
  ListOptions,
  ListResult,
  ListVersionsOptions,
  ListVersionsResult,
  PutOptions,
  PutResult,
  RequestKind,
  ServerTimeSample,
  Storage,
  StorageLocation,
  VersioningStatus,
} from "../../src/storage/storage.ts";
import { classOf, Meter, type RequestClass } from "./meter.ts";
import { lognormal, type Percentiles } from "./random.ts";

/**
 * Latency by request kind, ms: AWS S3 Standard in-region as commonly measured (small objects:
 * first-byte latency; PUT p50 20 ms / p99 150 ms as issue 10 states).
 */
export const DEFAULT_LATENCY: Readonly<Record<RequestKind, Percentiles>> = {
  GET: { p50: 15, p99: 100 },
  HEAD: { p50: 12, p99: 80 },
  PUT: { p50: 20, p99: 150 },
  POST: { p50: 30, p99: 200 },
  DELETE: { p50: 15, p99: 100 },
  LIST: { p50: 30, p99: 200 },
};

/** AWS's per-prefix request rates (per second): the published S3 limits. */
export const AWS_LIMITS: Readonly<Record<RequestClass, number>> = { write: 3500, read: 5500 };

/** Options of {@link SimS3}. */
export interface SimS3Options {
  /** The queue's prefix ("" or ending in `/`): partitions are named below it. */
  queuePrefix: string;
  /** The (virtual) clock, epoch ms. */
  now: () => number;
  /** Seeded randomness for latencies and retry jitter. */
  random: () => number;
  /** Waits (virtual time in the model). Defaults to `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
  /** Latency per kind; missing kinds take {@link DEFAULT_LATENCY}; `0` p50 means none. */
  latency?: Partial<Record<RequestKind, Percentiles>>;
  /** Request limits per partition per second. Defaults to {@link AWS_LIMITS}. */
  limits?: Partial<Record<RequestClass, number>>;
  /** Which keys are task objects (for claim-conflict counting). Default: none. */
  isTaskKey?: (key: string) => boolean;
  /**
   * How a DeleteObjects counts against the write limit: one unit per key (`"key"`, the default:
   * the dearer reading) or one per request in each partition it touches (`"request"`).
   */
  deleteUnits?: "key" | "request";
  /**
   * A name for the class of a key (`marker`, `lease marker`), for the breakdown of a peak
   * ({@link Meter.breakdown}); `undefined` for none.
   */
  keyClass?: (key: string) => string | undefined;
  /** Bucket versioning of the store behind. Default `"Enabled"`. */
  versioning?: VersioningStatus;
}

/** One simulated process's view of the bucket. */
export interface SimView extends Storage {
  /** Who makes the requests (a worker id). */
  readonly client: string;
  /** True once {@link SimView.kill} was called. */
  readonly killed: boolean;
  /** The process dies: no request of this view answers from now on, in flight or new. */
  kill(): void;
  /** S3 DeleteObjects: always there, as on AWS. */
  deleteMany(keys: readonly string[]): Promise<void>;
}

/** Where requests of the model go, as doctor's verdict sees it: AWS, not a local store. */
const LOCATION: StorageLocation = {
  driver: "sim-s3",
  endpoint: "https://s3.us-east-1.amazonaws.com/sim",
  bucket: "sim",
  region: "us-east-1",
};

/** The bucket, its limits and counters. */
export class SimS3 {
  /** The objects. */
  readonly store: MemoryStorage;
  /** The counters. */
  readonly meter: Meter;
  /** Prefixes LISTs have named (deeper than the queue prefix): the partitions S3 must keep whole. */
  readonly listed = new Set<string>();
  readonly #o: SimS3Options;
  readonly #limits: Record<RequestClass, number>;
  readonly #latency: Record<RequestKind, () => number>;
  readonly #retry: Required<RetryPolicy>;

  constructor(options: SimS3Options) {
    this.#o = options;
    this.store = new MemoryStorage({
      now: options.now,
      versioning: options.versioning ?? "Enabled",
      name: "sim-s3://sim",
    });
    this.meter = new Meter(options.now());
    this.#limits = { ...AWS_LIMITS, ...options.limits };
    const latency = { ...DEFAULT_LATENCY, ...options.latency };
    const sample = (p: Percentiles) => (p.p50 <= 0 ? () => 0 : lognormal(p, options.random));
    this.#latency = {
      GET: sample(latency.GET),
      HEAD: sample(latency.HEAD),
      PUT: sample(latency.PUT),
      POST: sample(latency.POST),
      DELETE: sample(latency.DELETE),
      LIST: sample(latency.LIST),
    };
    // The S3 driver's own retry policy for SlowDown, defaults and all (credentials are dummies:
    // nothing is signed here).
    const driver = resolveS3Options({ bucket: "sim", accessKeyId: "sim", secretAccessKey: "sim" });
    this.#retry = {
      ...driver.retry,
      random: options.random,
      sleep: options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
    };
  }

  /** A fresh view for one simulated process named `client`. */
  view(client: string): SimView {
    return new View(this, client);
  }

  /**
   * A view without latency, limits or counting, for setting up a run and checking its outcome:
   * what an operator does outside the measured fleet.
   */
  backstage(): Storage {
    const store = this.store;
    return {
      name: store.name,
      location: LOCATION,
      get: (k, o) => store.get(k, o),
      head: (k) => store.head(k),
      put: (k, b, o) => store.put(k, b, o),
      delete: (k) => store.delete(k),
      deleteVersion: (k, v) => store.deleteVersion(k, v),
      deleteMany: async (keys) => {
        for (const k of keys) await store.delete(k);
      },
      // An operator's listing is no part of the fleet's load: it names no partition.
      list: (o) => store.list(o),
      listVersions: (o) => store.listVersions(o),
      versioning: () => store.versioning(),
      serverTime: () => store.serverTime(),
    };
  }

  /**
   * The partition of `key`: the longest prefix a LIST has named that `key` starts with, else
   * the queue prefix plus the key's first two directory segments below it (`tasks/3/`,
   * `workers/`), or the queue prefix itself for a key directly under it.
   */
  partitionOf(key: string): string {
    let best: string | undefined;
    for (const p of this.listed) {
      if (key.startsWith(p) && (best === undefined || p.length > best.length)) best = p;
    }
    if (best !== undefined) return best;
    const qp = this.#o.queuePrefix;
    if (!key.startsWith(qp)) {
      const slash = key.indexOf("/");
      return slash === -1 ? "" : key.slice(0, slash + 1);
    }
    const dirs = key.slice(qp.length).split("/").slice(0, -1).slice(0, 2);
    return dirs.length === 0 ? qp : `${qp}${dirs.join("/")}/`;
  }

  /** The retry policy the S3 driver would use (virtual sleeps, seeded jitter). */
  get retryPolicy(): Required<RetryPolicy> {
    return this.#retry;
  }

  /** One latency draw for `kind`, ms. */
  latency(kind: RequestKind): number {
    return this.#latency[kind]();
  }

  /** The limit of `cls` per partition per second. */
  limit(cls: RequestClass): number {
    return this.#limits[cls];
  }

  /** The options given. */
  get options(): SimS3Options {
    return this.#o;
  }

  /**
   * Admit (or refuse with SlowDown) one request of `kind` at `nowMs` touching `units` units of
   * each partition, and count it either way. True when admitted.
   */
  admit(nowMs: number, kind: RequestKind, units: ReadonlyMap<string, number>): boolean {
    const cls = classOf(kind);
    let ok = true;
    for (const [partition, n] of units) {
      if (this.meter.admitted(nowMs, partition, cls) + n > this.#limits[cls]) ok = false;
    }
    this.meter.request(nowMs, kind, units, !ok);
    return ok;
  }

  /** Remember a LIST's prefix as a partition (see {@link SimS3.partitionOf}). */
  noteList(prefix: string | undefined): void {
    const qp = this.#o.queuePrefix;
    if (prefix !== undefined && prefix.length > qp.length && prefix.startsWith(qp)) {
      this.listed.add(prefix);
    }
  }
}

/** Never settles: the answer of a request to or from a dead process. */
const hang = <T>(): Promise<T> => new Promise<T>(() => {});

class View implements SimView {
  readonly name = "sim-s3://sim";
  readonly location = LOCATION;
  readonly client: string;
  readonly #sim: SimS3;
  #killed = false;
  #sample: ServerTimeSample | undefined;

  constructor(sim: SimS3, client: string) {
    this.#sim = sim;
    this.client = client;
  }

  get killed(): boolean {
    return this.#killed;
  }

  kill(): void {
    this.#killed = true;
  }

  serverTime(): ServerTimeSample | undefined {
    return this.#sample === undefined ? undefined : { ...this.#sample };
  }

  get(key: string, options?: GetOptions): Promise<GetResult> {
    return this.#send("GET", [key], key, async () => {
      const sim = this.#sim;
      const isTask = sim.options.isTaskKey?.(key) ?? false;
      try {
        const result = await sim.store.get(key, options);
        if (isTask) sim.meter.taskRead(sim.options.now(), this.client, key, result.etag);
        return result;
      } catch (error) {
        if (isTask) sim.meter.taskRead(sim.options.now(), this.client, key, undefined);
        throw error;
      }
    });
  }

  head(key: string): Promise<HeadResult> {
    return this.#send("HEAD", [key], key, () => this.#sim.store.head(key));
  }

  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult> {
    return this.#send("PUT", [key], key, async () => {
      const sim = this.#sim;
      const now = sim.options.now();
      try {
        const result = await sim.store.put(key, body, options);
        if (options?.ifMatch !== undefined && (sim.options.isTaskKey?.(key) ?? false)) {
          sim.meter.taskWriteWon(now, this.client, key, options.ifMatch);
        }
        return result;
      } catch (error) {
        if (error instanceof PreconditionFailedError) sim.meter.preconditionFailed(now);
        else if (error instanceof NotFoundError && options?.ifMatch !== undefined) {
          sim.meter.ifMatchNotFound(now);
        }
        throw error;
      }
    });
  }

  delete(key: string): Promise<void> {
    return this.#send("DELETE", [key], key, () => this.#sim.store.delete(key));
  }

  deleteVersion(key: string, versionId: string): Promise<void> {
    return this.#send("DELETE", [key], key, () => this.#sim.store.deleteVersion(key, versionId));
  }

  /** S3 DeleteObjects: one POST, one write unit per key in each key's partition (see `deleteUnits`). */
  deleteMany(keys: readonly string[]): Promise<void> {
    return this.#send("POST", keys, undefined, async () => {
      for (const key of keys) await this.#sim.store.delete(key);
    });
  }

  list(options?: ListOptions): Promise<ListResult> {
    const prefix = options?.prefix ?? "";
    this.#sim.noteList(options?.prefix);
    return this.#send("LIST", [prefix], undefined, () => this.#sim.store.list(options));
  }

  listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    this.#sim.noteList(options.prefix);
    return this.#send("LIST", [options.prefix], undefined, () =>
      this.#sim.store.listVersions(options),
    );
  }

  versioning(): Promise<VersioningStatus> {
    // GET ?versioning is a bucket request: counted against the queue prefix's partition.
    return this.#send("GET", [this.#sim.options.queuePrefix], undefined, () =>
      this.#sim.store.versioning(),
    );
  }

  /** One request with the S3 driver's SlowDown retries, each try a request of its own. */
  #send<T>(
    kind: RequestKind,
    keys: readonly string[],
    key: string | undefined,
    apply: () => Promise<T>,
  ): Promise<T> {
    if (this.#killed) return hang();
    const policy = this.#sim.retryPolicy;
    return retry(() => this.#try(kind, keys, key, apply), {
      ...policy,
      retryable: (error) => error instanceof ThrottledError,
    });
  }

  async #try<T>(
    kind: RequestKind,
    keys: readonly string[],
    key: string | undefined,
    apply: () => Promise<T>,
  ): Promise<T> {
    const sim = this.#sim;
    const { now } = sim.options;
    const sleep = sim.retryPolicy.sleep;
    const sentMs = now();
    const latency = sim.latency(kind);
    if (latency > 0) await sleep(latency / 2);
    if (this.#killed) return hang();
    const perRequest = kind === "POST" && sim.options.deleteUnits === "request";
    const units = new Map<string, number>();
    for (const k of keys) {
      const p = sim.partitionOf(k);
      units.set(p, perRequest ? 1 : (units.get(p) ?? 0) + 1);
    }
    const servedMs = now();
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    const admitted = sim.admit(servedMs, kind, units);
    await this.#detail(servedMs, kind, keys, admitted);
    if (admitted) {
      try {
        outcome = { ok: true, value: await apply() };
      } catch (error) {
        outcome = { ok: false, error };
      }
    } else {
      outcome = { ok: false, error: slowDown(kind, key, sim.retryPolicy.attempts) };
    }
    if (latency > 0) await sleep(latency / 2);
    if (this.#killed) return hang();
    // An HTTP Date header: the server's time truncated to the second.
    this.#sample = {
      serverMs: Math.floor(servedMs / 1000) * 1000,
      resolutionMs: 1000,
      sentMs,
      localMs: now(),
    };
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** What each key of a request was, for the breakdown of a peak (before it is applied). */
  async #detail(
    servedMs: number,
    kind: RequestKind,
    keys: readonly string[],
    admitted: boolean,
  ): Promise<void> {
    const sim = this.#sim;
    const write = classOf(kind) === "write";
    for (const k of keys) {
      const keyClass = sim.options.keyClass?.(k);
      let what = kind === "POST" ? "DeleteObjects key" : kind;
      if (keyClass !== undefined) what += ` ${keyClass}`;
      if (!admitted) what += " (refused)";
      else if (kind === "POST" || kind === "DELETE") {
        try {
          await sim.store.head(k);
        } catch {
          what += " (already gone)";
        }
      }
      sim.meter.detail(
        servedMs,
        sim.partitionOf(k),
        what,
        write ? { client: this.client, key: k } : undefined,
      );
    }
  }
}

/** The error the S3 driver raises for 503 SlowDown (`src/storage/s3/errors.ts`). */
function slowDown(kind: RequestKind, key: string | undefined, attempts: number): OqError {
  return new ThrottledError(
    `${kind} ${key ?? "sim-s3://sim"}: the server asked us to slow down (503 SlowDown: Please reduce your request rate.) after ${attempts} tries`,
    { status: 503, s3Code: "SlowDown", ...(key === undefined ? {} : { key }) },
  );
}
