/**
 * `doctor`: prove that a backend really honours what oq relies on, before workers trust it.
 *
 * Some S3-compatible servers accept `If-None-Match` / `If-Match` and then ignore them, or list
 * stale results; on such a backend two workers can claim one task and nothing reports an error.
 * So doctor does not believe the documentation: in a scratch prefix
 * (`{prefix}_doctor/{random}/`, removed afterwards with all its versions when the storage can
 * delete versions) it checks
 *
 * - reachability, credentials, the bucket and its versioning;
 * - create-if-absent: a second `If-None-Match: *` PUT fails with 412 and changes nothing;
 * - compare-and-swap: `If-Match` with the current ETag succeeds, with a stale one fails, and on
 *   a missing key creates nothing;
 * - races: 16 concurrent conditional writers (creates, then swaps), several rounds, exactly one
 *   winner each, and the stored body is the winner's;
 * - list-after-write: a listing shows a write, an overwrite and a delete at once.
 *
 * Each check reports what was sent and what came back, and what to do when it fails. The
 * verdict (`safe` or `unsafe`) is cached in `{prefix}_doctor/verdict.json`, so
 * {@link requireSafeBackend} (called by `oq worker`) probes a bucket once a day, not on every
 * start.
 *
 * @module
 */
import {
  AmbiguousWriteError,
  ConflictError,
  isOqError,
  NotFoundError,
  OqError,
  PreconditionFailedError,
  UnavailableError,
  UnsafeBackendError,
} from "./errors.ts";
import type { Logger } from "./logger.ts";
import { internals } from "./queue/internals.ts";
import type { Queue } from "./queue/queue.ts";
import { type PutOptions, type PutResult, sameEtag } from "./storage/storage.ts";

/** The outcome of one check. */
export type CheckStatus = "ok" | "warn" | "failed" | "skipped";

/** The overall verdict: `error` when the probe could not run (unreachable, no permission). */
export type Verdict = "safe" | "unsafe" | "error";

/** One check of the report. */
export interface DoctorCheck {
  /** Stable id: `config`, `access`, `versioning`, `create-if-absent`, `compare-and-swap`, `create-race`, `cas-race`, `list-after-write`, `cleanup`. */
  id: string;
  /** What it checks, for people. */
  title: string;
  /** ok, warn (works, with a caveat), failed, or skipped (an earlier check failed). */
  status: CheckStatus;
  /** True when the failure shows the backend misbehaves (not merely that it was unreachable). */
  unsafe: boolean;
  /** What was sent and what came back, one line each. */
  evidence: string[];
  /** What to do about a failure or warning. */
  fix?: string;
  /** How long the check took, in ms. */
  durationMs: number;
}

/** What {@link runDoctor} returns. */
export interface DoctorReport {
  /** `safe` when no check failed; `unsafe` when the backend misbehaved; `error` when it could not be probed. */
  verdict: Verdict;
  /** The storage's name (`s3://bucket`, `file:./.oq`). */
  storage: string;
  /** The queue prefix. */
  prefix: string;
  /** The scratch prefix the probes wrote under. */
  scratch: string;
  /** When the probe ran (server time, ISO 8601). */
  checkedAt: string;
  /** Total time, in ms. */
  durationMs: number;
  /** Every check, in the order run. */
  checks: DoctorCheck[];
}

/** Options of {@link runDoctor}. */
export interface DoctorOptions {
  /** Concurrent writers in each race round. Default 16. */
  raceWriters?: number;
  /** Rounds of each race. Default 3. */
  raceRounds?: number;
  /** Store the verdict for {@link requireSafeBackend}. Default true. */
  writeVerdict?: boolean;
  /** Leave the scratch objects in place (to inspect them). Default false. */
  keepScratch?: boolean;
  /** Called as each check completes (the CLI prints a checklist as it goes). */
  onCheck?: (check: DoctorCheck) => void;
}

/** The cached verdict, stored at `{prefix}_doctor/verdict.json`. */
export interface CachedVerdict {
  /** Record format version. */
  oq: 1;
  /** The doctor protocol that produced it; a newer protocol does not trust older verdicts. */
  protocol: number;
  /** The verdict (only `safe` and `unsafe` are cached; `error` is transient). */
  verdict: "safe" | "unsafe";
  /** When the probe ran (server time, ISO 8601). */
  checkedAt: string;
  /** The storage's name when it ran. */
  storage: string;
  /** The checks that failed, with what to do. */
  failed: { id: string; title: string; fix?: string }[];
}

