/**
 * Setting and showing a type's fleet-wide limits (`queue.setLimits`, `queue.limits`, `oq limit`):
 * the limit object holds the values, the manifest lists the limited types. See "Concurrency and
 * rate limits" in docs/protocol.md.
 *
 * @module
 */
import { checkTaskType } from "../keys.ts";
import type { QueueInternals } from "./internals.ts";
import { checkLimits, LimitStore, type LimitsInput, type TypeLimits } from "./limits.ts";

/**
 * Set `type`'s fleet-wide limits: writes its limit object (the values, read on every claim of
 * the type, so a change of a limited type applies at once), then lists the type in the manifest
 * (or removes it once no limit is left), which is how a worker knows a type has limits at all:
 * a worker started earlier learns of a newly limited type at its next manifest read, within 10
 * minutes. Returns the type's limits now. A malformed limit object (which blocks the type in
 * every worker) is replaced, conditionally on its ETag, with a warning and `replaced` saying so.
 */
export async function setTypeLimits(
  q: QueueInternals,
  type: string,
  given: LimitsInput,
): Promise<TypeLimits> {
  checkTaskType(type);
  checkLimits(given);
  const now = q.now();
  const { doc, replaced } = await q.limits.set(type, given, now);
  if (replaced !== undefined) q.logger.warn(`setLimits(${type}): ${replaced}`, { type });
  const limited = doc.concurrency !== null || doc.ratePerSecond !== null;
  await q.manifest.setLimited(type, limited);
  const view = LimitStore.view(doc, now);
  return replaced === undefined ? view : { ...view, replaced };
}

/**
 * The limits of `type` (one GET; a type without a limit object has none), or with no type, of
 * every type the manifest lists as limited (1 GET for the manifest and 1 per type).
 */
export async function typeLimits(q: QueueInternals, type?: string): Promise<TypeLimits[]> {
  if (type !== undefined) checkTaskType(type);
  const types =
    type === undefined ? ((await q.manifest.load({ fresh: true })).limited ?? []) : [type];
  const found: TypeLimits[] = [];
  for (const t of types) {
    const doc = await q.limits.read(t);
    const now = q.now();
    found.push(
      doc === undefined
        ? { type: t, concurrency: null, ratePerSecond: null, running: 0, recentStarts: 0 }
        : LimitStore.view(doc.value, now),
    );
  }
  return found;
}
