/**
 * The queue's manifest, `{prefix}queue.json`: which protocol (key layout) the queue's objects
 * follow, and how many hash shards each task type's part of the ready index is split into. The
 * first writer creates it (`If-None-Match: *`); a client of another protocol refuses the queue
 * with `ProtocolMismatchError` rather than write keys nobody else would find. See "The manifest"
 * in docs/protocol.md.
 *
 * @module
 */
import * as v from "valibot";
import type { ServerClock } from "../clock.ts";
import {
  ConflictError,
  MalformedObjectError,
  ProtocolMismatchError,
  ValidationError,
} from "../errors.ts";
import { checkTaskType, type Keys } from "../keys.ts";
import { type RetryPolicy, retry } from "../retry.ts";
import type { Storage } from "../storage/storage.ts";
import { DocumentStore } from "../store/documents.ts";
import { validate } from "../util/schema.ts";
import { finiteNumber, seconds } from "../util/stored-values.ts";
import {
  applyRetention,
  checkRetention,
  noteRetentionRaise,
  type RetentionInput,
  type RetentionRaises,
  type RetentionSettings,
  retentionRaised,
  type StoredRetention,
} from "./retention.ts";

/**
 * The protocol this oq speaks. 1 was the layout before per-type partitions (`ready/{time}/...`,
 * no manifest); 2 is `ready/{type}/{shard}/{time}/...` with this manifest.
 */
export const PROTOCOL = 2;

/** Reading the manifest retries transient failures like a read-back: it gates every write. */
const MANIFEST_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 200, maxDelayMs: 3200 };

/** Most shards one type may be split into. */
export const MAX_SHARDS = 256;

/** How long a client trusts the manifest it read before reading it again, ms (shard changes). */
export const MANIFEST_TTL_MS = 10 * 60_000;

/** The stored manifest. */
export interface Manifest {
  /** Always `"queue"`: what this object is. */
  oq: "queue";
  /** The protocol version the queue's objects follow ({@link PROTOCOL}). */
  protocol: number;
  /** When the manifest was created (server time, ISO 8601). */
  createdAt: string;
  /** Hash shards per task type; a type not named has 1. Only ever raised. */
  shards: Record<string, number>;
  /** How long finished tasks are kept (`./retention.ts`); absent: the defaults. */
  retention?: RetentionSettings;
  /**
   * When `retention` was last raised, for the queue and per type (the upper bound of server time
   * then); only raises of the last few minutes, which hold replays back (`./retention.ts`).
   */
  retentionRaisedAt?: RetentionRaises;
  /**
   * Task types with a fleet-wide limit object (`limits/{type}.json`, `./limits.ts`); absent: none.
   * Only these types cost a request per claim for their limits.
   */
  limited?: string[];
}

// Schemas stay unexported so the package's declarations never reference valibot's types;
// `Same` below keeps them equal to the written-out types. Retention settings reject unknown keys
// (a misspelt status would silently keep nothing); the manifest itself keeps them.
// Seconds (as `checkRetention` stores them), within the bound every duration option has.
const retentionDays = v.exactOptional(v.nullable(seconds));
const storedRetentionSchema = v.strictObject({
  completed: retentionDays,
  failed: retentionDays,
  cancelled: retentionDays,
  expired: retentionDays,
});

const retentionSchema = v.strictObject({
  default: v.exactOptional(storedRetentionSchema),
  types: v.exactOptional(v.record(v.string(), storedRetentionSchema)),
});

const isoTime = v.pipe(
  v.string(),
  v.check((s) => !Number.isNaN(Date.parse(s)), "a time in ISO 8601"),
);
const retentionRaisesSchema = v.strictObject({
  default: v.exactOptional(isoTime),
  types: v.exactOptional(v.record(v.string(), isoTime)),
});

type Same<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
true satisfies Same<v.InferOutput<typeof storedRetentionSchema>, StoredRetention>;
true satisfies Same<v.InferOutput<typeof retentionSchema>, RetentionSettings>;
true satisfies Same<v.InferOutput<typeof retentionRaisesSchema>, RetentionRaises>;