/** Options of {@link requireSafeBackend}. */
export interface RequireSafeOptions extends DoctorOptions {
  /** Probe again even when a fresh verdict is cached. */
  force?: boolean;
  /** A cached verdict older than this is probed again, in ms. Default 24 h. */
  maxAgeMs?: number;
  /** Where to report that a probe runs. Default: the queue's logger. */
  logger?: Logger;
}

/** What {@link requireSafeBackend} returns when the backend is safe. */
export interface SafeBackend {
  /** Always `safe` (anything else throws). */
  verdict: "safe";
  /** When it was established (ISO 8601). */
  checkedAt: string;
  /** True when a cached verdict was used and no probe ran. */
  cached: boolean;
  /** The report, when a probe ran. */
  report?: DoctorReport;
}

/** Bumped whenever doctor checks something new, so older cached verdicts are probed again. */
export const DOCTOR_PROTOCOL = 1;

/** Default lifetime of a cached verdict: a day. */
export const DEFAULT_VERDICT_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** The prefix doctor writes under, inside the queue's prefix. */
export function doctorPrefix(queue: Queue): string {
  return `${queue.keys.prefix}_doctor/`;
}

/** The key of the cached verdict. */
export function verdictKey(queue: Queue): string {
  return `${doctorPrefix(queue)}verdict.json`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The error behind an `error` verdict, kept out of the JSON report. */
const causes = new WeakMap<DoctorReport, unknown>();

/** The outcome of one storage call, with a line of evidence. */
type Outcome<T> =
  | { ok: true; value: T; line: string }
  | { ok: false; error: unknown; line: string };

/** HTTP statuses of the error codes that have one, for drivers that do not set `status`. */
const STATUS_OF: Partial<Record<string, number>> = {
  PRECONDITION_FAILED: 412,
  NOT_FOUND: 404,
  CONFLICT: 409,
  ACCESS_DENIED: 403,
  THROTTLED: 503,
};

/** `412 PreconditionFailed`, `404 NoSuchKey`, `UnavailableError: ...`: what came back. */
function describeError(error: unknown): string {
  if (error instanceof OqError) {
    const status = error.status ?? STATUS_OF[error.code];
    const what = error.s3Code ?? error.name.replace(/Error$/, "");
    const line = status === undefined ? `${what}: ${error.message}` : `${status} ${what}`;
    return line;
  }
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

function headerText(options: PutOptions): string {
  if (options.ifNoneMatch !== undefined) return ` If-None-Match: ${options.ifNoneMatch}`;
  if (options.ifMatch !== undefined) return ` If-Match: ${options.ifMatch}`;
  return "";
}

/** True for errors that say nothing about the backend's semantics (it was unreachable, slow). */
function inconclusive(error: unknown): boolean {
  return (
    isOqError(error, "UNAVAILABLE") ||
    isOqError(error, "THROTTLED") ||
    isOqError(error, "ACCESS_DENIED") ||
    isOqError(error, "CONFIG") ||
    isOqError(error, "TIMEOUT") ||
    (isOqError(error, "STORAGE") && ((error as OqError).status ?? 0) >= 500)
  );
}

/** Raised inside a check to end it as failed. */
class CheckFailed extends Error {
  /** True when the failure shows misbehaviour, false when the check could not complete. */
  readonly unsafe: boolean;
  /** What to do. */
  readonly fix: string;
  /** The storage error behind an inconclusive failure. */
  readonly origin: unknown;

  constructor(message: string, unsafe: boolean, fix: string, origin?: unknown) {
    super(message);
    this.unsafe = unsafe;
    this.fix = fix;
    this.origin = origin;
  }
}

/** The probes, over one queue's storage and one scratch prefix. */
class Probe {
  readonly queue: Queue;
  readonly scratch: string;
  #n = 0;

  constructor(queue: Queue, scratch: string) {
    this.queue = queue;
    this.scratch = scratch;
  }

  key(name: string): string {
    return `${this.scratch}${name}`;
  }

  /** A body no other write of this run has, so equal ETags mean the same write. */
  body(label: string): string {
    return `oq doctor ${label} #${++this.#n} ${internals(this.queue).randomHex(16)}\n`;
  }

  async put(key: string, body: string, options: PutOptions = {}): Promise<Outcome<PutResult>> {
    const sent = `PUT ${key}${headerText(options)}`;
    try {
      const value = await this.queue.storage.put(key, encoder.encode(body), {
        ...options,
        contentType: "text/plain",
      });
      return { ok: true, value, line: `${sent} -> 200 ETag ${value.etag}` };
    } catch (error) {
      return { ok: false, error, line: `${sent} -> ${describeError(error)}` };
    }
  }

  async get(key: string): Promise<Outcome<{ body: string; etag: string } | undefined>> {
    try {
      const got = await this.queue.storage.get(key);
      const body = decoder.decode(got.body);
      return {
        ok: true,
        value: { body, etag: got.etag },
        line: `GET ${key} -> 200 ETag ${got.etag} body ${JSON.stringify(body.trim())}`,
      };
    } catch (error) {
      if (error instanceof NotFoundError) {
        return { ok: true, value: undefined, line: `GET ${key} -> 404 (absent)` };
      }
      return { ok: false, error, line: `GET ${key} -> ${describeError(error)}` };
    }
  }
}

function bail(outcome: { ok: false; error: unknown }, what: string): never {
  const error = outcome.error;
  if (inconclusive(error)) {
    throw new CheckFailed(
      `${what} could not be completed: ${describeError(error)}`,
      false,
      "The storage failed for a reason unrelated to conditional writes; check connectivity and permissions, then run oq doctor again.",
      error,
    );
  }
  throw new CheckFailed(
    `${what} failed unexpectedly: ${describeError(error)}`,
    true,
    "The backend rejected a request that S3 accepts; it does not implement conditional writes as S3 does. Use AWS S3, Cloudflare R2, a recent MinIO, Ceph RGW or Tigris.",
    error,
  );
}

const FIX_IF_NONE_MATCH =
  "The backend ignores or mishandles If-None-Match: * (create-if-absent), so two submitters or workers could overwrite each other. Use a backend that supports conditional writes (AWS S3, Cloudflare R2, MinIO since 2024, Ceph RGW, Tigris); Garage and GCS's XML API do not.";
const FIX_IF_MATCH =
  "The backend ignores or mishandles If-Match (compare-and-swap), so two workers could claim the same task. Use a backend that supports conditional writes (AWS S3, Cloudflare R2, recent MinIO, Ceph RGW, Tigris). On an older Ceph RGW, upgrade: it compared quoted ETags wrongly.";
const FIX_RACE =
  "Concurrent conditional writes had more or fewer than one winner, so the backend does not serialize them: tasks could run twice. Use a strongly consistent backend with real conditional writes (AWS S3, Cloudflare R2, MinIO, Ceph RGW, Tigris).";
const FIX_LIST =
  "Listings lag behind writes, so workers would miss ready tasks or see finished ones. Use a strongly consistent backend (AWS S3, R2, MinIO); on Tigris, make the bucket strongly consistent (single region or the consistency header).";

async function checkCreateIfAbsent(p: Probe, evidence: string[]): Promise<void> {
  const key = p.key("create-if-absent");
  const first = p.body("create A");
  const a = await p.put(key, first, { ifNoneMatch: "*" });
  evidence.push(a.line);
  if (!a.ok) {
    if (a.error instanceof PreconditionFailedError) {
      throw new CheckFailed(
        "If-None-Match: * on a fresh random key was refused with 412: the condition is evaluated wrongly.",
        true,
        FIX_IF_NONE_MATCH,
      );
    }
    bail(a, "Creating a fresh key with If-None-Match: *");
  }
  let second = await p.put(key, p.body("create B"), { ifNoneMatch: "*" });
  // 409 means "a concurrent operation interfered": nothing else runs here, so try again.
  for (let i = 0; i < 3 && !second.ok && second.error instanceof ConflictError; i++) {
    evidence.push(second.line);
    second = await p.put(key, p.body("create B"), { ifNoneMatch: "*" });
  }
  evidence.push(`${second.line} (expected 412)`);
  if (second.ok) {
    throw new CheckFailed(
      "A second If-None-Match: * PUT on an existing key succeeded: the backend ignores create-if-absent.",
      true,
      FIX_IF_NONE_MATCH,
    );
  }
  if (!(second.error instanceof PreconditionFailedError)) {
    bail(second, "The second If-None-Match: * PUT");
  }
  const read = await p.get(key);
  evidence.push(read.line);
  if (!read.ok) bail(read, "Reading the object back");
  if (read.value?.body !== first) {
    throw new CheckFailed(
      "The second If-None-Match: * PUT answered 412 but changed the object anyway.",
      true,
      FIX_IF_NONE_MATCH,
    );
  }
}

async function checkCompareAndSwap(p: Probe, evidence: string[]): Promise<void> {
  const key = p.key("compare-and-swap");
  const v1 = await p.put(key, p.body("v1"));
  evidence.push(v1.line);
  if (!v1.ok) bail(v1, "An unconditional PUT");
  const v2body = p.body("v2");
  const v2 = await p.put(key, v2body, { ifMatch: v1.value.etag });
  evidence.push(`${v2.line} (current ETag: expected 200)`);
  if (!v2.ok) {
    if (v2.error instanceof PreconditionFailedError) {
      throw new CheckFailed(
        `If-Match with the current ETag ${v1.value.etag} (sent back exactly as received) was refused with 412.`,
        true,
        FIX_IF_MATCH,
      );
    }
    bail(v2, "If-Match with the current ETag");
  }
  const stale = await p.put(key, p.body("v3"), { ifMatch: v1.value.etag });
  evidence.push(`${stale.line} (stale ETag: expected 412)`);
  if (stale.ok) {
    throw new CheckFailed(
      "If-Match with a stale ETag succeeded: the backend ignores compare-and-swap.",
      true,
      FIX_IF_MATCH,
    );
  }
  if (!(stale.error instanceof PreconditionFailedError || stale.error instanceof ConflictError)) {
    bail(stale, "If-Match with a stale ETag");
  }
  const read = await p.get(key);
  evidence.push(read.line);
  if (!read.ok) bail(read, "Reading the object back");
  if (read.value?.body !== v2body) {
    throw new CheckFailed(
      "After a refused stale If-Match, the object does not hold the last accepted write: the refused write landed, or the read is stale.",
      true,
      FIX_IF_MATCH,
    );
  }
  if (!sameEtag(read.value.etag, v2.value.etag)) {
    throw new CheckFailed(
      `GET returned ETag ${read.value.etag} but the PUT that wrote this body returned ${v2.value.etag}.`,
      true,
      FIX_IF_MATCH,
    );
  }
  // The ETag of a GET must work as well as the ETag of a PUT (the worker uses both).
  const v4 = await p.put(key, p.body("v4"), { ifMatch: read.value.etag });
  evidence.push(`${v4.line} (ETag from GET: expected 200)`);
  if (!v4.ok) {
    if (v4.error instanceof PreconditionFailedError) {
      throw new CheckFailed(
        `If-Match with the ETag a GET returned (${read.value.etag}) was refused with 412.`,
        true,
        FIX_IF_MATCH,
      );
    }
    bail(v4, "If-Match with the ETag from a GET");
  }
  const missing = p.key("if-match-missing");
  const m = await p.put(missing, p.body("missing"), { ifMatch: v4.value.etag });
  evidence.push(`${m.line} (missing key: expected 404 or 412)`);
  if (m.ok) {
    throw new CheckFailed(
      "If-Match on a missing key created it: the backend ignores If-Match.",
      true,
      FIX_IF_MATCH,
    );
  }
  if (!(m.error instanceof NotFoundError || m.error instanceof PreconditionFailedError)) {
    bail(m, "If-Match on a missing key");
  }
  const after = await p.get(missing);
  evidence.push(after.line);
  if (!after.ok) bail(after, "Reading the missing key");
  if (after.value !== undefined) {
    throw new CheckFailed(
      "If-Match on a missing key answered an error but created the object anyway.",
      true,
      FIX_IF_MATCH,
    );
  }
}

/** One race round: `writers` concurrent conditional PUTs of distinct bodies on one key. */
async function race(
  p: Probe,
  key: string,
  writers: number,
  options: PutOptions,
  evidence: string[],
  label: string,
): Promise<boolean> {
  const bodies = Array.from({ length: writers }, (_, i) => p.body(`${label} writer ${i}`));
  const results = await Promise.all(bodies.map((b) => p.put(key, b, options)));
  const won: number[] = [];
  const lost: number[] = [];
  const ambiguous: number[] = [];
  for (const [i, r] of results.entries()) {
    if (r.ok) won.push(i);
    else if (r.error instanceof PreconditionFailedError || r.error instanceof ConflictError)
      lost.push(i);
    else if (r.error instanceof AmbiguousWriteError) ambiguous.push(i);
    else bail(r, `Writer ${i} of the ${label}`);
  }
  const read = await p.get(key);
  if (!read.ok) bail(read, `Reading the ${label} result`);
  const stored = read.value === undefined ? -1 : bodies.indexOf(read.value.body);
  // An ambiguous answer is settled by the stored body: that writer won if its body is there.
  for (const i of ambiguous) if (i === stored) won.push(i);
  const statusCounts = new Map<string, number>();
  for (const r of results) {
    const s = r.line.slice(r.line.indexOf("-> ") + 3).replace(/ ETag .*/, "");
    statusCounts.set(s, (statusCounts.get(s) ?? 0) + 1);
  }
  const summary = [...statusCounts].map(([s, n]) => `${n}x ${s}`).join(", ");
  evidence.push(
    `${writers} concurrent PUT ${key}${headerText(options)} -> ${summary}; winners: ${won.length}; stored body: ${stored === -1 ? (read.value === undefined ? "absent" : "foreign") : `writer ${stored}`}`,
  );
  if (won.length > 1) {
    throw new CheckFailed(
      `${won.length} of ${writers} concurrent conditional writers were told they won (writers ${won.join(", ")}): the backend does not enforce the condition under concurrency.`,
      true,
      FIX_RACE,
    );
  }
  if (won.length === 1 && stored !== won[0]) {
    throw new CheckFailed(
      `Writer ${won[0]} won, but the object holds ${stored === -1 ? "another body" : `writer ${stored}'s body`}: a write reported as lost landed.`,
      true,
      FIX_RACE,
    );
  }
  if (won.length === 0 && stored !== -1) {
    throw new CheckFailed(
      `Every writer was told it lost, but the object holds writer ${stored}'s body: a won write was reported as 412 (a client retrying a committed write does this).`,
      true,
      FIX_RACE,
    );
  }
  if (won.length === 0) {
    const conflicts = results.some((r) => !r.ok && r.error instanceof ConflictError);
    if (!conflicts) {
      throw new CheckFailed(
        `All ${writers} writers were refused with 412 although the condition held for the first of them: the backend evaluates the condition wrongly.`,
        true,
        FIX_RACE,
      );
    }
    return false;
  }
  return true;
}

function noWinner(): CheckFailed {
  return new CheckFailed(
    "Twice in a row every concurrent writer was refused with 409 and nobody won: the race could not be decided.",
    false,
    "Run oq doctor again; if it keeps happening, the backend cannot settle concurrent conditional writes and is unfit for oq.",
  );
}

async function checkCreateRace(
  p: Probe,
  writers: number,
  rounds: number,
  evidence: string[],
): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const key = p.key(`create-race-${r}`);
    const options: PutOptions = { ifNoneMatch: "*" };
    if (!(await race(p, key, writers, options, evidence, `create race ${r + 1}`))) {
      // Every writer got 409 and nothing was written: inconclusive, not unsafe. Once more.
      if (!(await race(p, key, writers, options, evidence, `create race ${r + 1} (again)`))) {
        throw noWinner();
      }
    }
  }
}

