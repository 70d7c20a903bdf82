/**
 * Pausing and resuming a task type: one empty pause marker at the start of each partition of the
 * type's ready index, which workers see first in the listing they make anyway
 * (docs/protocol.md, "Pause").
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import { checkTaskType } from "../keys.ts";
import { mapLimit } from "../util/async.ts";
import type { QueueInternals } from "./internals.ts";

/** The pause markers of every partition of `type` (full keys), per the manifest's shards. */
async function pauseMarkers(q: QueueInternals, type: string): Promise<string[]> {
  await q.manifest.load({ fresh: true });
  const shards = q.manifest.shardsOf(type);
  return Array.from({ length: shards }, (_, part) => q.keys.pauseMarker(type, part));
}

/**
 * Pause `type`: put its pause markers (one PUT per shard). Workers stop claiming its tasks at
 * their next listing of each partition; running tasks finish; submits still work and their
 * tasks wait. Idempotent.
 */
export async function pauseType(q: QueueInternals, type: string): Promise<void> {
  checkTaskType(type);
  const keys = await pauseMarkers(q, type);
  await mapLimit(keys, 8, (key) => q.storage.put(key, new Uint8Array(0)));
}

/** Resume `type`: delete its pause markers (one request per shard, or one batch). Idempotent. */
export async function resumeType(q: QueueInternals, type: string): Promise<void> {
  checkTaskType(type);
  const keys = await pauseMarkers(q, type);
  if (q.storage.deleteMany !== undefined && keys.length > 1) await q.storage.deleteMany(keys);
  else await mapLimit(keys, 8, (key) => q.storage.delete(key));
}

/** Whether `type` is paused: whether its first partition has a pause marker (one HEAD). */
export async function isTypePaused(q: QueueInternals, type: string): Promise<boolean> {
  checkTaskType(type);
  try {
    await q.storage.head(q.keys.pauseMarker(type, 0));
    return true;
  } catch (error) {
    if (error instanceof NotFoundError) return false;
    throw error;
  }
}

/**
 * After `type` gained shards: when it is paused, pause the new partitions too (one HEAD, and a
 * PUT per shard when paused), so that a split does not resume part of a paused type.
 */
export async function keepPaused(q: QueueInternals, type: string): Promise<void> {
  if (await isTypePaused(q, type)) await pauseType(q, type);
}
