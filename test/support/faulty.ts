/**
 * A fault-injecting storage wrapper, for chaos tests and drills: it makes any {@link Storage}
 * fail the way an S3 backend fails in production, at configurable rates, and counts what it did.
 *
 * **What it models.** The real S3 driver (`./s3/driver.ts`) retries by itself what is safe to repeat:
 * reads, unconditional writes and 429/503 throttling, up to 4 tries. This wrapper sits *above*
 * the driver, so it models what the queue actually sees once those retries are spent: a
 * `serverError` rate of 5% here stands for a backend much worse than one that fails 5% of single
 * HTTP tries (with 4 tries that would reach the queue as 0.05^4). Every fault is raised as the
 * typed error the driver would raise in that situation:
 *
 * | kind | calls it can hit | what the caller gets |
 * |---|---|---|
 * | `server-error` | all | 500 `StorageError`; `AmbiguousWriteError` for a conditional PUT (the driver cannot tell) |
 * | `slow-down` | all | 503 SlowDown `ThrottledError` (the driver's retries ran out) |
 * | `conflict` | conditional PUTs | 409 ConditionalRequestConflict `ConflictError`: nothing was written |
 * | `dropped` | all | the connection failed before the request reached storage: `UnavailableError` |
 * | `timeout` | all | no answer within `timeoutMs`; nothing reached storage, but a conditional PUT gets `AmbiguousWriteError` (a timed-out request may have been sent), anything else `UnavailableError` |
 * | `dropped-after-commit` | writes | the write committed, then the connection dropped: `AmbiguousWriteError` for a conditional PUT, else `UnavailableError` |
 * | `timeout-after-commit` | writes | the write committed, the answer never came (after `timeoutMs`): as above |
 * | `server-error-after-commit` | writes | the write committed and still answered 500: `AmbiguousWriteError` for a conditional PUT, else 500 `StorageError` |
 * | `late-commit` | writes | the connection failed while the request was still on its way: the caller gets `AmbiguousWriteError` for a conditional PUT (else `UnavailableError`) at once, and the write reaches storage later — right after the next call on the same key has been answered (the worst moment: after the read-back meant to settle it), or after `lateCommitMs` when no such call comes. A conditional write is still checked when it lands. |
 * | `precondition-failed-after-commit` | conditional PUTs | the write committed, but a layer below (a proxy or SDK) lost the answer and re-sent it, and the re-sent PUT got 412: `PreconditionFailedError` for a write that did happen |
 * | `latency-spike` | all | the call takes `spikeMs` longer (counted, independent of the error faults) |
 *
 * Writes are `put`, `delete`, `deleteMany`, `deleteVersion` and `deleteVersions` (the queue
 * removes a marker by the version its writer got). `serverTime` passes through untouched: a
 * server's clock is not a request.
 *
 * **Rates.** `faultRate` is the probability that a call fails at all; the failure's kind is then
 * drawn among the kinds that can happen to that call, in proportion to `mix` (all kinds weigh 1
 * by default). So with `faultRate: 0.1` every kind of call fails 10% of the time, and the rate of
 * one kind on one call is `faultRate · mix[kind] / Σ mix of the kinds that can hit the call`.
 * Give a kind weight 0 to switch it off.
 *
 * **Latency.** Every call takes `latency.baseMs` (uniform in the given range), and with
 * probability `latency.spikeRate` a spike drawn from `latency.spikeMs` instead: `spikeRate: 0.02,
 * spikeMs: [1000, 3000]` puts the 99th percentile at about 2 s. Half of the delay is spent before
 * the request reaches the inner storage and half after it answered, so a slow answer can arrive
 * after a lease it granted has already run down, as on a real network.
 *
 * **Clock.** `clockSkewMs` pretends that the local clock of the process using this storage is
 * off: `serverTime()` pairs each server time with a local time shifted by the skew, and
 * {@link FaultyStorage.localNow} reads the shifted clock. Give that to the queue as its `now`.
 *
 * Portable (web-standard globals only). Randomness and sleeping are injectable, so a test can
 * make every decision deterministic.
 *
 * @module
 */
