/**
 * A hostile client: writes random and malformed objects under every prefix oq uses (`tasks/`,
 * `ready/`, `leases/`, `schedules/`, `workers/`), as a buggy tool, an old version or a curious
 * operator with `aws s3 cp` might. Workers must report and skip these objects, never crash or
 * spin on them, and keep completing valid tasks.
 *
 * @module
 */
import type { Keys } from "../../src/keys.ts";
import { timeKey } from "../../src/keys.ts";
import type { Storage } from "../../src/storage/storage.ts";
import type { TaskRecord } from "../../src/task/record.ts";
import { CHAOS_TYPE } from "./chaos-worker.ts";

/** Options of {@link startHostileWriter}. */
export interface HostileOptions {
  /** Pause between batches, ms. Default 200. */
  everyMs?: number;
  /** Objects per batch. Default 4. */
  batch?: number;
  /** Random numbers in [0, 1). */
  random?: () => number;
}

/** A running hostile writer. */
export interface HostileWriter {
  /** Objects written so far (and writes the storage refused, e.g. invalid key names). */
  readonly counts: { written: number; refused: number; byKind: Record<string, number> };
  /** Write one batch of every kind at once (a deterministic start). */
  writeAll(): Promise<void>;
  /** Stop writing; resolves after the batch in flight. */
  stop(): Promise<void>;
}

const hex = (random: () => number, n: number) =>
  Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join("");

/** A well-formed task record, for the variants below to break in one place each. */
function baseTask(id: string, marker: string, now: number): TaskRecord {
  const iso = new Date(now).toISOString();
  return {
    oq: 1,
    id,
    type: CHAOS_TYPE,
    status: "pending",
    input: { ms: 0 },
    output: null,
    attempt: 0,
    maxRetries: 3,
    backoff: { initialSeconds: 1, maxSeconds: 300, factor: 2 },
    timeoutSeconds: null,
    createdAt: iso,
    updatedAt: iso,
    availableAt: iso,
    expiresAt: null,
    startedAt: null,
    finishedAt: null,
    lease: null,
    lastError: null,
    cancel: null,
    idempotencyKey: null,
    event: "submitted",
    marker,
    history: [],
    progress: null,
  };
}

/** One kind of hostile object: a name and what to write. */
type Garbage = { kind: string; writes: [key: string, body: string | Uint8Array][] };