async function checkCasRace(
  p: Probe,
  writers: number,
  rounds: number,
  evidence: string[],
): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const key = p.key(`cas-race-${r}`);
    const base = await p.put(key, p.body(`cas race ${r + 1} base`));
    if (!base.ok) bail(base, "Writing the race's base version");
    evidence.push(base.line);
    const options: PutOptions = { ifMatch: base.value.etag };
    if (!(await race(p, key, writers, options, evidence, `swap race ${r + 1}`))) {
      if (!(await race(p, key, writers, options, evidence, `swap race ${r + 1} (again)`))) {
        throw noWinner();
      }
    }
  }
}

async function checkListAfterWrite(p: Probe, evidence: string[]): Promise<void> {
  const key = p.key("list-after-write");
  const listed = async (): Promise<string | undefined> => {
    try {
      const page = await p.queue.storage.list({ prefix: key, maxKeys: 10 });
      const found = page.objects.find((o) => o.key === key);
      evidence.push(
        `LIST prefix=${key} -> ${found === undefined ? "absent" : `present, ETag ${found.etag}`}`,
      );
      return found?.etag;
    } catch (error) {
      const line = `LIST prefix=${key} -> ${describeError(error)}`;
      evidence.push(line);
      bail({ ok: false, error }, "Listing");
    }
  };
  const w1 = await p.put(key, p.body("listed 1"));
  evidence.push(w1.line);
  if (!w1.ok) bail(w1, "A PUT");
  const e1 = await listed();
  if (e1 === undefined) {
    throw new CheckFailed(
      "An object written a moment ago is missing from the listing.",
      true,
      FIX_LIST,
    );
  }
  const w2 = await p.put(key, p.body("listed 2"));
  evidence.push(w2.line);
  if (!w2.ok) bail(w2, "An overwrite");
  const e2 = await listed();
  if (e2 === undefined || !sameEtag(e2, w2.value.etag)) {
    throw new CheckFailed(
      `After an overwrite the listing shows ${e2 === undefined ? "no object" : `the old ETag ${e2}`} instead of ${w2.value.etag}.`,
      true,
      FIX_LIST,
    );
  }
  try {
    await p.queue.storage.delete(key);
    evidence.push(`DELETE ${key} -> 204`);
  } catch (error) {
    evidence.push(`DELETE ${key} -> ${describeError(error)}`);
    bail({ ok: false, error }, "A DELETE");
  }
  if ((await listed()) !== undefined) {
    throw new CheckFailed("A deleted object still shows in the listing.", true, FIX_LIST);
  }
}