import {
  AmbiguousWriteError,
  ConflictError,
  type OqErrorDetails,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
} from "../../src/errors.ts";
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
  ServerTimeSample,
  Storage,
  StorageLocation,
  VersioningStatus,
  VersionTarget,
} from "../../src/storage/storage.ts";

/** A fault that makes a call fail (see the table in the module doc). */
export type ErrorFaultKind =
  | "server-error"
  | "slow-down"
  | "conflict"
  | "dropped"
  | "timeout"
  | "dropped-after-commit"
  | "timeout-after-commit"
  | "server-error-after-commit"
  | "late-commit"
  | "precondition-failed-after-commit";

/** Every fault the wrapper counts: the error faults and latency spikes. */
export type FaultKind = ErrorFaultKind | "latency-spike";

/** Every {@link ErrorFaultKind}, in the order the draw walks them. */
export const ERROR_FAULT_KINDS: readonly ErrorFaultKind[] = [
  "server-error",
  "slow-down",
  "conflict",
  "dropped",
  "timeout",
  "dropped-after-commit",
  "timeout-after-commit",
  "server-error-after-commit",
  "late-commit",
  "precondition-failed-after-commit",
];

/** Every {@link FaultKind}. */
export const FAULT_KINDS: readonly FaultKind[] = [...ERROR_FAULT_KINDS, "latency-spike"];

/** The storage operations the wrapper sees. */
export type FaultOp =
  | "get"
  | "head"
  | "put"
  | "delete"
  | "deleteMany"
  | "deleteVersion"
  | "deleteVersions"
  | "list"
  | "listVersions"
  | "versioning";

/** One call, as {@link FaultyStorageOptions.filter} sees it. */
export interface FaultCall {
  /** The operation. */
  op: FaultOp;
  /** The key (the first key for `deleteMany`, the prefix for listings), when there is one. */
  key?: string;
  /** True for a PUT with `ifMatch` or `ifNoneMatch`. */
  conditional: boolean;
}

/** A range `[min, max]` in milliseconds, or one fixed value. */
export type MsRange = number | readonly [number, number];

/** Latency of every call. */
export interface LatencyOptions {
  /** Ordinary latency of a call. Default 0. */
  baseMs?: MsRange;
  /** Probability that a call takes `spikeMs` instead. Default 0. */
  spikeRate?: number;
  /** Latency of a spike. Default 2000. */
  spikeMs?: MsRange;
}

/** Options of {@link FaultyStorage}. */
export interface FaultyStorageOptions {
  /** Probability, per call, of one error fault. Default 0. */
  faultRate?: number;
  /** Relative weight of each error kind (default 1 each); 0 switches a kind off. */
  mix?: Partial<Record<ErrorFaultKind, number>>;
  /** Latency of calls, with spikes. */
  latency?: LatencyOptions;
  /** How long a `timeout` fault waits before it fails, ms. Default 1000. */
  timeoutMs?: number;
  /** How long a `late-commit` write waits for a call on its key before it lands anyway, ms. Default 2000. */
  lateCommitMs?: number;
  /** Only calls for which this returns true can fail or be slowed. Default: all. */
  filter?: (call: FaultCall) => boolean;
  /** How far the local clock of the process using this storage is off, ms. Default 0. */
  clockSkewMs?: number;
  /** Random numbers in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Waits `ms` milliseconds. Default `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
  /** Local clock in epoch ms, before the skew. Default `Date.now`. */
  now?: () => number;
}

/** Injected faults by kind. */
export type FaultCounts = Record<FaultKind, number>;

/** A zeroed {@link FaultCounts}. */
export function noFaults(): FaultCounts {
  return Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as FaultCounts;
}

/** Add fault counts (e.g. from several worker processes) into `into`. Returns `into`. */
export function addFaults(into: FaultCounts, more: Partial<FaultCounts>): FaultCounts {
  for (const k of FAULT_KINDS) into[k] += more[k] ?? 0;
  return into;
}

