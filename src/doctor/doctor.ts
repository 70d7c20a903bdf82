/**
 * The public `runDoctor`. The probes (run.ts and the checks it runs) load on its first call, not
 * when `oq` is imported: a worker's tasks module imports `oq`, and every start of `oq worker`
 * compiled the probes it almost never runs (a start usually finds a cached verdict), about 7 ms
 * of a start on Node 20 (issue 15).
 *
 * @module
 */
import type { Queue } from "../queue/queue.ts";
import type { DoctorOptions, DoctorReport } from "./types.ts";

/**
 * Probe the queue's backend and return a report (it never throws for a failed check; it throws
 * only when its own arguments are wrong). Writes the verdict for `requireSafeBackend` unless
 * `writeVerdict` is false or the verdict is `error`.
 */
export async function runDoctor(queue: Queue, options: DoctorOptions = {}): Promise<DoctorReport> {
  const probes = await import("./run.ts");
  return probes.runDoctor(queue, options);
}
