/**
 * The object layout under a queue's prefix, and validation of every name that becomes part of a
 * key. See docs/protocol.md for why each object exists.
 *
 * ```
 * {prefix}queue.json                              the manifest: protocol version, shards per type
 * {prefix}tasks/{shard}/{id}.json                  the task: one object for its whole life (the truth)
 * {prefix}ready/{type}/{part}/{time}/{id}.{nonce}  empty marker: a non-terminal task, to be looked
 *                                                  at from {time} on (due, or its lease expired)
 * {prefix}done/{type}/{status}/{time}/{nonce}.json   finished journal: ids of tasks that reached
 *                                                  `status` by {time} (retention, dead letters)
 * {prefix}workers/{worker_id}.json                 worker heartbeat
 * {prefix}workers/stopped/{time}/{worker_id}.json  a stopped worker's last counts
 * {prefix}schedules/{schedule_id}.json             cron schedule
 * {prefix}payloads/{shard}/{id}/{name}.json        a large input or output, stored once
 * ```
 *
 * @module
 */
import { MAX_DATE_MS, MIN_DATE_MS } from "./duration.ts";
import { ValidationError } from "./errors.ts";
import { PRIORITY_MAX, PRIORITY_MIN } from "./task/priority.ts";

/** Names that become key segments: a safe alphabet, no `/`, no `..`, at most 128 characters. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function isName(value: unknown): value is string {
  return typeof value === "string" && NAME.test(value) && !value.includes("..");
}

function checkName(kind: string, value: unknown): string {
  if (!isName(value)) {
    throw new ValidationError(
      `Invalid ${kind} ${JSON.stringify(value)}: use 1-128 characters from A-Z a-z 0-9 . _ : -, starting with a letter or digit, without "..".`,
    );
  }
  return value;
}

/** Validate a task id. Returns it unchanged or throws `ValidationError`. */
export function checkTaskId(id: unknown): string {
  return checkName("task id", id);
}

/** Whether `id` is a valid task id (what {@link checkTaskId} accepts), without throwing. */
export function isTaskId(id: unknown): id is string {
  return isName(id);
}

/** Validate a task type. Returns it unchanged or throws `ValidationError`. */
export function checkTaskType(type: unknown): string {
  return checkName("task type", type);
}

/** Validate a worker id. */
export function checkWorkerId(id: unknown): string {
  return checkName("worker id", id);
}

/** Validate a schedule id. */
export function checkScheduleId(id: unknown): string {
  return checkName("schedule id", id);
}

/** Normalize a key prefix: empty, or ending in `/`. Rejects `..` segments and a leading `/`. */
export function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === "") return "";
  if (prefix.startsWith("/") || prefix.split("/").some((s) => s === ".." || s === ".")) {
    throw new ValidationError(
      `Invalid prefix ${JSON.stringify(prefix)}: it must not start with "/" or contain "." or ".." segments.`,
    );
  }
  return prefix.endsWith("/") ? prefix : `${prefix}/`;
}

/**
 * The shard of a task id: its first character, lower-cased, when that is a hex digit
 * (`0-9 a-f A-F`); otherwise `_`. Shards spread task objects over 17 key ranges. The rule looks
 * at the first character only (`Job-7` → `_`, not the `b` inside it), so a shell computes it as
 * `printf %s "$id" | cut -c1 | tr A-F a-f | sed 's/[^0-9a-f]/_/'` (docs/protocol.md, "Writing a
 * task by hand").
 */
export function shardOf(id: string): string {
  const c = id[0]!.toLowerCase();
  return /[0-9a-f]/.test(c) ? c : "_";
}

/** The last second a time segment can hold: 9999-12-31T23:59:59Z (epoch ms). */
const LAST_TIME_KEY_MS = Math.floor(MAX_DATE_MS / 1000) * 1000;

/**
 * A marker's time segment: UTC, second resolution, fixed width, so keys sort by time and an
 * operator can read them: `20261128T235959Z`. Only four-digit years fit (stored dates are held
 * to them, src/util/stored-values.ts); a time computed past the year 9999 (a lease expiring in
 * its last minute, plus the takeover margin) is written as its last second, never as a
 * `+010000…` segment that no reader parses: that far out, either means "not in our lifetime".
 */
export function timeKey(ms: number): string {
  const clamped = Math.min(Math.max(ms, MIN_DATE_MS), LAST_TIME_KEY_MS);
  return new Date(Math.floor(clamped / 1000) * 1000)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(".000", "");
}