const READ_KINDS: readonly ErrorFaultKind[] = ["server-error", "slow-down", "dropped", "timeout"];
const WRITE_KINDS: readonly ErrorFaultKind[] = [
  ...READ_KINDS,
  "dropped-after-commit",
  "timeout-after-commit",
  "server-error-after-commit",
  "late-commit",
];
const CONDITIONAL_KINDS: readonly ErrorFaultKind[] = [
  ...WRITE_KINDS,
  "conflict",
  "precondition-failed-after-commit",
];

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A {@link Storage} that injects faults into the calls it forwards to `inner`. Switch it off and
 * on with {@link FaultyStorage.enabled} (setup and verification usually run without faults).
 */
export class FaultyStorage implements Storage {
  /** The wrapped storage. */
  readonly inner: Storage;
  /** Faults are injected only while this is true. */
  enabled = true;
  /** Injected faults so far, by kind. */
  readonly faults: FaultCounts = noFaults();
  /** Calls that could have been hit so far (enabled and passing the filter), faulty or not. */
  calls = 0;
  readonly #faultRate: number;
  readonly #mix: Record<ErrorFaultKind, number>;
  readonly #latency: Required<LatencyOptions>;
  readonly #timeoutMs: number;
  readonly #lateCommitMs: number;
  /** Writes of `late-commit` faults still on their way, by key: each lands once. */
  readonly #inFlight = new Map<string, (() => Promise<void>)[]>();
  readonly #filter: (call: FaultCall) => boolean;
  readonly #skew: number;
  readonly #random: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #now: () => number;

  /**
   * Batched delete, present only when the inner storage has it (callers fall back to `delete`
   * otherwise, and a wrapper must not change which requests they make).
   */
  readonly deleteMany?: (keys: readonly string[]) => Promise<void>;

  /** Erase one version; present when the inner storage has it. */
  readonly deleteVersion?: (key: string, versionId: string) => Promise<void>;

  /** Erase versions in a batch; present when the inner storage has it. */
  readonly deleteVersions?: (targets: readonly VersionTarget[]) => Promise<void>;

