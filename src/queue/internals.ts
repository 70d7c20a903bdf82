/**
 * What the worker, the scheduler, the doctor and the CLI need of a queue beyond its public API:
 * the task store and ready index, randomness, input checks. Reached with {@link internals};
 * mod.ts does not export this module, so none of it is part of oq's API.
 *
 * @module
 */
import { ServerClock } from "../clock.ts";
import { ValidationError } from "../errors.ts";
import { Keys, type ReadyMarker } from "../keys.ts";
import { type Logger, silentLogger } from "../logger.ts";
import type { MetricsRecorder } from "../metrics/recorder.ts";
import { recorderOf } from "../metrics/recorders.ts";
import { checkKnownKeys, checkOptions, taskDefaultsSchema } from "../options.ts";
import type { Storage } from "../storage/storage.ts";
import { MAX_PAYLOAD_THRESHOLD_BYTES } from "../store/bounds.ts";
import { DEFAULT_BACKOFF } from "../task/backoff.ts";
import type { Backoff, TaskRecord } from "../task/record.ts";
import { errorMessage } from "../util/errors.ts";
import { hexOfLength, randomHex } from "../util/format.ts";
import { jsonText } from "../util/json-value.ts";
import { kindOf } from "../util/schema.ts";
import { FinishedJournal } from "./journal.ts";
import { LimitStore } from "./limits.ts";
import { LocalWake } from "./local-wake.ts";
import { ManifestStore } from "./manifest.ts";
import {
  byteOption,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PAYLOAD_THRESHOLD_BYTES,
  PayloadStore,
} from "./payloads.ts";
import type { Queue } from "./queue.ts";
import type { MarkerListOptions, ReadyIndex } from "./ready-index.ts";
import { queueStats } from "./stats.ts";
import { TaskStore } from "./task-store.ts";
import type { QueueOptions, Versioned, WriteOptions } from "./types.ts";

const encoder = new TextEncoder();

/** Defaults for submitted tasks, with every value filled in. */
export interface ResolvedDefaults {
  maxRetries: number;
  backoff: Backoff;
  timeoutSeconds: number | null;
  priority: number;
}

/** `length` random hex characters from web crypto. */
const defaultRandomHex = hexOfLength(randomHex);

/** The internals of one queue: built once by its constructor, reached with {@link internals}. */
export class QueueInternals {
  /** The storage the queue reads and writes. */
  readonly storage: Storage;
  /** The key layout under the queue's prefix. */
  readonly keys: Keys;
  /** Server time, from the storage's `Date` headers. */
  readonly clock: ServerClock;
  /** Where warnings go. */
  readonly logger: Logger;
  /** Random numbers in [0, 1). */
  readonly random: () => number;
  /** Random hex strings of the given length. */
  readonly randomHex: (length: number) => string;
  /** Task records and their markers. */
  readonly tasks: TaskStore;
  /** The ready markers. */
  readonly index: ReadyIndex;
  /** The queue's manifest: protocol version, shards per type, retention. */
  readonly manifest: ManifestStore;
  /** The limit objects of task types with fleet-wide limits (`limits/{type}.json`). */
  readonly limits: LimitStore;
  /** The finished journal: which tasks reached a terminal state, per type and status. */
  readonly journal: FinishedJournal;
  /** Defaults for submitted tasks. */
  readonly defaults: ResolvedDefaults;
  /** Where the task store reports the writes it won, when the queue records metrics. */
  readonly metrics: MetricsRecorder | undefined;
  /** Large inputs and outputs, stored as objects of their own. */
  readonly payloads: PayloadStore;
  /** Largest output a handler may return, as JSON, in bytes. */
  readonly maxOutputBytes: number;
  /** The idle workers on this queue object that its submits wake (`./local-wake.ts`). */
  readonly wake = new LocalWake();
  readonly #maxInputBytes: number;

