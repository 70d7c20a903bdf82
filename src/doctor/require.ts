/**
 * {@link requireSafeBackend}: what workers call before their first claim.
 *
 * @module
 */
import { OqError, UnavailableError, UnsafeBackendError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import {
  type CachedVerdict,
  DEFAULT_VERDICT_MAX_AGE_MS,
  DOCTOR_PROTOCOL,
  type RequireSafeOptions,
  type SafeBackend,
} from "./types.ts";
import { readVerdict, verdictKey } from "./verdict.ts";

function unsafeError(queue: Queue, failed: CachedVerdict["failed"], checkedAt: string): never {
  const list = failed.map((f) => f.title).join("; ");
  throw new UnsafeBackendError(
    `${queue.storage.name} is not safe for oq (doctor, ${checkedAt}): failed ${list}. Run oq doctor for the evidence and what to do; after fixing the backend, oq doctor stores a new verdict. Only skip this check (oq worker --skip-doctor, or the Worker option skipDoctor) if you know the backend is safe.`,
    { key: verdictKey(queue) },
  );
}

/**
 * What is known without a probe: safe for memory and file storages (no request), the cached
 * verdict for this exact path when younger than `maxAgeMs` (one GET; throws
 * `UnsafeBackendError` when it says unsafe), else `undefined`: only a probe can tell. A worker
 * process reads it while other start-up requests run, and probes only once they succeeded.
 */
export async function knownVerdict(
  queue: Queue,
  maxAgeMs = DEFAULT_VERDICT_MAX_AGE_MS,
): Promise<SafeBackend | undefined> {
  if (queue.storage.location?.local === true) {
    return {
      verdict: "safe",
      checkedAt: new Date(queue.now()).toISOString(),
      cached: false,
      local: true,
    };
  }
  const cached = await readVerdict(queue);
  if (cached === undefined || cached.protocol !== DOCTOR_PROTOCOL) return undefined;
  const age = queue.now() - Date.parse(cached.checkedAt);
  if (!(age <= maxAgeMs && age > -maxAgeMs)) return undefined;
  if (cached.verdict === "unsafe") unsafeError(queue, cached.failed, cached.checkedAt);
  return { verdict: "safe", checkedAt: cached.checkedAt, cached: true };
}

/**
 * Make sure the backend was proven safe: use a cached verdict for this exact path (`verdictPath`)
 * younger than `maxAgeMs` (default a day), else run doctor (which caches its verdict). Memory and
 * file storages need no proof (oq evaluates their conditions itself). Throws
 * `UnsafeBackendError` when the backend failed, and the underlying typed error
 * (`UnavailableError`, `AccessDeniedError`, ...) when it could not be probed. `force` probes again even with a fresh verdict.
 */
export async function requireSafeBackend(
  queue: Queue,
  options: RequireSafeOptions = {},
): Promise<SafeBackend> {
  if (!options.force) {
    const known = await knownVerdict(queue, options.maxAgeMs);
    if (known !== undefined) return known;
  }
  const logger = options.logger ?? queue.logger;
  logger.info(`checking that ${queue.storage.name} honours conditional writes (oq doctor)`);
  // The probes load only when there is no fresh verdict: a worker's start usually finds one.
  const { causeOf, runDoctor } = await import("./run.ts");
  // The lifecycle check is the operator's business; a worker starting needs only the proof.
  const report = await runDoctor(queue, { ...options, lifecycle: false });
  if (report.verdict === "unsafe") {
    unsafeError(
      queue,
      report.checks.filter((c) => c.status === "failed"),
      report.checkedAt,
    );
  }
  if (report.verdict === "error") {
    const cause = causeOf(report);
    if (cause instanceof OqError) throw cause;
    const failed = report.checks.find((c) => c.status === "failed");
    throw new UnavailableError(
      `Could not check ${queue.storage.name}: ${failed?.evidence.at(-1) ?? "unknown error"}. ${failed?.fix ?? ""}`.trim(),
      { cause },
    );
  }
  return { verdict: "safe", checkedAt: report.checkedAt, cached: false, report };
}