  constructor(inner: Storage, options: FaultyStorageOptions = {}) {
    this.inner = inner;
    if (inner.deleteVersion !== undefined) {
      const one = inner.deleteVersion.bind(inner);
      this.deleteVersion = (key, versionId) =>
        this.#call({ op: "deleteVersion", key, conditional: false }, () => one(key, versionId));
    }
    if (inner.deleteVersions !== undefined) {
      const many = inner.deleteVersions.bind(inner);
      this.deleteVersions = (targets) => {
        const call: FaultCall = { op: "deleteVersions", conditional: false };
        if (targets[0] !== undefined) call.key = targets[0].key;
        return this.#call(call, () => many(targets));
      };
    }
    if (inner.deleteMany !== undefined) {
      const many = inner.deleteMany.bind(inner);
      this.deleteMany = (keys) => {
        const call: FaultCall = { op: "deleteMany", conditional: false };
        if (keys[0] !== undefined) call.key = keys[0];
        return this.#call(call, () => many(keys));
      };
    }
    this.#faultRate = options.faultRate ?? 0;
    if (!(this.#faultRate >= 0 && this.#faultRate <= 1)) {
      throw new RangeError(`faultRate must be in [0, 1], got ${this.#faultRate}`);
    }
    this.#mix = Object.fromEntries(
      ERROR_FAULT_KINDS.map((k) => [k, options.mix?.[k] ?? 1]),
    ) as Record<ErrorFaultKind, number>;
    this.#latency = {
      baseMs: options.latency?.baseMs ?? 0,
      spikeRate: options.latency?.spikeRate ?? 0,
      spikeMs: options.latency?.spikeMs ?? 2000,
    };
    this.#timeoutMs = options.timeoutMs ?? 1000;
    this.#lateCommitMs = options.lateCommitMs ?? 2000;
    this.#filter = options.filter ?? (() => true);
    this.#skew = options.clockSkewMs ?? 0;
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#now = options.now ?? Date.now;
  }

  /** The inner storage's name, marked as faulty. */
  get name(): string {
    return `faulty(${this.inner.name})`;
  }

  /**
   * The inner storage's location: the faults are transient (errors, latency), not a different
   * semantics, so what doctor proved about the inner storage holds through this wrapper.
   */
  get location(): StorageLocation | undefined {
    return this.inner.location;
  }

  /** The (skewed) local clock of the process this storage pretends to serve: the queue's `now`. */
  readonly localNow = (): number => this.#now() + this.#skew;

  /** Total injected faults, spikes included. */
  injected(): number {
    return Object.values(this.faults).reduce((a, b) => a + b, 0);
  }

  /** Set the counters back to zero. */
  reset(): void {
    for (const k of FAULT_KINDS) this.faults[k] = 0;
    this.calls = 0;
  }

  get(key: string, options?: GetOptions): Promise<GetResult> {
    return this.#call({ op: "get", key, conditional: false }, () => this.inner.get(key, options));
  }

  head(key: string): Promise<HeadResult> {
    return this.#call({ op: "head", key, conditional: false }, () => this.inner.head(key));
  }

  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult> {
    const conditional = options?.ifMatch !== undefined || options?.ifNoneMatch !== undefined;
    return this.#call({ op: "put", key, conditional }, () => this.inner.put(key, body, options));
  }

  delete(key: string): Promise<void> {
    return this.#call({ op: "delete", key, conditional: false }, () => this.inner.delete(key));
  }

  list(options?: ListOptions): Promise<ListResult> {
    const call: FaultCall = { op: "list", conditional: false };
    if (options?.prefix !== undefined) call.key = options.prefix;
    return this.#call(call, () => this.inner.list(options));
  }

  listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    return this.#call({ op: "listVersions", key: options.prefix, conditional: false }, () =>
      this.inner.listVersions(options),
    );
  }

  versioning(): Promise<VersioningStatus> {
    return this.#call({ op: "versioning", conditional: false }, () => this.inner.versioning());
  }

  serverTime(): ServerTimeSample | undefined {
    const seen = this.inner.serverTime();
    if (seen === undefined || this.#skew === 0) return seen;
    return { ...seen, sentMs: seen.sentMs + this.#skew, localMs: seen.localMs + this.#skew };
  }

  /** The faults that can hit a call, given its shape. */
  #kinds(call: FaultCall): readonly ErrorFaultKind[] {
    if (call.op === "put" && call.conditional) return CONDITIONAL_KINDS;
    if (
      call.op === "put" ||
      call.op === "delete" ||
      call.op === "deleteMany" ||
      call.op === "deleteVersion" ||
      call.op === "deleteVersions"
    )
      return WRITE_KINDS;
    return READ_KINDS;
  }

  /** Draw this call's fault (or none). */
  #draw(call: FaultCall): ErrorFaultKind | undefined {
    if (this.#faultRate === 0 || this.#random() >= this.#faultRate) return undefined;
    const kinds = this.#kinds(call).filter((k) => this.#mix[k] > 0);
    const total = kinds.reduce((sum, k) => sum + this.#mix[k], 0);
    if (total === 0) return undefined;
    let r = this.#random() * total;
    for (const k of kinds) {
      r -= this.#mix[k];
      if (r < 0) return k;
    }
    return kinds.at(-1);
  }

  #pick(range: MsRange): number {
    if (typeof range === "number") return range;
    return range[0] + this.#random() * (range[1] - range[0]);
  }

  async #call<T>(call: FaultCall, run: () => Promise<T>): Promise<T> {
    // Late writes already on their way to this key land right after this call was answered.
    const landing = call.key === undefined ? undefined : this.#inFlight.get(call.key);
    if (landing !== undefined) this.#inFlight.delete(call.key!);
    try {
      return await this.#faulty(call, run);
    } finally {
      for (const commit of landing ?? []) await commit();
    }
  }

  /** Hold a write back until the next call on its key (or `lateCommitMs`), then let it land. */
  #delay(key: string | undefined, run: () => Promise<unknown>): void {
    let landed = false;
    const commit = async () => {
      if (landed) return;
      landed = true;
      // The request lands as sent: a conditional write is still checked, and may fail then.
      await run().catch(() => {});
    };
    if (key !== undefined) this.#inFlight.set(key, [...(this.#inFlight.get(key) ?? []), commit]);
    void this.#sleep(this.#lateCommitMs).then(commit);
  }

  async #faulty<T>(call: FaultCall, run: () => Promise<T>): Promise<T> {
    if (!this.enabled || !this.#filter(call)) return run();
    this.calls++;
    let delay = this.#pick(this.#latency.baseMs);
    if (this.#latency.spikeRate > 0 && this.#random() < this.#latency.spikeRate) {
      this.faults["latency-spike"]++;
      delay = this.#pick(this.#latency.spikeMs);
    }
    const kind = this.#draw(call);
    if (kind !== undefined) this.faults[kind]++;
    if (delay > 0) await this.#sleep(delay / 2);
    switch (kind) {
      case undefined:
        break;
      case "server-error":
      case "slow-down":
      case "conflict":
      case "dropped":
        throw this.#error(call, kind);
      case "timeout":
        await this.#sleep(this.#timeoutMs);
        throw this.#error(call, kind);
      case "late-commit":
        this.#delay(call.key, run);
        throw this.#error(call, kind);
      default: {
        // The after-commit kinds: the write happens, only its answer is lost.
        await run();
        if (kind === "timeout-after-commit") await this.#sleep(this.#timeoutMs);
        throw this.#error(call, kind);
      }
    }
    const result = await run();
    if (delay > 0) await this.#sleep(delay / 2);
    return result;
  }

  /** The error the S3 driver would raise for this fault on this call. */
  #error(call: FaultCall, kind: ErrorFaultKind): Error {
    const where = `${call.op.toUpperCase()} ${call.key ?? this.inner.name}`;
    const details = (status?: number, s3Code?: string): OqErrorDetails => {
      const d: OqErrorDetails = {};
      if (status !== undefined) d.status = status;
      if (s3Code !== undefined) d.s3Code = s3Code;
      if (call.key !== undefined) d.key = call.key;
      return d;
    };
    const unknownOutcome = (why: string, status?: number, s3Code?: string) =>
      call.conditional
        ? new AmbiguousWriteError(
            `${where}: ${why} after the conditional write was sent; it may or may not have happened (injected ${kind})`,
            details(status, s3Code),
          )
        : undefined;
    switch (kind) {
      case "server-error":
      case "server-error-after-commit":
        return (
          unknownOutcome("500 InternalError", 500, "InternalError") ??
          new StorageError(
            `${where}: server error (500 InternalError) (injected ${kind})`,
            details(500, "InternalError"),
          )
        );
      case "slow-down":
        return new ThrottledError(
          `${where}: the server asked us to slow down (503 SlowDown) (injected ${kind})`,
          details(503, "SlowDown"),
        );
      case "conflict":
        return new ConflictError(
          `${where}: a concurrent operation interfered (409 ConditionalRequestConflict); the write did not happen (injected ${kind})`,
          details(409, "ConditionalRequestConflict"),
        );
      case "dropped":
        return new UnavailableError(
          `${where}: cannot reach storage (connection reset) (injected ${kind})`,
          details(),
        );
      case "timeout":
      case "timeout-after-commit":
        return (
          unknownOutcome(`timed out after ${this.#timeoutMs} ms`) ??
          new UnavailableError(
            `${where}: timed out after ${this.#timeoutMs} ms (injected ${kind})`,
            details(),
          )
        );
      case "precondition-failed-after-commit":
        return new PreconditionFailedError(
          `${where}: precondition failed (412) for a PUT that committed: a layer below re-sent it after losing the answer (injected ${kind})`,
          details(412, "PreconditionFailed"),
        );
      case "late-commit":
      case "dropped-after-commit":
        return (
          unknownOutcome("connection reset") ??
          new UnavailableError(
            `${where}: connection reset before the answer (injected ${kind})`,
            details(),
          )
        );
    }
  }
}
