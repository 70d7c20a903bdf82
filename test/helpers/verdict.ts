/**
 * Doctor's verdicts written straight into a queue, as doctor would leave them, for tests of what
 * workers do with a cached verdict (safe or unsafe) without running the probes.
 */
import type { DoctorReport } from "../../src/doctor/types.ts";
import { writeVerdict } from "../../src/doctor/verdict.ts";
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
