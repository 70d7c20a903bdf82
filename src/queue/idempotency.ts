/**
 * Idempotent submits: the id an idempotency key names, whether a submit created its task or
 * found it, a different task under the same key (an error), and keys that expire after a window
 * (docs/protocol.md, "Idempotency keys").
 *
 * @module
 */
import { ConflictError, IdempotencyConflictError } from "../errors.ts";
import type { TaskRecord } from "../task/record.ts";
import { isTerminal, ms } from "../task/transitions.ts";
import { toHex } from "../util/format.ts";
import type { QueueInternals } from "./internals.ts";
import { payloadKeys } from "./payloads.ts";
import { replayHazard } from "./replay-hazard.ts";
import type { SubmitResult } from "./types.ts";

const encoder = new TextEncoder();

/** How often a submit decides again after losing a race for the key's id before giving up. */
const MAX_ROUNDS = 5;

/** The task id an idempotency key names: the first 32 hex digits of SHA-256("oq-idempotency:" + key). */
export async function idempotentId(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(`oq-idempotency:${key}`));
  return toHex(new Uint8Array(digest)).slice(0, 32);
}

/** JSON text with every object's keys sorted, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) =>
            a < b ? -1 : a > b ? 1 : 0,
          ),
        )
      : v,
  );
}

/** What an idempotent submit asks for. */
export interface IdempotentSubmit {
  /** The idempotency key. */
  key: string;
  /** How long the key holds after its task's creation, ms; `undefined`: forever. */
  windowMs: number | undefined;
  /** The task type. */
  type: string;
  /** The input, as it will be stored (after the JSON round trip). */
  input: unknown;
  /** The input's JSON bytes (to compare with an input stored apart by its SHA-256). */
  bytes: Uint8Array;
}

/**
 * Submit under an idempotency key: create the task when the key names none, return the one it
 * names (`created: false`) while the key holds, and replace a finished one once the window since
 * its creation has passed. A task of another type or input under the key throws
 * {@link IdempotencyConflictError}. `build` makes a new pending record (with a fresh marker) for
 * the key's id. Every write is conditional, so of concurrent submits exactly one creates.
 */
export async function submitIdempotent(
  q: QueueInternals,
  spec: IdempotentSubmit,
  build: () => Promise<TaskRecord>,
): Promise<SubmitResult> {
  const id = await idempotentId(spec.key);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const existing = await q.read(id);
    if (existing === undefined) {
      const task = await build();
      const stored = await q.tasks.create(task);
      // Only our create names our marker (every marker key is new).
      if (stored.marker === task.marker) return { task: stored, created: true };
      await removePayloads(q, task); // another submit created the id first: ours names nothing
      return found(q, stored, spec);
    }
    if (!(await replaceable(q, existing.task, spec.windowMs))) return found(q, existing.task, spec);
    const next = await build();
    const written = await q.write(existing, next);
    if (written !== undefined) {
      await removePayloads(q, existing.task); // the replaced task's, named by nothing now
      return { task: written.task, created: true };
    }
    await removePayloads(q, next);
    // Another writer changed the task first (another submit replaced it): decide again.
  }
  throw new ConflictError(
    `Task ${id} (idempotency key ${JSON.stringify(spec.key)}) kept changing under ${MAX_ROUNDS} attempts to submit it; try again.`,
    { key: id },
  );
}

/**
 * Delete the payload objects `task` names, best effort: a record that no longer exists names
 * them (`oq prune --scan` sweeps what is left).
 */
async function removePayloads(q: QueueInternals, task: TaskRecord): Promise<void> {
  for (const key of payloadKeys(task)) await q.payloads.remove(key).catch(() => {});
}

/**
 * Whether `task` holds the input `spec` asks for, compared as JSON with sorted keys. An input
 * stored apart is compared by its SHA-256 first, and read only when that differs.
 */
async function sameInput(q: QueueInternals, task: TaskRecord, spec: IdempotentSubmit) {
  const ref = task.inputRef;
  if (ref !== undefined && ref.bytes === spec.bytes.length) {
    const digest = await crypto.subtle.digest("SHA-256", spec.bytes as Uint8Array<ArrayBuffer>);
    if (toHex(new Uint8Array(digest)) === ref.sha256) return true;
  }
  const stored = await q.payloads.input(task);
  return canonicalJson(stored) === canonicalJson(spec.input);
}

/** The existing task the key names, after checking that it is the task asked for. */
async function found(
  q: QueueInternals,
  task: TaskRecord,
  spec: IdempotentSubmit,
): Promise<SubmitResult> {
  const what =
    task.type !== spec.type
      ? `type ${JSON.stringify(task.type)}, not ${JSON.stringify(spec.type)}`
      : !(await sameInput(q, task, spec))
        ? "a different input"
        : undefined;
  if (what !== undefined)
    throw new IdempotencyConflictError(
      `Idempotency key ${JSON.stringify(spec.key)} already names task ${task.id} with ${what}: use another key for another task, or submit the same input.`,
      { key: task.id },
    );
  return { task, created: false };
}

/**
 * True when a submit may replace `task`: the key's window since its creation has passed and it
 * is finished. Never while a prune may be deleting it (its retention ends within the replay
 * margin, or was raised lately): a prune that read it as finished would delete the new task (as
 * for `replay`, `./replay-hazard.ts`).
 */
async function replaceable(
  q: QueueInternals,
  task: TaskRecord,
  windowMs: number | undefined,
): Promise<boolean> {
  const now = q.now();
  if (windowMs === undefined || ms(task.createdAt) + windowMs > now) return false;
  if (!isTerminal(task.status)) return false;
  const manifest = await q.manifest.load({ fresh: true });
  return replayHazard(task, manifest, q.clock) === undefined;
}