/** Remove every object and (when the storage can) every version under the scratch prefix. */
async function cleanup(p: Probe, evidence: string[]): Promise<void> {
  const storage = p.queue.storage;
  let deleted = 0;
  let token: string | undefined;
  for (;;) {
    const page = await storage.list({
      prefix: p.scratch,
      ...(token === undefined ? {} : { continuationToken: token }),
    });
    await Promise.all(page.objects.map((o) => storage.delete(o.key)));
    deleted += page.objects.length;
    if (!page.isTruncated) break;
    token = page.nextContinuationToken;
  }
  evidence.push(`deleted ${deleted} object(s) under ${p.scratch}`);
  if (storage.deleteVersion === undefined) {
    evidence.push("the storage cannot delete versions; delete markers and old versions remain");
    return;
  }
  let removed = 0;
  for (let pass = 0; pass < 3; pass++) {
    // Deleting versions changes the listing, so start over from the top until none is left.
    const page = await storage.listVersions({ prefix: p.scratch });
    if (page.versions.length === 0) break;
    await Promise.all(page.versions.map((v) => storage.deleteVersion!(v.key, v.versionId)));
    removed += page.versions.length;
    if (!page.isTruncated) break;
  }
  evidence.push(`removed ${removed} version(s) and delete marker(s)`);
}

