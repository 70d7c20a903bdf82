/**
 * The shapes doctor reports and caches, and its constants.
 *
 * @module
 */

import type { Logger } from "../logger.ts";
import type { BackendProvider } from "./advice.ts";

/** The outcome of one check. */
export type CheckStatus = "ok" | "warn" | "failed" | "skipped";

/** The overall verdict: `error` when the probe could not run (unreachable, no permission). */
export type Verdict = "safe" | "unsafe" | "error";

/** One check of the report. */
export interface DoctorCheck {
  /** Stable id: `config`, `access`, `versioning`, `lifecycle` (storages with lifecycle rules only), `create-if-absent`, `compare-and-swap`, `create-race`, `cas-race`, `list-after-write`, `cleanup`. */
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
  /** The backends `fix` recommends moving to; never the provider that was probed. */
  alternatives?: BackendProvider[];
  /** How long the check took, in ms. */
  durationMs: number;
}

/** What `runDoctor` returns. */
export interface DoctorReport {
  /** `safe` when no check failed; `unsafe` when the backend misbehaved; `error` when it could not be probed. */
  verdict: Verdict;
  /** The storage's name (`s3://bucket`, `file:./.oq`). */
  storage: string;
  /** The queue prefix. */
  prefix: string;
  /** The backend probed, as recognised from its endpoint and answers (`unknown` if it could not tell). */
  provider: BackendProvider;
  /** The scratch prefix the probes wrote under. */
  scratch: string;
  /** When the probe ran (server time, ISO 8601). */
  checkedAt: string;
  /** Total time, in ms. */
  durationMs: number;
  /** Every check, in the order run. */
  checks: DoctorCheck[];
}

/** Options of `runDoctor`. */
export interface DoctorOptions {
  /** Concurrent writers in each race round. Default 16. */
  raceWriters?: number;
  /** Rounds of each race. Default 3. */
  raceRounds?: number;
  /** Store the verdict for `requireSafeBackend`. Default true. */
  writeVerdict?: boolean;
  /** Leave the scratch objects in place (to inspect them). Default false. */
  keepScratch?: boolean;
  /** Called as each check completes (the CLI prints a checklist as it goes). */
  onCheck?: (check: DoctorCheck) => void;
  /** The backend probed, when known better than doctor can recognise it; fits the advice. */
  provider?: BackendProvider;
  /**
   * Check that the bucket's lifecycle rules expire the queue's old versions and delete markers
   * (a warning when they do not; storages with lifecycle rules only). Default true;
   * `requireSafeBackend` turns it off: it is advice for the operator, not proof of safety.
   */
  lifecycle?: boolean;
}

/**
 * What a verdict proves: the path requests took. A client going through a gateway that drops
 * conditional headers, another endpoint or region, or another driver to the same bucket is not
 * covered by a verdict proven over a different path.
 */
export interface VerdictPath {
  /** The storage driver (`s3`, `r2-binding`, ...). */
  driver: string;
  /** The bucket's root URL as requests address it (or the storage's name). */
  endpoint: string;
  /** The bucket. */
  bucket: string;
  /** The signing region, or `""`. */
  region: string;
  /** The queue prefix. */
  prefix: string;
}

/** The cached verdict, stored at `verdictKey`. */
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
  /** The path it proved; a client on another path probes for itself. */
  path: VerdictPath;
  /** The checks that failed, with what to do. */
  failed: { id: string; title: string; fix?: string }[];
}

/** Options of `requireSafeBackend`. */
export interface RequireSafeOptions extends DoctorOptions {
  /** Probe again even when a fresh verdict is cached. */
  force?: boolean;
  /** A cached verdict older than this is probed again, in ms. Default 24 h. */
  maxAgeMs?: number;
  /** Where to report that a probe runs. Default: the queue's logger. */
  logger?: Logger;
}

/** What `requireSafeBackend` returns when the backend is safe. */
export interface SafeBackend {
  /** Always `safe` (anything else throws). */
  verdict: "safe";
  /** When it was established (ISO 8601). */
  checkedAt: string;
  /** True when a cached verdict was used and no probe ran. */
  cached: boolean;
  /**
   * True when the storage evaluates conditional writes in oq itself (memory, file): nothing to
   * prove, no probe ran and nothing was read.
   */
  local?: boolean;
  /** The report, when a probe ran. */
  report?: DoctorReport;
}

/** Bumped whenever doctor checks something new, so older cached verdicts are probed again. */
export const DOCTOR_PROTOCOL = 1;

/** Default lifetime of a cached verdict: a day. */
export const DEFAULT_VERDICT_MAX_AGE_MS = 24 * 60 * 60 * 1000;
