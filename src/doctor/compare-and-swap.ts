/**
 * Check: compare-and-swap. `If-Match` with the current ETag (from a PUT or a GET) succeeds, with
 * a stale one fails and changes nothing, and on a missing key creates nothing.
 *
 * @module
 */
import { ConflictError, NotFoundError, PreconditionFailedError } from "../errors.ts";
import { sameEtag } from "../storage/storage.ts";
import { ADVICE_IF_MATCH } from "./advice.ts";
import { bail, CheckFailed, type Probe } from "./probe.ts";

/** Run the check, pushing evidence; throws `CheckFailed` when it fails. */
export async function checkCompareAndSwap(p: Probe, evidence: string[]): Promise<void> {
  const key = p.key("compare-and-swap");
  const readEtag = await swapThenRefuseStale(p, key, evidence);
  const etag = await swapWithEtagFromGet(p, key, readEtag, evidence);
  await ifMatchOnMissingKey(p, etag, evidence);
}

/** A swap with the current ETag wins, one with a stale ETag loses and changes nothing. */
async function swapThenRefuseStale(p: Probe, key: string, evidence: string[]): Promise<string> {
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
        ADVICE_IF_MATCH,
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
      ADVICE_IF_MATCH,
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
      ADVICE_IF_MATCH,
    );
  }
  if (!sameEtag(read.value.etag, v2.value.etag)) {
    throw new CheckFailed(
      `GET returned ETag ${read.value.etag} but the PUT that wrote this body returned ${v2.value.etag}.`,
      true,
      ADVICE_IF_MATCH,
    );
  }
  return read.value.etag;
}

/** The ETag of a GET must work as well as the ETag of a PUT (the worker uses both). */
async function swapWithEtagFromGet(
  p: Probe,
  key: string,
  etag: string,
  evidence: string[],
): Promise<string> {
  const v4 = await p.put(key, p.body("v4"), { ifMatch: etag });
  evidence.push(`${v4.line} (ETag from GET: expected 200)`);
  if (!v4.ok) {
    if (v4.error instanceof PreconditionFailedError) {
      throw new CheckFailed(
        `If-Match with the ETag a GET returned (${etag}) was refused with 412.`,
        true,
        ADVICE_IF_MATCH,
      );
    }
    bail(v4, "If-Match with the ETag from a GET");
  }
  return v4.value.etag;
}

/** If-Match on a missing key must fail and create nothing. */
async function ifMatchOnMissingKey(p: Probe, etag: string, evidence: string[]): Promise<void> {
  const missing = p.key("if-match-missing");
  const m = await p.put(missing, p.body("missing"), { ifMatch: etag });
  evidence.push(`${m.line} (missing key: expected 404 or 412)`);
  if (m.ok) {
    throw new CheckFailed(
      "If-Match on a missing key created it: the backend ignores If-Match.",
      true,
      ADVICE_IF_MATCH,
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
      ADVICE_IF_MATCH,
    );
  }
}
