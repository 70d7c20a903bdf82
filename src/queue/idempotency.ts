/**
 * Idempotent submits: the id an idempotency key names, whether a submit created its task or
 * found it, a different task under the same key (an error), and keys that expire after a window
 * (docs/protocol.md, "Idempotency keys").
 *
 * @module
 */
import { ConflictError, IdempotencyConflictError } from "../errors.ts";
import type { FinishedStatus } from "../keys.ts";
import type { TaskRecord } from "../task/record.ts";
import { isTerminal, ms } from "../task/transitions.ts";
import { toHex } from "../util/format.ts";
import type { QueueInternals } from "./internals.ts";
import { replayMarginMs } from "./prune.ts";
import { retentionMs } from "./retention.ts";
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
      return found(stored, spec);
    }
    if (!(await replaceable(q, existing.task, spec.windowMs))) return found(existing.task, spec);
    const written = await q.write(existing, await build());
    if (written !== undefined) return { task: written.task, created: true };
    // Another writer changed the task first (another submit replaced it): decide again.
  }
  throw new ConflictError(
    `Task ${id} (idempotency key ${JSON.stringify(spec.key)}) kept changing under ${MAX_ROUNDS} attempts to submit it; try again.`,
    { key: id },
  );
}

/** The existing task the key names, after checking that it is the task asked for. */
function found(task: TaskRecord, spec: IdempotentSubmit): SubmitResult {
  const what =
    task.type !== spec.type
      ? `type ${JSON.stringify(task.type)}, not ${JSON.stringify(spec.type)}`
      : canonicalJson(task.input) !== canonicalJson(spec.input)
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
 * margin): a prune that read it as finished would delete the new task (as for `replay`).
 */
async function replaceable(
  q: QueueInternals,
  task: TaskRecord,
  windowMs: number | undefined,
): Promise<boolean> {
  const now = q.now();
  if (windowMs === undefined || ms(task.createdAt) + windowMs > now) return false;
  if (!isTerminal(task.status)) return false;
  const { retention } = await q.manifest.load({ fresh: true });
  const keep = retentionMs(retention, task.type, task.status as FinishedStatus);
  const endsAt = ms(task.finishedAt ?? task.updatedAt) + keep;
  return endsAt - replayMarginMs(keep) > now;
}
