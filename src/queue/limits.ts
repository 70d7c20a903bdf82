/**
 * Fleet-wide limits of a task type: at most `concurrency` tasks of the type running across all
 * workers, at most `ratePerSecond` starts of it. Each limited type has one small object,
 * `{prefix}limits/{type}.json`, holding the limits (read on every claim of the type, so a change
 * applies at the next claim), the current slot holders and the recent start times. Every change
 * is a compare-and-swap through the one {@link DocumentStore}. The manifest lists the limited
 * types (`limited`), so a worker learns without a request that a type has none. See
 * "Concurrency and rate limits" in docs/protocol.md.
 *
 * Portable (web-standard globals only).
 *
 * @module
 */
import { ConflictError, MalformedObjectError, ValidationError } from "../errors.ts";
import { checkTaskType } from "../keys.ts";
import { MAX_LEASE_SECONDS } from "../options.ts";
import type { Storage } from "../storage/storage.ts";
import { DocumentStore, MAX_CAS_ROUNDS, type VersionedDocument } from "../store/documents.ts";
import { LEASE_TAKEOVER_MARGIN_MS } from "../task/transitions.ts";
import { encodeLimit, parseLimit, readLimitObject } from "./limit-codec.ts";

/** Most tasks of one type a fleet-wide concurrency limit may allow. */
export const MAX_FLEET_CONCURRENCY = 10_000;

/** Most starts per second a rate limit may allow. */
export const MAX_RATE_PER_SECOND = 1000;

/** Fleet-wide limits of a task type, as given to `queue.setLimits`. */
export interface LimitsInput {
  /**
   * At most this many tasks of the type running at once across all workers (an integer from 1
   * to 10,000); `null` removes the limit, absent leaves it as it is.
   */
  concurrency?: number | null;
  /**
   * At most this many starts of the type per second across all workers: an integer from 1 to
   * 1,000 (at most that many in any 1-second window), or a number below 1 (one start per
   * `1 / ratePerSecond` seconds, e.g. `0.1`: one every 10 s); `null` removes the limit, absent
   * leaves it as it is.
   */
  ratePerSecond?: number | null;
}

/** A slot of a fleet-wide concurrency limit, held by one attempt (keyed by its lease token). */
export interface LimitHolder {
  /** The task the attempt runs. */
  task: string;
  /** The worker running the attempt. */
  worker: string;
  /** The slot is free from this time on (plus the takeover margin): the attempt's lease expiry. */
  until: string;
}

/** The stored limit object of one type (`{prefix}limits/{type}.json`). */
export interface LimitDocument {
  /** Always `"limit"`: what this object is. */
  oq: "limit";
  /** The task type limited. */
  type: string;
  /** Most tasks running at once across the fleet, or `null` for no limit. */
  concurrency: number | null;
  /** Most starts per second across the fleet, or `null` for no limit. */
  ratePerSecond: number | null;
  /** When this version was written (server time); keeps every version unique. */
  updatedAt: string;
  /**
   * Slot holders by the attempt's lease token (two claimers racing for one task each hold their
   * own entry, so the loser's release never frees the winner's slot).
   */
  holders: Record<string, LimitHolder>;
  /** Start times of the recent window (server time, ISO 8601), for the rate limit. */
  starts: string[];
}

/** The limits of a type and their state now, as `queue.limits()` reports them. */
export interface TypeLimits {
  /** The task type. */
  type: string;
  /** Most tasks running at once across the fleet, or `null`. */
  concurrency: number | null;
  /** Most starts per second across the fleet, or `null`. */
  ratePerSecond: number | null;
  /** Slots held now (tasks of the type running under the concurrency limit). */
  running: number;
  /** Starts in the last rate window (1 s, or `1 / ratePerSecond` s below 1 per second). */
  recentStarts: number;
  /**
   * Only from `setLimits`, when the type's limit object was malformed (not JSON, the wrong
   * shape) and was replaced (the call is how to repair it): what it was. The new object holds
   * the limits given and no others.
   */
  replaced?: string;
}

const ms = (iso: string) => Date.parse(iso);
const iso = (time: number) => new Date(time).toISOString();

/** What a fleet-wide concurrency limit may be, as messages say it. @internal */
export const CONCURRENCY_LIMIT_RULE = `an integer from 1 to ${MAX_FLEET_CONCURRENCY}`;