const manifestSchema = v.looseObject({
  oq: v.literal("queue"),
  protocol: v.pipe(finiteNumber, v.integer(), v.minValue(1)),
  createdAt: v.string(),
  shards: v.record(
    v.string(),
    v.pipe(finiteNumber, v.integer(), v.minValue(1), v.maxValue(MAX_SHARDS)),
  ),
  retention: v.exactOptional(retentionSchema),
  retentionRaisedAt: v.exactOptional(retentionRaisesSchema),
  limited: v.exactOptional(v.array(v.string())),
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parseManifest(body: Uint8Array, key: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(body));
  } catch {
    throw new MalformedObjectError(`Object ${key} is not a queue manifest: not JSON.`, { key });
  }
  // The protocol is checked first: a later protocol may change every other field.
  const protocol = (value as { protocol?: unknown } | null)?.protocol;
  if (typeof protocol === "number" && protocol !== PROTOCOL) {
    throw new ProtocolMismatchError(
      `The queue at ${key.slice(0, -"queue.json".length) || "(no prefix)"} uses oq protocol ${protocol}; this oq speaks protocol ${PROTOCOL}. Use an oq release that speaks protocol ${protocol}, or another prefix.`,
      { key },
    );
  }
  const result = validate(manifestSchema, value);
  if (!result.ok) {
    throw new MalformedObjectError(
      `Object ${key} is not a valid queue manifest: ${result.summary}. Fix it, or restore its last good version (aws s3api list-object-versions --prefix ${key}); do not delete it: a new one would forget the queue's shard counts, limits and retention.`,
      { key },
    );
  }
  return result.value as Manifest;
}

function encodeManifest(manifest: Manifest): Uint8Array {
  return encoder.encode(`${JSON.stringify(manifest, null, 1)}\n`);
}

/** Check a shard count given by a caller. */
export function checkShards(shards: unknown): number {
  if (
    typeof shards !== "number" ||
    !Number.isInteger(shards) ||
    shards < 1 ||
    shards > MAX_SHARDS
  ) {
    throw new ValidationError(
      // Numbers as written (JSON.stringify spells NaN and Infinity "null"), others as JSON.
      `Invalid shard count ${typeof shards === "number" ? String(shards) : JSON.stringify(shards)}: use an integer from 1 to ${MAX_SHARDS}.`,
    );
  }
  return shards;
}

/** Reads, creates and caches the manifest of one queue. */
export class ManifestStore {
  readonly #documents: DocumentStore<Manifest>;
  readonly #keys: Keys;
  readonly #clock: ServerClock;
  #cached: { manifest: Manifest; readAt: number } | undefined;
  #loading: Promise<Manifest> | undefined;

  constructor(storage: Storage, keys: Keys, clock: ServerClock) {
    this.#documents = new DocumentStore(storage, { parse: parseManifest, encode: encodeManifest });
    this.#keys = keys;
    this.#clock = clock;
  }

  /** The manifest last read, without a request (`undefined` before the first {@link load}). */
  get cached(): Manifest | undefined {
    return this.#cached?.manifest;
  }