  constructor(options: QueueOptions) {
    checkQueueOptions(options);
    this.metrics = options.metrics === undefined ? undefined : recorderOf(options.metrics);
    // With metrics, every request anything on this queue makes is counted (the bill).
    this.storage = this.metrics?.observeStorage(options.storage) ?? options.storage;
    this.keys = new Keys(options.prefix);
    this.clock = new ServerClock(options.storage, options.now);
    this.random = options.random ?? Math.random;
    this.randomHex = options.randomHex ?? defaultRandomHex;
    this.logger = options.logger ?? silentLogger;
    const max = DEFAULT_MAX_PAYLOAD_BYTES;
    this.#maxInputBytes = byteOption("maxInputBytes", options.maxInputBytes, max, 1);
    this.maxOutputBytes = byteOption("maxOutputBytes", options.maxOutputBytes, max, 1);
    this.payloads = new PayloadStore(
      this,
      byteOption(
        "payloadThresholdBytes",
        options.payloadThresholdBytes,
        DEFAULT_PAYLOAD_THRESHOLD_BYTES,
        0,
        { bytes: MAX_PAYLOAD_THRESHOLD_BYTES, name: "MAX_PAYLOAD_THRESHOLD_BYTES" },
      ),
      { input: this.#maxInputBytes, output: this.maxOutputBytes },
    );
    const d = checkOptions(taskDefaultsSchema, options.defaults, "defaults");
    this.defaults = {
      maxRetries: d.maxRetries ?? 3,
      backoff: { ...DEFAULT_BACKOFF, ...d.backoff },
      timeoutSeconds: d.timeoutSeconds ?? null,
      priority: d.priority ?? 0,
    };
    this.manifest = new ManifestStore(this.storage, this.keys, this.clock);
    this.limits = new LimitStore(
      this.storage,
      (type) => this.keys.full(`limits/${type}.json`),
      (key, message) => this.warnOnce(key, message),
    );
    this.journal = new FinishedJournal(this);
    this.tasks = new TaskStore(this);
    this.index = this.tasks.index;
    this.metrics?.bind({
      stats: () => queueStats(this),
      localNow: () => this.clock.localNow(),
      logger: this.logger,
    });
  }

  /** The current server time (epoch ms). */
  now(): number {
    return this.clock.now();
  }

  /** See {@link TaskStore.read}. */
  read(id: string): Promise<Versioned | undefined> {
    return this.tasks.read(id);
  }

  /** See {@link TaskStore.write}. */
  write(
    current: Versioned,
    proposed: TaskRecord,
    options?: WriteOptions,
  ): Promise<Versioned | undefined> {
    return this.tasks.write(current, proposed, options);
  }

  /** See {@link TaskStore.update}. */
  update(
    id: string,
    change: (current: TaskRecord) => TaskRecord | undefined,
    known?: Versioned,
    options?: WriteOptions,
  ): Promise<Versioned> {
    return this.tasks.update(id, change, known, options);
  }

  /** See {@link ReadyIndex.markers}. */
  markers(options?: MarkerListOptions): AsyncGenerator<ReadyMarker & { lastModified: Date }> {
    return this.index.markers(options);
  }

  /** Write what is buffered: batched marker deletes ({@link ReadyIndex.flush}) and the journal. */
  async flush(): Promise<void> {
    await Promise.all([this.index.flush(), this.journal.flush()]);
  }

  /** See {@link ReadyIndex.sweep}. */
  sweepMarkers(
    markers: readonly (Pick<ReadyMarker, "key"> & Partial<ReadyMarker>)[],
  ): Promise<string[]> {
    return this.index.sweep(markers);
  }

  /** See {@link ReadyIndex.strandedTask}. */
  strandedTask(marker: ReadyMarker, found: Versioned | undefined): Promise<string | undefined> {
    return this.index.strandedTask(marker, found);
  }

  /** See {@link ReadyIndex.findMisplaced}. */
  findMisplaced(id: string): Promise<string | undefined> {
    return this.index.findMisplaced(id);
  }

  /** See {@link ReadyIndex.warnOnce}. */
  warnOnce(key: string, message: string): void {
    this.index.warnOnce(key, message);
  }

  /** See {@link ReadyIndex.newMarker}. */
  newMarker(
    task: Pick<TaskRecord, "type" | "id" | "status" | "expiresAt" | "priority">,
    dueMs: number,
  ): string {
    return this.index.newMarker(task, dueMs);
  }

  /**
   * Check that `input` can be stored as the input of a `type` task: JSON-serializable and within
   * the size limit. Returns the value as it will be stored (a JSON round trip) and its JSON bytes
   * (to store apart when large). Throws `ValidationError` saying what to fix.
   */
  encodeInput(type: string, input: unknown): { value: unknown; bytes: Uint8Array } {
    const text = jsonOf(type, input);
    const bytes = encoder.encode(text);
    if (bytes.length > this.#maxInputBytes) {
      throw new ValidationError(
        `Input of ${type} task is ${bytes.length} bytes of JSON; the limit is ${this.#maxInputBytes} (maxInputBytes). Store large data in its own object and pass its key, or raise maxInputBytes.`,
      );
    }
    return { value: JSON.parse(text), bytes };
  }
}

/** `input` as JSON text, or a `ValidationError` saying why it cannot be stored. */
function jsonOf(type: string, input: unknown): string {
  try {
    return jsonText(input, "input");
  } catch (error) {
    throw new ValidationError(
      `Input of ${type} task is not JSON-serializable: ${errorMessage(error)}`,
    );
  }
}

const registry = new WeakMap<Queue, QueueInternals>();

/** Attach `inner` to `queue` (its constructor does). */
export function attachInternals(queue: Queue, inner: QueueInternals): void {
  registry.set(queue, inner);
}

/**
 * The internals of `queue`. Throws `ValidationError` for anything else: `new Worker(null)` is a
 * caller's mistake to report with a code, like any other bad argument.
 */
export function internals(queue: Queue): QueueInternals {
  const inner = typeof queue === "object" && queue !== null ? registry.get(queue) : undefined;
  if (inner === undefined)
    throw new ValidationError(
      `Expected an oq Queue (from connect() or new Queue()), got ${kindOf(queue)}.`,
    );
  return inner;
}

/**
 * Every key of {@link QueueOptions}, for {@link checkQueueOptions} (the type makes the list
 * whole: a key added to the options and not here fails to compile).
 * @internal
 */
export const QUEUE_OPTION_KEYS: Record<keyof QueueOptions, true> = {
  storage: true,
  prefix: true,
  now: true,
  random: true,
  randomHex: true,
  logger: true,
  maxInputBytes: true,
  maxOutputBytes: true,
  payloadThresholdBytes: true,
  defaults: true,
  metrics: true,
};

/**
 * Refuse queue options that would open the wrong queue or none: no storage (the first request
 * would throw a `TypeError` deep inside), or a key the options do not have (`prefx: "jobs/"`
 * opened the queue at the bucket's root).
 */
function checkQueueOptions(options: QueueOptions): void {
  if (typeof options !== "object" || options === null)
    throw new ValidationError("Queue options must be an object: { storage, prefix? }.");
  checkKnownKeys(options, QUEUE_OPTION_KEYS, "queue options");
  const storage = options.storage as Partial<Storage> | undefined;
  if (typeof storage?.get !== "function" || typeof storage.put !== "function")
    throw new ValidationError(
      "Queue options need storage: a Storage (S3Storage, or the file store of oq/file), or open the queue with connect() from a URL or OQ_* variables.",
    );
}
