/**
 * The cached verdict: one object per path the probe's requests took
 * (`{prefix}_doctor/verdict-{hash}.json`), so a client on another path (a gateway, another
 * endpoint or region) neither trusts nor overwrites it.
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import type { Storage } from "../storage/storage.ts";
import { describeError } from "./probe.ts";
import {
  type CachedVerdict,
  DOCTOR_PROTOCOL,
  type DoctorReport,
  type VerdictPath,
} from "./types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The prefix doctor writes under, inside the queue's prefix. */
export function doctorPrefix(queue: Queue): string {
  return `${queue.keys.prefix}_doctor/`;
}

/** The path a queue's requests take, as its verdict records it. */
export function verdictPath(queue: Queue): VerdictPath {
  const storage: Storage = queue.storage;
  const at = storage.location;
  return {
    driver: at?.driver ?? "unknown",
    endpoint: at?.endpoint ?? storage.name,
    bucket: at?.bucket ?? storage.name,
    region: at?.region ?? "",
    prefix: queue.keys.prefix,
  };
}

function samePath(a: VerdictPath, b: VerdictPath): boolean {
  return (
    a.driver === b.driver &&
    a.endpoint === b.endpoint &&
    a.bucket === b.bucket &&
    a.region === b.region &&
    a.prefix === b.prefix
  );
}

/** 64-bit FNV-1a as 16 hex digits: a short stable key name (the record holds the full path). */
function pathHash(path: VerdictPath): string {
  const text = JSON.stringify([path.driver, path.endpoint, path.bucket, path.region, path.prefix]);
  let hash = 0xcbf29ce484222325n;
  for (const byte of encoder.encode(text)) {
    hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n);
  }
  return hash.toString(16).padStart(16, "0");
}

/**
 * The key of the cached verdict for the path this queue's requests take: one object per path,
 * so clients on different paths to one bucket keep their own verdicts instead of trusting (or
 * overwriting) each other's.
 */
export function verdictKey(queue: Queue): string {
  return `${doctorPrefix(queue)}verdict-${pathHash(verdictPath(queue))}.json`;
}

export async function writeVerdict(queue: Queue, report: DoctorReport): Promise<void> {
  const cached: CachedVerdict = {
    oq: 1,
    protocol: DOCTOR_PROTOCOL,
    verdict: report.verdict === "unsafe" ? "unsafe" : "safe",
    checkedAt: report.checkedAt,
    storage: report.storage,
    path: verdictPath(queue),
    failed: report.checks
      .filter((c) => c.status === "failed")
      .map((c) => ({ id: c.id, title: c.title, ...(c.fix === undefined ? {} : { fix: c.fix }) })),
  };
  try {
    await queue.storage.put(verdictKey(queue), encoder.encode(`${JSON.stringify(cached)}\n`), {
      contentType: "application/json",
    });
  } catch (error) {
    // The verdict is a cache: without it the next worker start probes again.
    queue.logger.warn(
      `could not store the doctor verdict at ${verdictKey(queue)}: ${describeError(error)}`,
    );
  }
}

/**
 * The cached verdict for the path this queue's requests take, or `undefined` when there is none
 * (or it is unreadable, or it was proven over another path).
 */
export async function readVerdict(queue: Queue): Promise<CachedVerdict | undefined> {
  let text: string;
  try {
    text = decoder.decode((await queue.storage.get(verdictKey(queue))).body);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
  try {
    const v = JSON.parse(text) as Partial<CachedVerdict>;
    if (
      v.oq !== 1 ||
      typeof v.protocol !== "number" ||
      (v.verdict !== "safe" && v.verdict !== "unsafe") ||
      typeof v.checkedAt !== "string" ||
      Number.isNaN(Date.parse(v.checkedAt)) ||
      !Array.isArray(v.failed) ||
      typeof v.path !== "object" ||
      v.path === null ||
      !samePath(v.path, verdictPath(queue))
    ) {
      return undefined;
    }
    return v as CachedVerdict;
  } catch {
    return undefined;
  }
}