/**
 * Probe the queue's backend and return a report (it never throws for a failed check; it throws
 * only when its own arguments are wrong). Writes the verdict for {@link requireSafeBackend}
 * unless `writeVerdict` is false or the verdict is `error`.
 */
export async function runDoctor(queue: Queue, options: DoctorOptions = {}): Promise<DoctorReport> {
  const writers = options.raceWriters ?? 16;
  const rounds = options.raceRounds ?? 3;
  const startLocal = queue.clock.localNow();
  const scratch = `${doctorPrefix(queue)}${internals(queue).randomHex(16)}/`;
  const probe = new Probe(queue, scratch);
  const checks: DoctorCheck[] = [];
  let cause: unknown;
  let blocked = false;

  const run = async (
    id: string,
    title: string,
    body: (evidence: string[]) => Promise<undefined | { status: "warn"; fix: string }>,
    opts: { always?: boolean } = {},
  ): Promise<DoctorCheck> => {
    const started = queue.clock.localNow();
    const evidence: string[] = [];
    let check: DoctorCheck;
    if (blocked && !opts.always) {
      check = { id, title, status: "skipped", unsafe: false, evidence, durationMs: 0 };
    } else {
      try {
        const outcome = await body(evidence);
        check = {
          id,
          title,
          status: outcome?.status ?? "ok",
          unsafe: false,
          evidence,
          ...(outcome === undefined ? {} : { fix: outcome.fix }),
          durationMs: queue.clock.localNow() - started,
        };
      } catch (error) {
        const failed =
          error instanceof CheckFailed
            ? error
            : new CheckFailed(
                `Unexpected error: ${describeError(error)}`,
                false,
                "Run oq doctor again; if it persists, report it with this output.",
                error,
              );
        evidence.push(failed.message);
        if (!failed.unsafe && cause === undefined) cause = failed.origin ?? error;
        check = {
          id,
          title,
          status: "failed",
          unsafe: failed.unsafe,
          evidence,
          fix: failed.fix,
          durationMs: queue.clock.localNow() - started,
        };
      }
    }
    checks.push(check);
    options.onCheck?.(check);
    return check;
  };

  await run("config", "Configuration", async (evidence) => {
    evidence.push(`storage: ${queue.storage.name}`);
    evidence.push(`queue prefix: ${JSON.stringify(queue.keys.prefix)}`);
    evidence.push(`scratch prefix: ${scratch}`);
    return undefined;
  });

  const access = await run("access", "Connectivity, credentials and bucket", async (evidence) => {
    try {
      const page = await queue.storage.list({ prefix: doctorPrefix(queue), maxKeys: 1 });
      evidence.push(
        `LIST prefix=${doctorPrefix(queue)} max-keys=1 -> 200 (${page.objects.length} object(s))`,
      );
    } catch (error) {
      evidence.push(`LIST prefix=${doctorPrefix(queue)} max-keys=1 -> ${describeError(error)}`);
      throw new CheckFailed(accessProblem(error), false, accessFix(error), error);
    }
    const offset = queue.clock.offsetMs();
    evidence.push(
      `server clock ${offset >= 0 ? "+" : ""}${Math.round(offset / 1000)}s from the local clock (oq uses the server's)`,
    );
    return undefined;
  });
  blocked = access.status === "failed";

  await run("versioning", "Bucket versioning (task history)", async (evidence) => {
    try {
      const status = await queue.storage.versioning();
      evidence.push(`GET ?versioning -> ${status}`);
      if (status !== "Enabled") {
        return {
          status: "warn",
          fix: `Versioning is ${status}: task history is unavailable and connect() refuses the bucket unless OQ_ALLOW_NO_VERSIONING=1. Enable it: aws s3api put-bucket-versioning --bucket <bucket> --versioning-configuration Status=Enabled`,
        };
      }
      return undefined;
    } catch (error) {
      evidence.push(`GET ?versioning -> ${describeError(error)}`);
      if (isOqError(error, "ACCESS_DENIED")) {
        return {
          status: "warn",
          fix: "The credentials may not read the bucket's versioning (s3:GetBucketVersioning); grant it so oq can check that history is kept.",
        };
      }
      throw error;
    }
  });

  await run("create-if-absent", "Create-if-absent (If-None-Match: *)", (e) =>
    checkCreateIfAbsent(probe, e).then(() => undefined),
  );
  await run("compare-and-swap", "Compare-and-swap (If-Match)", (e) =>
    checkCompareAndSwap(probe, e).then(() => undefined),
  );
  await run(
    "create-race",
    `${writers} concurrent creators, ${rounds} rounds: exactly one winner`,
    (e) => checkCreateRace(probe, writers, rounds, e).then(() => undefined),
  );
  await run(
    "cas-race",
    `${writers} concurrent swappers, ${rounds} rounds: exactly one winner`,
    (e) => checkCasRace(probe, writers, rounds, e).then(() => undefined),
  );
  await run("list-after-write", "List-after-write consistency", (e) =>
    checkListAfterWrite(probe, e).then(() => undefined),
  );
  if (!options.keepScratch && !blocked) {
    await run(
      "cleanup",
      "Scratch objects removed",
      async (evidence) => {
        try {
          await cleanup(probe, evidence);
          return undefined;
        } catch (error) {
          evidence.push(`cleanup failed: ${describeError(error)}`);
          return {
            status: "warn",
            fix: `Delete the objects under ${scratch} by hand; they are not used by the queue.`,
          };
        }
      },
      { always: true },
    );
  }

  const failed = checks.filter((c) => c.status === "failed");
  const verdict: Verdict = failed.some((c) => c.unsafe)
    ? "unsafe"
    : failed.length > 0
      ? "error"
      : "safe";
  const report: DoctorReport = {
    verdict,
    storage: queue.storage.name,
    prefix: queue.keys.prefix,
    scratch,
    checkedAt: new Date(queue.now()).toISOString(),
    durationMs: queue.clock.localNow() - startLocal,
    checks,
  };
  if (cause !== undefined) causes.set(report, cause);
  if (verdict !== "error" && options.writeVerdict !== false) {
    await writeVerdict(queue, report);
  }
  return report;
}

