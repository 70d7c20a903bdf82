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
 * verdict (`safe` or `unsafe`) is cached in `{prefix}_doctor/verdict-{hash}.json`, keyed by the
 * path it proved (driver, endpoint, bucket, region, prefix: `VerdictPath`), so
 * `requireSafeBackend` (called by `oq worker` and `Worker.start()`) probes a path once a
 * day, not on every start, and never trusts a verdict proven over another path.
 *
 * Each check has its own file beside this one; `run.ts` runs them, `verdict.ts` caches the
 * verdict, `require.ts` is what workers call.
 *
 * @module
 */
export {
  type Advice,
  type BackendProvider,
  detectProvider,
  type FittedAdvice,
  fitAdvice,
  PROVIDER_NAMES,
} from "./advice.ts";
export { runDoctor } from "./doctor.ts";
export { requireSafeBackend } from "./require.ts";
export {
  type CachedVerdict,
  type CheckStatus,
  DEFAULT_VERDICT_MAX_AGE_MS,
  DOCTOR_PROTOCOL,
  type DoctorCheck,
  type DoctorOptions,
  type DoctorReport,
  type RequireSafeOptions,
  type SafeBackend,
  type Verdict,
  type VerdictPath,
} from "./types.ts";
export { doctorPrefix, readVerdict, verdictKey, verdictPath } from "./verdict.ts";