  /**
   * The manifest: the cached copy while younger than {@link MANIFEST_TTL_MS}, else read (one
   * GET), and created when the queue has none (one conditional PUT, once per queue). Throws
   * `ProtocolMismatchError` for a queue of another protocol.
   */
  async load(options: { fresh?: boolean } = {}): Promise<Manifest> {
    const cached = this.#cached;
    if (
      options.fresh !== true &&
      cached !== undefined &&
      this.#clock.localNow() - cached.readAt < MANIFEST_TTL_MS
    )
      return cached.manifest;
    this.#loading ??= retry(() => this.#read(), MANIFEST_RETRY).finally(() => {
      this.#loading = undefined;
    });
    if (cached === undefined || options.fresh === true) return this.#loading;
    // A refresh that fails on storage trouble must not fail the write that asked for it: the
    // copy read before still names every shard listed then (shards only grow).
    return this.#loading.catch((error: unknown) => {
      if (error instanceof ProtocolMismatchError) throw error;
      return cached.manifest;
    });
  }

  /**
   * The stored manifest, read (one GET) and kept as the cached copy, or `undefined` when the queue
   * has none yet: unlike {@link load}, it creates nothing, so it may run before the caller knows
   * the bucket is one to write to. Throws `ProtocolMismatchError` as `load` does.
   */
  async peek(): Promise<Manifest | undefined> {
    const found = await this.#documents.read(this.#keys.manifest);
    return found === undefined ? undefined : this.#keep(found.value);
  }

  /**
   * Whether workers list shard `part` of `type`'s index: below its shard count per the cached
   * manifest. True before the manifest was read (nothing says otherwise).
   */
  lists(type: string, part: number): boolean {
    return this.#cached === undefined || part < this.shardsOf(type);
  }

  /** Hash shards of `type` per the cached manifest (1 before it was read). */
  shardsOf(type: string): number {
    return this.#cached?.manifest.shards[type] ?? 1;
  }

  /**
   * Split `type`'s part of the index into `shards` hash shards. Shards can only be added: a
   * marker in a shard that readers no longer list would hide its task. Returns the manifest.
   */
  async setShards(type: string, shards: number): Promise<Manifest> {
    checkTaskType(type);
    checkShards(shards);
    await this.load();
    const done = await this.#documents.update(this.#keys.manifest, ({ value }) => {
      const now = value.shards[type] ?? 1;
      if (shards < now) {
        throw new ValidationError(
          `Type ${type} has ${now} shards; shards can only be added (${shards} < ${now}): fewer would hide the tasks in the others.`,
        );
      }
      if (shards === now) return undefined;
      return { ...value, shards: { ...value.shards, [type]: shards } };
    });
    if (done === undefined) return this.load({ fresh: true });
    this.#cached = { manifest: done.value, readAt: this.#clock.localNow() };
    return done.value;
  }

  /**
   * Set how long finished tasks are kept, for the whole queue or for `type` (see
   * `RetentionInput`). Returns the manifest.
   */
  async setRetention(given: RetentionInput, forType?: string): Promise<Manifest> {
    if (forType !== undefined) checkTaskType(forType);
    const change = checkRetention(given);
    await this.load();
    const done = await this.#documents.update(this.#keys.manifest, ({ value }) => {
      const retention = applyRetention(value.retention, change, given, forType);
      if (retention === undefined) return undefined;
      if (!retentionRaised(value.retention, retention, forType)) return { ...value, retention };
      // By the latest the server's time may be: replays are held back until surely past it.
      const at = this.#clock.bounds().upper;
      const retentionRaisedAt = noteRetentionRaise(value.retentionRaisedAt, forType, at);
      return { ...value, retention, retentionRaisedAt };
    });
    if (done === undefined) return this.load({ fresh: true });
    this.#cached = { manifest: done.value, readAt: this.#clock.localNow() };
    return done.value;
  }

  /** Whether `type` has fleet-wide limits per the cached manifest (no request). */
  isLimited(type: string): boolean {
    return this.#cached?.manifest.limited?.includes(type) ?? false;
  }

  /** Add `type` to (or, `limited` false, remove it from) the manifest's limited types. */
  async setLimited(type: string, limited: boolean): Promise<Manifest> {
    checkTaskType(type);
    await this.load();
    const done = await this.#documents.update(this.#keys.manifest, ({ value }) => {
      const now = value.limited ?? [];
      if (now.includes(type) === limited) return undefined;
      const next = limited ? [...now, type].sort() : now.filter((t) => t !== type);
      const { limited: _, ...rest } = value;
      return next.length === 0 ? rest : { ...rest, limited: next };
    });
    if (done === undefined) return this.load({ fresh: true });
    this.#cached = { manifest: done.value, readAt: this.#clock.localNow() };
    return done.value;
  }

  async #read(): Promise<Manifest> {
    const key = this.#keys.manifest;
    for (let round = 0; round < 5; round++) {
      const found = await this.#documents.read(key);
      if (found !== undefined) return this.#keep(found.value);
      const created: Manifest = {
        oq: "queue",
        protocol: PROTOCOL,
        createdAt: new Date(this.#clock.now()).toISOString(),
        shards: {},
      };
      const result = await this.#documents.write(key, null, created);
      if (result.won) return this.#keep(result.value);
      // Another client created it first: read theirs.
    }
    throw new ConflictError(`Could not read or create the queue manifest ${key}; try again.`, {
      key,
    });
  }

  #keep(manifest: Manifest): Manifest {
    this.#cached = { manifest, readAt: this.#clock.localNow() };
    return manifest;
  }
}