/**
 * The lowest rate limit: one start a day. Why a floor: 5e-324 was accepted, its window
 * (`1 / rate` s) was Infinity, and the type never ran again.
 */
const MIN_RATE_PER_SECOND = 1 / 86_400;

/** What a fleet-wide rate limit may be, as messages say it. @internal */
export const RATE_LIMIT_RULE = `an integer from 1 to ${MAX_RATE_PER_SECOND} starts per second, or a number below 1 down to 1/86400 = 0.0000115741 (one start a day; 0.1: one start every 10 s)`;

/** Whether `n` is a valid fleet-wide concurrency limit ({@link CONCURRENCY_LIMIT_RULE}). @internal */
export function isConcurrencyLimit(n: unknown): boolean {
  return Number.isInteger(n) && (n as number) >= 1 && (n as number) <= MAX_FLEET_CONCURRENCY;
}

/** Whether `n` is a valid fleet-wide rate limit ({@link RATE_LIMIT_RULE}). @internal */
export function isRateLimit(n: unknown): boolean {
  return (
    typeof n === "number" &&
    n >= MIN_RATE_PER_SECOND &&
    (n < 1 || Number.isInteger(n)) &&
    n <= MAX_RATE_PER_SECOND
  );
}

/** Check limits given by a caller; throws `ValidationError` saying what to fix. */
export function checkLimits(given: LimitsInput): LimitsInput {
  if (typeof given !== "object" || given === null)
    throw new ValidationError("Limits must be an object { concurrency?, ratePerSecond? }.");
  for (const key of Object.keys(given)) {
    if (key !== "concurrency" && key !== "ratePerSecond")
      throw new ValidationError(`Unknown limit ${key}: use concurrency or ratePerSecond.`);
  }
  const { concurrency, ratePerSecond } = given;
  if (concurrency !== undefined && concurrency !== null && !isConcurrencyLimit(concurrency)) {
    throw new ValidationError(
      `Invalid concurrency limit ${JSON.stringify(concurrency)}: use ${CONCURRENCY_LIMIT_RULE}, or null to remove it.`,
    );
  }
  if (ratePerSecond !== undefined && ratePerSecond !== null && !isRateLimit(ratePerSecond)) {
    throw new ValidationError(
      `Invalid rate limit ${JSON.stringify(ratePerSecond)}: use ${RATE_LIMIT_RULE}, or null to remove it.`,
    );
  }
  return given;
}

/** The rate window of `rate` starts per second, ms, and how many starts it allows. */
export function rateWindow(rate: number): { windowMs: number; starts: number } {
  return rate >= 1 ? { windowMs: 1000, starts: rate } : { windowMs: 1000 / rate, starts: 1 };
}

/**
 * How far ahead of a reader's lower bound of server time a time written by another claimer may
 * lie, ms. A claimer stamps a start by its upper bound and dates a slot by its upper bound plus
 * the lease, so a stamp runs ahead of the truth by at most the writer's interval width and lies
 * ahead of the reader's lower bound by at most both widths: about a second plus a round trip
 * each, more only right after a clock re-anchored on one slow response (bounded by the request
 * timeout, 30 s by default). A junk time this close ahead blocks the type for a minute at most.
 */
export const CLOCK_SLACK_MS = 60_000;

/** The latest `until` a holder written by a worker may have, past server time `now`, ms. */
const MAX_HOLD_AHEAD_MS = MAX_LEASE_SECONDS * 1000 + CLOCK_SLACK_MS;

/**
 * Whether a start stamp lies further ahead of server time `now` than any claimer's clock could
 * have put it ({@link CLOCK_SLACK_MS}): a hand-edited or corrupted object. Counted, it would
 * refuse every start of the type until then (a stamp in 2999: for good).
 */
function isJunkStart(stamp: number, now: number): boolean {
  return stamp > now + CLOCK_SLACK_MS;
}

/**
 * Whether `holder` still holds its slot at server time `now` (the lower bound of it). A holder
 * dated further ahead than any lease can run (7 days) plus {@link CLOCK_SLACK_MS} was written by
 * no worker and holds nothing: it would keep its slot until then (in 2999: for good).
 */
export function holds(holder: LimitHolder, now: number): boolean {
  const until = ms(holder.until);
  return until + LEASE_TAKEOVER_MARGIN_MS > now && until <= now + MAX_HOLD_AHEAD_MS;
}