/** Inverse of {@link timeKey}; `undefined` when the segment is not one. */
export function parseTimeKey(segment: string): number | undefined {
  // Markers listed in key order share their time segment in runs (a second's submits): a page of
  // 1,000 keys parses a few dozen distinct ones, so the last one is kept.
  if (segment === lastTimeKey.segment) return lastTimeKey.ms;
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(segment);
  if (m === null) return undefined;
  // `Date.UTC` reads years 0-99 as 1900-1999; setUTCFullYear takes the year as written.
  const date = new Date(0);
  date.setUTCFullYear(+m[1]!, +m[2]! - 1, +m[3]!);
  const ms = date.setUTCHours(+m[4]!, +m[5]!, +m[6]!, 0);
  const parsed = Number.isNaN(ms) ? undefined : ms;
  lastTimeKey = { segment, ms: parsed };
  return parsed;
}

/** The last segment {@link parseTimeKey} parsed, and what it gave. */
let lastTimeKey: { segment: string; ms: number | undefined } = { segment: "", ms: undefined };

/** A parsed ready marker key. */
export interface ReadyMarker {
  /** The full key. */
  key: string;
  /** The key relative to the prefix, as task records name it. */
  relative: string;
  /** From when the task is to be looked at (second resolution, rounded down). */
  dueMs: number;
  /** The task's type. */
  type: string;
  /** The hash shard of the type's partition the marker is in. */
  part: number;
  /** The task's id. */
  id: string;
  /** When the pending task's TTL runs out, when it has one (second resolution, rounded up). */
  expiresMs?: number;
  /** Set on a running task's marker placed at its lease expiry (key ending in `.lease`). */
  lease?: true;
  /** The task's priority, from the key (`{nonce}-p{n}`); 0 for a key without one. */
  priority: number;
}

/** A parsed finished-journal key (`done/{type}/{status}/{time}/{nonce}.json`). */
export interface JournalKey {
  /** The full key. */
  key: string;
  /** The tasks' type. */
  type: string;
  /** The terminal status the journal's tasks reached. */
  status: FinishedStatus;
  /** No entry of the journal finished after this time (epoch ms, second resolution). */
  timeMs: number;
}

/** The terminal statuses, as journal keys name them. */
export type FinishedStatus = "completed" | "failed" | "cancelled" | "expired";

const FINISHED: readonly string[] = ["completed", "failed", "cancelled", "expired"];

/** What a new marker key is made of. */
export interface MarkerSpec {
  type: string;
  id: string;
  /** Hash shard of the type's partition. */
  part: number;
  /** From when the task is to be looked at (epoch ms; rounded down to the second). */
  dueMs: number;
  /** The pending task's TTL end (epoch ms; rounded up to the second), if any. */
  expiresMs?: number;
  /** A running task's marker at its lease expiry. */
  lease?: boolean;
  /** Random hex making the key unique. */
  nonce: string;
  /** The task's priority (0 or absent: none in the key). */
  priority?: number;
}

/**
 * The hash shard of task `id` in a type split into `shards` parts: 32-bit FNV-1a of the id,
 * modulo `shards`. 0 when the type has one part.
 */