function accessProblem(error: unknown): string {
  if (isOqError(error, "UNAVAILABLE")) return "The storage could not be reached.";
  if (isOqError(error, "ACCESS_DENIED")) return "The credentials were refused or lack permission.";
  if (isOqError(error, "NOT_FOUND")) return "The bucket does not exist.";
  if (isOqError(error, "CONFIG")) return "The configuration is unusable.";
  return `The storage answered an error: ${describeError(error)}`;
}

function accessFix(error: unknown): string {
  if (isOqError(error, "UNAVAILABLE")) {
    return "Check OQ_ENDPOINT (scheme, host, port), the network and that the server is running.";
  }
  if (isOqError(error, "ACCESS_DENIED")) {
    return "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), OQ_REGION, and that the key may GET, PUT, DELETE and LIST in the bucket.";
  }
  if (isOqError(error, "NOT_FOUND")) {
    return "Check OQ_BUCKET, or create the bucket (aws s3 mb s3://<bucket>) with versioning enabled.";
  }
  return "Check the OQ_* settings (oq --help lists them).";
}

async function writeVerdict(queue: Queue, report: DoctorReport): Promise<void> {
  const cached: CachedVerdict = {
    oq: 1,
    protocol: DOCTOR_PROTOCOL,
    verdict: report.verdict === "unsafe" ? "unsafe" : "safe",
    checkedAt: report.checkedAt,
    storage: report.storage,
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

/** The cached verdict, or `undefined` when there is none (or it is unreadable). */
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
      !Array.isArray(v.failed)
    ) {
      return undefined;
    }
    return v as CachedVerdict;
  } catch {
    return undefined;
  }
}