/**
 * What of `doc` lies further ahead of server time `now` than any claimer could have written
 * (holders and start stamps that {@link admit} ignores and the next write drops), said for a
 * warning, or `undefined` when nothing does.
 */
export function junkAhead(doc: LimitDocument, now: number): string | undefined {
  const holders = Object.values(doc.holders).filter((h) => ms(h.until) > now + MAX_HOLD_AHEAD_MS);
  const starts = doc.starts.filter((t) => isJunkStart(ms(t), now));
  if (holders.length === 0 && starts.length === 0) return undefined;
  const said = [
    ...(holders.length === 0
      ? []
      : [
          `${holders.length} slot holder(s) until ${holders[0]!.until} (a lease lasts 7 days at most)`,
        ]),
    ...(starts.length === 0 ? [] : [`${starts.length} start time(s) such as ${starts[0]}`]),
  ];
  return `${said.join(" and ")} further ahead of server time than a worker writes`;
}

/** What a claim asks of a type's limits. */
export interface AdmitSpec {
  taskId: string;
  worker: string;
  token: string;
  /** The slot and the task's lease last until this server time. */
  until: number;
  /** Server time (lower bound). */
  now: number;
  /**
   * The start's stamp: the upper bound of server time now (default `now`). Stamping by the upper
   * bound and judging the window by the lower one counts every two starts less than a window
   * apart in true server time, however uncertain the claimers' clocks are.
   */
  startAt?: number;
}

/** The outcome of {@link admit}. */
export type Admission =
  | { admitted: true; next: LimitDocument; holder: boolean }
  | { admitted: false; retryAt: number; reason: "concurrency" | "rate" };

/**
 * Decide a start of a task under `doc`'s limits at server time `now`: refuse it (with the
 * earliest time a slot or a start may free) or return the next version of the object, with a
 * holder for the task (when a concurrency limit is set) and its start time (when a rate limit
 * is). Expired holders and starts older than twice the rate window are dropped on the way, and
 * so are holders and starts dated further ahead than a worker writes them (see {@link holds}).
 */
export function admit(doc: LimitDocument, spec: AdmitSpec): Admission {
  const { now } = spec;
  const holders = liveHolders(doc, now);
  if (doc.concurrency !== null && Object.keys(holders).length >= doc.concurrency) {
    const frees = Object.values(holders).map((h) => ms(h.until) + LEASE_TAKEOVER_MARGIN_MS);
    return { admitted: false, retryAt: Math.min(...frees), reason: "concurrency" };
  }
  let starts = doc.starts;
  if (doc.ratePerSecond !== null) {
    const { windowMs, starts: allowed } = rateWindow(doc.ratePerSecond);
    // Starts stamped by a clock ahead of ours count too (they are "in the future" here), as far
    // ahead as a clock can be; junk further ahead is ignored (and dropped below).
    const recent = doc.starts.map(ms).filter((t) => t > now - windowMs && !isJunkStart(t, now));
    if (recent.length >= allowed) {
      const sorted = recent.sort((a, b) => a - b);
      return {
        admitted: false,
        retryAt: sorted[recent.length - allowed]! + windowMs,
        reason: "rate",
      };
    }
    // Kept for two windows, so a claimer whose clock lags ours by less than one still sees them.
    const kept = doc.starts.filter((t) => ms(t) > now - 2 * windowMs && !isJunkStart(ms(t), now));
    starts = [...kept, iso(spec.startAt ?? now)];
  } else {
    starts = [];
  }
  const holder = doc.concurrency !== null;
  if (holder)
    holders[spec.token] = { task: spec.taskId, worker: spec.worker, until: iso(spec.until) };
  return { admitted: true, holder, next: { ...doc, updatedAt: iso(now), holders, starts } };
}

/** The holders of `doc` still holding their slots at `now`. */
function liveHolders(doc: LimitDocument, now: number): Record<string, LimitHolder> {
  const live: Record<string, LimitHolder> = {};
  for (const [token, h] of Object.entries(doc.holders)) if (holds(h, now)) live[token] = h;
  return live;
}