export function partOf(id: string, shards: number): number {
  if (shards <= 1) return 0;
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

const PART = /^(0|[1-9][0-9]{0,2})$/;
/** A nonce segment that carries a priority: `{hex}-p{n}`, `n` a whole number, maybe negative. */
const PRIORITY_NONCE = /^(.+)-p(-?(?:0|[1-9][0-9]{0,2}))$/;

/**
 * The last segment of a partition's pause marker, `ready/{type}/{part}/!paused`. `!` sorts
 * before the digits every marker's time starts with, so the marker is the first key of every
 * listing of the partition from its start (docs/protocol.md, "Pause").
 */
export const PAUSE_MARKER = "!paused";
const TIME = /^\d{8}T\d{6}Z$/;

/** Builds and parses the keys of one queue (one prefix). */
export class Keys {
  /** The normalized prefix ("" or ending in `/`). */
  readonly prefix: string;

  constructor(prefix?: string) {
    this.prefix = normalizePrefix(prefix);
  }

  /** Prefix of all task objects. */
  get tasks(): string {
    return `${this.prefix}tasks/`;
  }
  /** Prefix of all ready markers. */
  get ready(): string {
    return `${this.prefix}ready/`;
  }
  /** The manifest's key. */
  get manifest(): string {
    return `${this.prefix}queue.json`;
  }
  /** Prefix of the markers of one task type (all its shards). */
  readyType(type: string): string {
    return `${this.prefix}ready/${type}/`;
  }
  /** Prefix of one partition of the ready index: a type's hash shard `part`. */
  partition(type: string, part: number): string {
    return `${this.prefix}ready/${type}/${part}/`;
  }
  /** Prefix of the finished journal. */
  get done(): string {
    return `${this.prefix}done/`;
  }
  /** Prefix of the journals of one type's tasks that reached `status`. */
  journals(type: string, status: FinishedStatus): string {
    return `${this.prefix}done/${type}/${status}/`;
  }
  /**
   * A new journal key: `done/{type}/{status}/{time}/{nonce}.json`, where `time` is the latest
   * finish time of its entries rounded up to the second, so a journal whose key time is past a
   * retention holds only tasks past it.
   */
  newJournal(type: string, status: FinishedStatus, latestMs: number, nonce: string): string {
    return `${this.journals(type, status)}${timeKey(Math.ceil(latestMs / 1000) * 1000)}/${nonce}.json`;
  }
  /** Parse a key under `done/`; `undefined` for anything foreign or malformed. */
  parseJournal(key: string): JournalKey | undefined {
    if (!key.startsWith(this.done)) return undefined;
    const parts = key.slice(this.done.length).split("/");
    if (parts.length !== 4) return undefined;
    const [type, status, time, name] = parts as [string, string, string, string];
    const timeMs = parseTimeKey(time);
    if (
      timeMs === undefined ||
      !FINISHED.includes(status) ||
      !NAME.test(type) ||
      type.includes("..") ||
      !/^[0-9a-f]{1,64}\.json$/.test(name)
    )
      return undefined;
    return { key, type, status: status as FinishedStatus, timeMs };
  }
  /** Prefix of all worker heartbeats. */
  get workers(): string {
    return `${this.prefix}workers/`;
  }
  /** Prefix of the last heartbeats of stopped workers, by the time they stopped. */
  get stoppedWorkers(): string {
    return `${this.prefix}workers/stopped/`;
  }
  /** Prefix of all schedules. */
  get schedules(): string {
    return `${this.prefix}schedules/`;
  }

  /** Prefix of all payload objects (large inputs and outputs). */
  get payloads(): string {
    return `${this.prefix}payloads/`;
  }

  /**
   * A payload key relative to the prefix, as task records name it:
   * `payloads/{shard}/{id}/{name}`, beside nothing else of the task, so one prefix holds them all.
   */
  payload(id: string, name: string): string {
    return `payloads/${shardOf(id)}/${id}/${name}`;
  }

  /** The task id of a full payload key; `undefined` for anything else. */
  parsePayloadKey(key: string): string | undefined {
    if (!key.startsWith(this.payloads)) return undefined;
    const parts = key.slice(this.payloads.length).split("/");
    if (parts.length !== 3) return undefined;
    const [shard, id] = parts as [string, string, string];
    if (!NAME.test(id) || id.includes("..") || shardOf(id) !== shard) return undefined;
    return id;
  }

  /** The key of a task object. */
  task(id: string): string {
    return `${this.prefix}tasks/${shardOf(id)}/${id}.json`;
  }

  /**
   * Where a task written by hand may sit when its writer got the shard wrong: every other shard,
   * the id's first character as it is (`J`, `A`) and no shard at all. The monitor looks there
   * before it deletes the marker of a task it cannot find, so such a task is reported, not lost.
   */
  misplacedTasks(id: string): string[] {
    const first = id[0]!;
    const shards = new Set([
      ..."0123456789abcdef_",
      first,
      first.toLowerCase(),
      first.toUpperCase(),
    ]);
    shards.delete(shardOf(id));
    return [
      ...[...shards].map((shard) => `${this.tasks}${shard}/${id}.json`),
      `${this.tasks}${id}.json`,
    ];
  }

  /**
   * A new ready marker key, relative to the prefix (as stored in the task record):
   * `ready/{type}/{part}/{time}/{id}.{nonce}`, with `.{expiry}` appended for a pending task with a
   * TTL and `.lease` for a running task's marker at its lease expiry (so a monitor can expire
   * tasks and recover leases of types nobody runs without reading the others). The
   * nonce makes every marker key unique, so a stale marker can never be mistaken for a live one.
   */
  newReadyMarker(spec: MarkerSpec): string {
    const expiry =
      spec.lease === true
        ? ".lease"
        : spec.expiresMs === undefined
          ? ""
          : `.${timeKey(Math.ceil(spec.expiresMs / 1000) * 1000)}`;
    // The priority rides in the nonce segment: a reader that predates it takes the segment for
    // the nonce, still finds the right id, and so never mistakes the marker for a stale one.
    const nonce =
      spec.priority === undefined || spec.priority === 0
        ? spec.nonce
        : `${spec.nonce}-p${spec.priority}`;
    return `ready/${spec.type}/${spec.part}/${timeKey(spec.dueMs)}/${spec.id}.${nonce}${expiry}`;
  }

  /** The pause marker of one partition: `ready/{type}/{part}/!paused` (full key). */
  pauseMarker(type: string, part: number): string {
    return `${this.partition(type, part)}${PAUSE_MARKER}`;
  }

  /** Whether `key` is a partition's pause marker ({@link Keys.pauseMarker}). */
  isPauseMarker(key: string): boolean {
    if (!key.startsWith(this.ready) || !key.endsWith(`/${PAUSE_MARKER}`)) return false;
    const parts = key.slice(this.ready.length).split("/");
    return parts.length === 3 && NAME.test(parts[0]!) && PART.test(parts[1]!);
  }

  /** The full key of a marker stored relative to the prefix. */
  full(relative: string): string {
    return this.prefix + relative;
  }

  /** The key of a worker heartbeat. */
  worker(id: string): string {
    return `${this.prefix}workers/${id}.json`;
  }

  /**
   * The key of the last heartbeat of worker `id`, which stopped at `stoppedMs`: under the second
   * it stopped, so a listing can start after a time, and a worker id that runs again writes a
   * new key instead of overwriting its earlier run's counts.
   */
  stoppedWorker(id: string, stoppedMs: number): string {
    return `${this.stoppedWorkers}${timeKey(stoppedMs)}/${id}.json`;
  }

  /** The key of a schedule. */
  schedule(id: string): string {
    return `${this.prefix}schedules/${id}.json`;
  }

  /** Parse a key under `ready/`; `undefined` for anything foreign or malformed. */
  parseReadyMarker(key: string): ReadyMarker | undefined {
    if (!key.startsWith(this.ready)) return undefined;
    const parts = key.slice(this.ready.length).split("/");
    if (parts.length !== 4) return undefined;
    const [type, part, time, last] = parts as [string, string, string, string];
    const dueMs = parseTimeKey(time);
    if (dueMs === undefined || !PART.test(part) || !NAME.test(type) || type.includes(".."))
      return undefined;
    const segments = last.split(".");
    let expiresMs: number | undefined;
    let lease = false;
    // `{id}.{nonce}.{expiry}` or `{id}.{nonce}.lease`: after at least two other segments.
    if (segments.length >= 3 && TIME.test(segments[segments.length - 1]!)) {
      expiresMs = parseTimeKey(segments.pop()!);
      if (expiresMs === undefined) return undefined;
    } else if (segments.length >= 3 && segments[segments.length - 1] === "lease") {
      segments.pop();
      lease = true;
    }
    const nonce = segments.pop();
    const id = segments.join(".");
    if (nonce === undefined || nonce === "" || !NAME.test(id) || id.includes(".."))
      return undefined;
    const marker: ReadyMarker = {
      key,
      relative: key.slice(this.prefix.length),
      dueMs,
      type,
      part: Number(part),
      id,
      // Clamped: a key written by hand with `-p999` is ordered as the highest, not above it.
      priority: Math.min(
        PRIORITY_MAX,
        Math.max(PRIORITY_MIN, Number(PRIORITY_NONCE.exec(nonce)?.[2] ?? 0) || 0),
      ),
    };
    if (expiresMs !== undefined) marker.expiresMs = expiresMs;
    if (lease) marker.lease = true;
    return marker;
  }

  /** The task id of a key under `tasks/`; `undefined` for anything foreign or malformed. */
  parseTaskKey(key: string): string | undefined {
    if (!key.startsWith(this.tasks)) return undefined;
    const m = /^([0-9a-f_])\/([^/]+)\.json$/.exec(key.slice(this.tasks.length));
    if (m === null || !NAME.test(m[2]!) || shardOf(m[2]!) !== m[1]) return undefined;
    return m[2];
  }
}
