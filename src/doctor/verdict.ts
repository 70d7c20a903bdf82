/**
 * The cached verdict: one object per path the probe's requests took
 * (`{prefix}_doctor/verdict-{hash}.json`), so a client on another path (a gateway, another
 * endpoint or region) neither trusts nor overwrites it.
 *
 * @module
 */
import type { Queue } from "../queue/queue.ts";
import type { Storage } from "../storage/storage.ts";
import { DocumentStore } from "../store/documents.ts";
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

/**
 * Verdicts as conditional documents. A stored verdict that is unreadable, of another protocol
 * shape, or proven over another path parses as `null`: it is no verdict for this client, and
 * the next probe replaces it.
 */
function verdictStore(queue: Queue): DocumentStore<CachedVerdict | null> {
  const path = verdictPath(queue);
  return new DocumentStore<CachedVerdict | null>(queue.storage, {
    parse: (body) => parseVerdict(body, path),
    encode: (verdict) => encoder.encode(`${JSON.stringify(verdict)}\n`),
  });
}

function parseVerdict(body: Uint8Array, path: VerdictPath): CachedVerdict | null {
  try {
    const v = JSON.parse(decoder.decode(body)) as Partial<CachedVerdict>;
    const valid =
      v.oq === 1 &&
      typeof v.protocol === "number" &&
      (v.verdict === "safe" || v.verdict === "unsafe") &&
      typeof v.checkedAt === "string" &&
      !Number.isNaN(Date.parse(v.checkedAt)) &&
      Array.isArray(v.failed) &&
      typeof v.path === "object" &&
      v.path !== null &&
      samePath(v.path, path);
    return valid ? (v as CachedVerdict) : null;
  } catch {
    return null;
  }
}

/**
 * Store a probe's verdict for the path it proved, through the document store (a conditional
 * write over whatever verdict is there, never a blind overwrite). A failure is only logged: the
 * verdict is a cache, and without it the next worker start probes again.
 */
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
    await verdictStore(queue).put(verdictKey(queue), cached);
  } catch (error) {
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
  return (await verdictStore(queue).read(verdictKey(queue)))?.value ?? undefined;
}