/** A slot or start granted to one claim. */
export interface LimitGrant {
  type: string;
  taskId: string;
  worker: string;
  /** The lease token of the attempt, which keys its holder entry. */
  token: string;
  /** Whether a holder entry was written (a concurrency limit is set): it must be freed. */
  holder: boolean;
  /** Until when the task's lease may run (server ms): the holder entry's `until`. */
  until: number;
}

/** Logs a warning about an object once (the queue's `warnOnce`). */
export type WarnOnce = (key: string, message: string) => void;

/** The limit objects of one queue. */
export class LimitStore {
  readonly #documents: DocumentStore<LimitDocument>;
  readonly #key: (type: string) => string;
  readonly #warnOnce: WarnOnce;

  /**
   * `key`: the full key of a type's limit object; `warnOnce`: where a limit object holding
   * times no worker writes is reported (once per object).
   */
  constructor(storage: Storage, key: (type: string) => string, warnOnce: WarnOnce = () => {}) {
    this.#documents = new DocumentStore(storage, { parse: parseLimit, encode: encodeLimit });
    this.#key = key;
    this.#warnOnce = warnOnce;
  }

  /** Warn (once per object) when `doc` holds times no worker writes: they are ignored. */
  #checkAhead(type: string, doc: LimitDocument, now: number): void {
    const junk = junkAhead(doc, now);
    if (junk === undefined) return;
    const key = this.#key(type);
    // Its own dedup key: a warning that the object was unreadable must not silence this one.
    this.#warnOnce(
      `${key} (ahead)`,
      `limit object ${key} holds ${junk}: ignored, and dropped at its next write`,
    );
  }

  /** A type's limit object (one GET), or `undefined` when it has none. */
  read(type: string): Promise<VersionedDocument<LimitDocument> | undefined> {
    return this.#documents.read(this.#key(type));
  }

  /**
   * Set a type's limits (`undefined` keeps one, `null` removes it); returns the stored object.
   * A malformed object (not JSON, the wrong shape: workers block the type while it stays so) is
   * replaced by one holding only the limits given, with a write conditional on its ETag, so a
   * concurrent writer is never overwritten blindly; `replaced` then says what it was.
   */
  async set(
    forType: string,
    given: LimitsInput,
    now: number,
  ): Promise<{ doc: LimitDocument; replaced?: string }> {
    checkTaskType(forType);
    checkLimits(given);
    const key = this.#key(forType);
    const change = (base: LimitDocument): LimitDocument => ({
      ...base,
      updatedAt: iso(Math.max(now, ms(base.updatedAt) + 1)),
      ...(given.concurrency === undefined ? {} : { concurrency: given.concurrency }),
      ...(given.ratePerSecond === undefined ? {} : { ratePerSecond: given.ratePerSecond }),
    });
    const fresh = change({
      oq: "limit",
      type: forType,
      concurrency: null,
      ratePerSecond: null,
      updatedAt: iso(now),
      holders: {},
      starts: [],
    });
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      try {
        return { doc: await this.#setValid(key, change, fresh) };
      } catch (error) {
        if (!(error instanceof MalformedObjectError)) throw error;
      }
      const replaced = await this.#replaceMalformed(key, fresh);
      if (replaced !== undefined) return replaced;
    }
    throw new ConflictError(`${key} kept changing while its limits were set; try again.`, { key });
  }

  /** {@link set} over a valid object or none; throws `MalformedObjectError` over another. */
  async #setValid(
    key: string,
    change: (base: LimitDocument) => LimitDocument,
    fresh: LimitDocument,
  ): Promise<LimitDocument> {
    const updated = await this.#documents.update(key, ({ value }) => change(value));
    if (updated !== undefined) return updated.value;
    const created = await this.#documents.write(key, null, fresh);
    if (created.won) return created.value;
    // Another writer created it first: change theirs.
    const again = await this.#documents.update(key, ({ value }) => change(value));
    return again?.value ?? created.readBack?.value ?? fresh;
  }

  /**
   * Write `fresh` over the malformed object at `key`, on its ETag. `undefined` when it is gone or
   * valid now, or the write lost (another writer got there first): {@link set} starts over.
   */
  async #replaceMalformed(
    key: string,
    fresh: LimitDocument,
  ): Promise<{ doc: LimitDocument; replaced: string } | undefined> {
    const got = await readLimitObject(this.#documents.storage, key);
    if (got === undefined || "doc" in got.read) return undefined;
    const read = got.read;
    try {
      const written = await this.#documents.write(key, got.etag, fresh);
      if (!written.won) return undefined;
    } catch (error) {
      // An ambiguous write that lost, read back as still malformed: try again.
      if (error instanceof MalformedObjectError) return undefined;
      throw error;
    }
    return {
      doc: fresh,
      replaced: `replaced ${key}, which was not a limit object (${read.problem}): it holds the limits just set, and none it may have had before`,
    };
  }

  /**
   * Ask for a start of `who.taskId`: adds its holder and start time with a conditional write
   * (one GET and one PUT, more on a lost race), stamped with `time()` of the round that wrote. Resolves the grant, or when the limits refuse,
   * the server time from which asking again may succeed. A type whose object has no limits (or
   * none at all) is granted without a write.
   */
  async acquire(
    forType: string,
    who: Pick<AdmitSpec, "taskId" | "worker" | "token">,
    time: () => Pick<AdmitSpec, "now" | "until" | "startAt">,
  ): Promise<{ grant: LimitGrant } | { retryAt: number; reason: "concurrency" | "rate" }> {
    let refused: { retryAt: number; reason: "concurrency" | "rate" } | undefined;
    let holder = false;
    let spec: AdmitSpec = { ...who, ...time() };
    const stored = await this.#documents.update(this.#key(forType), ({ value }) => {
      refused = undefined;
      holder = false;
      if (value.concurrency === null && value.ratePerSecond === null) return undefined;
      // Each round stamps the time anew: a start stamped before lost rounds would lie behind.
      spec = { ...who, ...time() };
      this.#checkAhead(forType, value, spec.now);
      const admission = admit(value, spec);
      if (!admission.admitted) {
        refused = { retryAt: admission.retryAt, reason: admission.reason };
        return undefined;
      }
      holder = admission.holder;
      return admission.next;
    });
    if (refused !== undefined) return refused;
    const { taskId, worker, token, until } = spec;
    return { grant: { type: forType, taskId, worker, token, until, holder: holder && !!stored } };
  }

  /**
   * Extend the slot of `grant` to server time `until` before its lease is renewed to it. Re-adds
   * the holder when it was dropped but a slot is free. False when the slot is lost (the limit is
   * full without it): the lease must not be renewed.
   */
  async extend(grant: LimitGrant, until: number, now: number): Promise<boolean> {
    let kept = true;
    await this.#documents.update(this.#key(grant.type), ({ value }) => {
      kept = true;
      this.#checkAhead(grant.type, value, now);
      const mine = value.holders[grant.token];
      if (mine !== undefined && holds(mine, now)) {
        if (ms(mine.until) >= until) return undefined;
        const holders = {
          ...liveHolders(value, now),
          [grant.token]: { ...mine, until: iso(until) },
        };
        return { ...value, updatedAt: iso(now), holders };
      }
      if (value.concurrency === null) return undefined;
      const holders = liveHolders(value, now);
      if (Object.keys(holders).length >= value.concurrency) {
        kept = false;
        return undefined;
      }
      holders[grant.token] = { task: grant.taskId, worker: grant.worker, until: iso(until) };
      return { ...value, updatedAt: iso(now), holders };
    });
    return kept;
  }

  /** Free the slot of `grant` (its handler settled); expired holders go with it. */
  async release(grant: LimitGrant, now: number): Promise<void> {
    if (!grant.holder) return;
    await this.#documents.update(this.#key(grant.type), ({ value }) => {
      if (value.holders[grant.token] === undefined) return undefined;
      const holders = liveHolders(value, now);
      delete holders[grant.token];
      return { ...value, updatedAt: iso(now), holders };
    });
  }

  /** What a type's limits are and how much of them is in use at `now`. */
  static view(doc: LimitDocument, now: number): TypeLimits {
    const running = Object.values(doc.holders).filter((h) => holds(h, now)).length;
    const windowMs = doc.ratePerSecond === null ? 1000 : rateWindow(doc.ratePerSecond).windowMs;
    const recentStarts = doc.starts.filter(
      (t) => ms(t) > now - windowMs && !isJunkStart(ms(t), now),
    ).length;
    return {
      type: doc.type,
      concurrency: doc.concurrency,
      ratePerSecond: doc.ratePerSecond,
      running,
      recentStarts,
    };
  }
}