function unsafeError(queue: Queue, failed: CachedVerdict["failed"], checkedAt: string): never {
  const list = failed.map((f) => f.title).join("; ");
  throw new UnsafeBackendError(
    `${queue.storage.name} is not safe for oq (doctor, ${checkedAt}): failed ${list}. Run oq doctor for the evidence and what to do; after fixing the backend, oq doctor stores a new verdict. Only skip this check (--skip-doctor) if you know the backend is safe.`,
    { key: verdictKey(queue) },
  );
}

/**
 * Make sure the backend was proven safe: use a cached verdict younger than `maxAgeMs` (default a
 * day), else run doctor (which caches its verdict). Throws `UnsafeBackendError` when the backend
 * failed, and the underlying typed error (`UnavailableError`, `AccessDeniedError`, ...) when it
 * could not be probed. `force` probes again even with a fresh verdict.
 */
export async function requireSafeBackend(
  queue: Queue,
  options: RequireSafeOptions = {},
): Promise<SafeBackend> {
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_VERDICT_MAX_AGE_MS;
  if (!options.force) {
    const cached = await readVerdict(queue);
    const age =
      cached === undefined ? Number.POSITIVE_INFINITY : queue.now() - Date.parse(cached.checkedAt);
    if (
      cached !== undefined &&
      cached.protocol === DOCTOR_PROTOCOL &&
      age <= maxAgeMs &&
      age > -maxAgeMs
    ) {
      if (cached.verdict === "unsafe") unsafeError(queue, cached.failed, cached.checkedAt);
      return { verdict: "safe", checkedAt: cached.checkedAt, cached: true };
    }
  }
  const logger = options.logger ?? queue.logger;
  logger.info(`checking that ${queue.storage.name} honours conditional writes (oq doctor)`);
  const report = await runDoctor(queue, options);
  if (report.verdict === "unsafe") {
    unsafeError(
      queue,
      report.checks.filter((c) => c.status === "failed"),
      report.checkedAt,
    );
  }
  if (report.verdict === "error") {
    const cause = causes.get(report);
    if (cause instanceof OqError) throw cause;
    const failed = report.checks.find((c) => c.status === "failed");
    throw new UnavailableError(
      `Could not check ${queue.storage.name}: ${failed?.evidence.at(-1) ?? "unknown error"}. ${failed?.fix ?? ""}`.trim(),
      { cause },
    );
  }
  return { verdict: "safe", checkedAt: report.checkedAt, cached: false, report };
}