/** Every kind of garbage, freshly named (so each batch adds new objects). */
export function garbageKinds(keys: Keys, random: () => number, now: number): Garbage[] {
  const id = () => `${hex(random, 30)}ff`; // valid ids, never a submitted one (those are random)
  const past = timeKey(now - 60_000);
  const marker = (taskId: string, type = CHAOS_TYPE, time = past) =>
    `ready/${type}/0/${time}/${taskId}.${hex(random, 8)}`;
  const part = keys.partition(CHAOS_TYPE, 0);
  const bytes = () => crypto.getRandomValues(new Uint8Array(1 + Math.floor(random() * 200)));
  /** A marker pointing at a task object with `body`: the worker reads it and must skip it. */
  const pointed = (kind: string, body: (taskId: string, rel: string) => string | Uint8Array) => {
    const taskId = id();
    const rel = marker(taskId);
    return {
      kind,
      writes: [
        [keys.task(taskId), body(taskId, rel)],
        [keys.full(rel), ""],
      ] as [string, string | Uint8Array][],
    };
  };
  const task = (taskId: string, rel: string, change: Record<string, unknown>) =>
    JSON.stringify({ ...baseTask(taskId, rel, now), ...change });
  return [
    // ready/: keys that are not markers at all.
    { kind: "ready-junk-key", writes: [[`${keys.ready}garbage-${hex(random, 6)}`, bytes()]] },
    { kind: "ready-short-key", writes: [[`${part}${past}`, "x"]] },
    { kind: "ready-no-nonce", writes: [[`${part}${past}/${id()}`, ""]] },
    { kind: "ready-bad-time", writes: [[`${part}notatime/${id()}.ab`, ""]] },
    {
      kind: "ready-bad-part",
      writes: [[`${keys.readyType(CHAOS_TYPE)}x1/${past}/${id()}.ab`, ""]],
    },
    { kind: "ready-bad-type", writes: [[`${keys.ready}bad type!/0/${past}/${id()}.ab`, ""]] },
    { kind: "ready-old-layout", writes: [[`${keys.ready}${past}/${CHAOS_TYPE}/${id()}.ab`, ""]] },
    {
      kind: "ready-unicode",
      writes: [[`${part}${past}/ünïcødé-${hex(random, 4)}.ab`, ""]],
    },
    {
      kind: "ready-deep",
      writes: [[`${part}${past}/${id()}.ab/more/levels`, ""]],
    },
    // ready/: well-formed markers with nothing (or a stranger) behind them.
    { kind: "marker-missing-task", writes: [[keys.full(marker(id())), ""]] },
    { kind: "marker-epoch", writes: [[keys.full(marker(id(), CHAOS_TYPE, timeKey(0))), ""]] },
    {
      kind: "marker-far-future",
      writes: [[keys.full(marker(id(), CHAOS_TYPE, "99991231T235959Z")), ""]],
    },
    {
      kind: "marker-unknown-type",
      writes: [[keys.full(marker(id(), "nobody-handles-this")), "body"]],
    },
    // tasks/ behind markers: every way a task object can be broken.
    pointed("task-random-bytes", () => bytes()),
    pointed("task-not-json", () => "{not json"),
    pointed("task-json-null", () => "null"),
    pointed("task-json-array", () => "[1,2,3]"),
    pointed("task-wrong-schema", (taskId) => JSON.stringify({ oq: 1, id: taskId })),
    pointed("task-future-format", (taskId, rel) => task(taskId, rel, { oq: 2 })),
    pointed("task-bad-status", (taskId, rel) => task(taskId, rel, { status: "exploded" })),
    pointed("task-bad-date", (taskId, rel) => task(taskId, rel, { availableAt: "yesterday" })),
    pointed("task-negative-attempt", (taskId, rel) => task(taskId, rel, { attempt: -1 })),
    pointed("task-unknown-event", (taskId, rel) => task(taskId, rel, { event: "teleported" })),
    pointed("task-running-without-lease", (taskId, rel) =>
      task(taskId, rel, { status: "running", event: "claimed", attempt: 1, lease: null }),
    ),
    pointed("task-id-mismatch", (_taskId, rel) => task(id(), rel, {})),
    pointed("task-other-marker", (taskId) => task(taskId, marker(taskId), {})),
    pointed("task-huge", (taskId, rel) =>
      task(taskId, rel, { type: "nobody-handles-this", input: "x".repeat(300_000) }),
    ),
    // tasks/: objects no marker points to (workers never list tasks/; operators' tools do).
    { kind: "tasks-junk-key", writes: [[`${keys.tasks}zz/${hex(random, 6)}`, bytes()]] },
    { kind: "tasks-bad-shard", writes: [[`${keys.tasks}0/f${hex(random, 6)}.json`, "{}"]] },
    // leases/: a prefix this protocol does not use (an older design did).
    { kind: "leases-junk", writes: [[`${keys.prefix}leases/${hex(random, 2)}/${id()}`, bytes()]] },
    // schedules/: for the scheduler that may run inside workers.
    { kind: "schedule-not-json", writes: [[keys.schedule(`junk-${hex(random, 6)}`), "{nope"]] },
    {
      kind: "schedule-wrong-schema",
      writes: [[keys.schedule(`junk-${hex(random, 6)}`), '{"oq":1}']],
    },
    {
      kind: "schedule-bad-cron",
      writes: [[keys.schedule(`junk-${hex(random, 6)}`), scheduleBody("not a cron", "UTC", now)]],
    },
    {
      kind: "schedule-bad-zone",
      writes: [
        [keys.schedule(`junk-${hex(random, 6)}`), scheduleBody("* * * * *", "Mars/Olympus", now)],
      ],
    },
    {
      kind: "schedule-junk-key",
      writes: [[`${keys.schedules}sub/dir/${hex(random, 4)}.txt`, "x"]],
    },
    // workers/: heartbeats that are not (fresh ones look like live peers).
    { kind: "worker-junk", writes: [[keys.worker(`ghost-${hex(random, 6)}`), bytes()]] },
    { kind: "worker-junk-key", writes: [[`${keys.workers}nested/${hex(random, 4)}.json`, "{}"]] },
  ];
}

function scheduleBody(cron: string, timezone: string, now: number): string {
  const iso = new Date(now).toISOString();
  return JSON.stringify({
    oq: 1,
    id: "whatever",
    type: CHAOS_TYPE,
    input: { ms: 0 },
    cron,
    timezone,
    catchUp: "latest",
    task: { timeoutSeconds: null, maxRetries: null, ttlSeconds: null },
    enabled: true,
    createdAt: iso,
    updatedAt: iso,
    doneThrough: iso,
    lastSlot: null,
    lastTaskId: null,
  });
}

/** Start writing garbage under `keys` through `storage` (another client: no faults). */
export function startHostileWriter(
  storage: Storage,
  keys: Keys,
  options: HostileOptions = {},
): HostileWriter {
  const random = options.random ?? Math.random;
  const everyMs = options.everyMs ?? 200;
  const batch = options.batch ?? 4;
  const counts = { written: 0, refused: 0, byKind: {} as Record<string, number> };
  let stopped = false;
  const write = async (g: Garbage) => {
    for (const [key, body] of g.writes) {
      try {
        await storage.put(key, body);
        counts.written++;
        counts.byKind[g.kind] = (counts.byKind[g.kind] ?? 0) + 1;
      } catch {
        counts.refused++; // e.g. a key name the backend rejects: fine, it is garbage anyway
      }
    }
  };
  const writeAll = async () => {
    for (const g of garbageKinds(keys, random, Date.now())) await write(g);
  };
  const loop = (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, everyMs));
      if (stopped) break;
      const kinds = garbageKinds(keys, random, Date.now());
      for (let i = 0; i < batch; i++) await write(kinds[Math.floor(random() * kinds.length)]!);
    }
  })();
  return {
    counts,
    writeAll,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
