/**
 * Deleting payload objects that no task names (docs/protocol.md, "Large inputs and outputs"):
 * an input written by a submit whose task write then failed, an output written by an attempt
 * that lost its lease before the completing write, objects left by a task deleted by hand.
 * Part of `prune({ scan: true })` (`oq prune --scan`), which walks storage anyway.
 *
 * @module
 */
import { mapLimit } from "../util/async.ts";
import type { QueueInternals } from "./internals.ts";
import { payloadKeys } from "./payloads.ts";

/**
 * A payload younger than this is never swept, ms: its writer may still be between the payload
 * and the task write that names it (a submit, a completing write retried for up to a lease). A
 * day, so that only a write frozen for longer can land naming a swept payload; that task then
 * fails with `PayloadMissing` rather than running without its input.
 */
export const PAYLOAD_GRACE_MS = 24 * 60 * 60 * 1000;

/**
 * Delete the payloads older than {@link PAYLOAD_GRACE_MS} whose task is missing or names other
 * ones. Cost: 1 LIST per 1,000 payloads, 1 GET per task with payloads past the grace, a share
 * of one `DeleteObjects` per payload deleted. Returns how many were (or, in a dry run, would be).
 */
export async function sweepPayloads(q: QueueInternals, dryRun: boolean): Promise<number> {
  let swept = 0;
  let continuationToken: string | undefined;
  do {
    const page = await q.storage.list({
      prefix: q.keys.payloads,
      ...(continuationToken === undefined ? {} : { continuationToken }),
    });
    const now = q.now();
    const byTask = new Map<string, string[]>();
    for (const o of page.objects) {
      const id = q.keys.parsePayloadKey(o.key);
      if (id === undefined || o.lastModified.getTime() > now - PAYLOAD_GRACE_MS) continue;
      byTask.set(id, [...(byTask.get(id) ?? []), o.key]);
    }
    const orphans = await mapLimit([...byTask], 16, async ([id, keys]) => {
      // A task that cannot be read (malformed) keeps its payloads, for an operator.
      const found = await q.read(id).catch(() => null);
      if (found === null) return [];
      const named = new Set(
        found === undefined ? [] : payloadKeys(found.task).map((k) => q.keys.full(k)),
      );
      return keys.filter((key) => !named.has(key));
    });
    const keys = orphans.flat();
    if (!dryRun && keys.length > 0) {
      const { storage } = q;
      if (storage.deleteMany !== undefined) await storage.deleteMany(keys);
      else await mapLimit(keys, 8, (key) => storage.delete(key));
    }
    swept += keys.length;
    continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (continuationToken !== undefined);
  return swept;
}
