/**
 * Doctor's verdicts written straight into a queue, as doctor would leave them, for tests of what
 * workers do with a cached verdict (safe or unsafe) without running the probes, and a real
 * verdict proven once per test file and backend ({@link provenSafe}).
 */
import { requireSafeBackend } from "../../src/doctor/require.ts";
import type { DoctorReport } from "../../src/doctor/types.ts";
import { verdictPath, writeVerdict } from "../../src/doctor/verdict.ts";
import type { Queue } from "../../src/queue/queue.ts";

/** A doctor report with the given verdict: one compare-and-swap check, failed when unsafe. */
export function doctorReport(queue: Queue, verdict: "safe" | "unsafe"): DoctorReport {
  const failed = verdict === "unsafe";
  return {
    verdict,
    storage: queue.storage.name,
    prefix: queue.keys.prefix,
    provider: "unknown",
    scratch: `${queue.keys.prefix}_doctor/scratch/`,
    checkedAt: new Date(queue.now()).toISOString(),
    durationMs: 0,
    checks: [
      {
        id: "compare-and-swap",
        title: "If-Match replaces only the version it names",
        status: failed ? "failed" : "ok",
        unsafe: failed,
        evidence: [],
        durationMs: 0,
      },
    ],
  };
}

/** Store `verdict` as `queue`'s cached doctor verdict. */
export function storeVerdict(queue: Queue, verdict: "safe" | "unsafe"): Promise<void> {
  return writeVerdict(queue, doctorReport(queue, verdict));
}

/** This file's first real doctor report per endpoint, bucket and region (see {@link provenSafe}). */
const proven = new Map<string, Promise<DoctorReport>>();

/**
 * Make `queue`'s path proven safe, as doctor leaves it, for tests of what workers do rather than
 * of doctor: the first call per backend in a test file probes it for real (`requireSafeBackend`,
 * which stores its verdict, as a worker's start would), and later calls store that report's
 * verdict under their own prefix (one PUT) instead of probing the same bucket again: about a
 * second per test on MinIO. Memory and file storages need no proof; nothing is written for them.
 * Throws, as a worker's start would, when the backend is unsafe.
 */
export async function provenSafe(queue: Queue): Promise<void> {
  if (queue.storage.location?.local === true) return;
  const { driver, endpoint, bucket, region } = verdictPath(queue);
  const backend = JSON.stringify([driver, endpoint, bucket, region]);
  const first = proven.get(backend);
  if (first !== undefined) return writeVerdict(queue, await first);
  const probed = requireSafeBackend(queue, { force: true }).then((safe) => {
    if (safe.report === undefined) throw new Error("requireSafeBackend returned no report");
    return safe.report;
  });
  proven.set(backend, probed);
  await probed;
}
