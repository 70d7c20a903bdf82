/**
 * A queue on the memory store with one clock the test moves (server and local time are the
 * same), and the per-worker state the parts of src/worker/ share, for their unit tests.
 */
import { FinishedCounter } from "../../src/queue/finished-counts.ts";
import { internals } from "../../src/queue/internals.ts";
import { Queue } from "../../src/queue/queue.ts";
import type { Versioned } from "../../src/queue/types.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import { claimTask } from "../../src/task/transitions.ts";
import {
  type Emit,
  newStats,
  type WorkerEvent,
  type WorkerStats,
} from "../../src/worker/events.ts";
import { SkipList } from "../../src/worker/skip.ts";

/**
 * A memory queue on the wall clock plus an offset the test moves (`advance`): time passes between
 * calls too. A test whose outcome hangs on how long its steps took stops `Date` (fake timers).
 */
export function memoryQueue(wrap: (s: MemoryStorage) => MemoryStorage = (s) => s) {
  const clock = { offset: 0, now: () => Date.now() + clock.offset };
  const storage = wrap(new MemoryStorage({ now: clock.now }));
  const queue = new Queue({ storage, now: clock.now });
  const advance = (ms: number): void => {
    clock.offset += ms;
  };
  return { queue, storage, clock, advance };
}

/**
 * Stats, an event log and a skip list, as a worker hands them to its parts, and a monitor's view
 * of its worker: handlers for `handled`, every partition in its share.
 */
export function shared(
  queue: Queue,
  handled: readonly string[] = ["t"],
): {
  stats: WorkerStats;
  finished: FinishedCounter;
  events: WorkerEvent[];
  emit: Emit;
  skip: SkipList;
  handles: (type: string) => boolean;
  owns: (partition: string) => boolean;
} {
  const events: WorkerEvent[] = [];
  return {
    stats: newStats(),
    finished: new FinishedCounter(() => queue.now()),
    events,
    emit: (e) => void events.push(e),
    skip: new SkipList(queue.clock),
    handles: (type) => handled.includes(type),
    owns: () => true,
  };
}

/** What a new marker needs to know of a pending task of type `t` without a TTL. */
export function pendingSpec(id: string, type = "t") {
  return { type, id, status: "pending" as const, expiresAt: null };
}

/** Submit a task of `type` and claim it as worker `w` with lease `leaseMs` and `token`. */
export async function claimed(
  queue: Queue,
  type: string,
  options: { leaseMs?: number; token?: string; timeoutSeconds?: number } = {},
): Promise<Versioned> {
  const task = await queue.submit(
    type,
    { n: 1 },
    {
      ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
    },
  );
  const found = (await queue.read(task.id))!;
  const next = claimTask(found.task, {
    workerId: "w",
    token: options.token ?? "tok",
    leaseMs: options.leaseMs ?? 60_000,
    now: queue.now(),
  });
  return (await internals(queue).write(found, next))!;
}

/** Record the key of every GET on `storage` from now on; returns the list it fills. */
export function recordReads(storage: MemoryStorage): string[] {
  const reads: string[] = [];
  const get = storage.get.bind(storage);
  storage.get = (key, options) => {
    reads.push(key);
    return get(key, options);
  };
  return reads;
}
