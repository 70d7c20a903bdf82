import { OqError } from "../errors.ts";
import type { QueueInternals } from "../queue/internals.ts";
import type { WakeListener } from "../queue/local-wake.ts";
import type { Versioned } from "../queue/types.ts";
import type { TaskRecord } from "../task/record.ts";
import { claimTask, isTerminal } from "../task/transitions.ts";
import { sleep } from "../util/async.ts";
import { errorMessage } from "../util/errors.ts";
import { Candidates } from "./candidates.ts";
import { DueSoon } from "./due-soon.ts";
import { ListingAhead, listAheadLeadMs } from "./listing-ahead.ts";
import type { Candidate } from "./monitor.ts";
import { nextStep } from "./next-step.ts";
import { leaseToWrite } from "./options.ts";
import { PartitionLister } from "./partition-lister.ts";
import { IdlePauses } from "./poll-pause.ts";
import type { PollerOptions } from "./poller-options.ts";
import {
  CONTENDED_MS,
  STEAL_AFTER_MS,
  UNHANDLED_RECHECK_MS,
  WASTED_READS_BEFORE_RELIST,
} from "./poller-settings.ts";
import { ReadAhead } from "./read-ahead.ts";
import { RefusedClaims } from "./refused-claims.ts";
import { Wakes } from "./wakes.ts";

/** The poll loop and claims of one worker. */
export class Poller implements WakeListener {
  readonly #queue: QueueInternals;
  readonly #o: PollerOptions;
  readonly #refusals = new RefusedClaims();
  #candidates = new Candidates();
  /** The partition the next listing starts with (round-robin over {@link Poller.partitions}). */
  #cursor: number;
  /** Whether the last pass found nothing: the next lists one partition only (idle budget). */
  #quiet = false;
  /** Whether the last listing took a step of the monitor's round (a quiet worker alternates). */
  #steppedLast = false;
  /** Whether the next listing must try every partition (a drain pass). */
  #listAll = false;
  #listedAt = Number.NEGATIVE_INFINITY;
  readonly #listingAhead = new ListingAhead<Candidate>();
  /** When a read last won nothing because another worker got there (local ms). */
  #contendedAt = Number.NEGATIVE_INFINITY;
  readonly #dueSoon = new DueSoon();
  readonly #lister: PartitionLister;
  readonly #ahead: ReadAhead;
  /** Reads in a row that found a task another worker took since our listing. */
  #wastedInRow = 0;
  /** A read showed the listing stale; a pass left steals to the next (listed soon, not idly). */
  #shownStale = false;
  #staleSteals = false;
  readonly #wakes: Wakes;

  constructor(queue: QueueInternals, options: PollerOptions) {
    this.#queue = queue;
    this.#o = options;
    this.#ahead = new ReadAhead(() => queue.clock.localNow());
    this.#lister = new PartitionLister(queue, options, this.#dueSoon);
    this.#wakes = new Wakes(options.isRunning);
    // Workers start at different partitions, so a fleet spreads over a hot type's shards.
    this.#cursor = Math.floor(queue.random() * 1024);
  }

  /** Aborted when a slot frees or the worker stops: ends the loop's pause. */
  get wakeSignal(): AbortSignal {
    return this.#wakes.signal;
  }

  /** End the loop's pause now (a slot freed, or the worker stops). */
  wake(): void {
    this.#wakes.wake();
  }

  /**
   * A task of `partition`, due now, was submitted through this worker's queue object: taken
   * when this worker lists that partition and is in an idle pause (`./wakes.ts`). Its listing
   * comes no sooner than `minPollMs` after the last, so wakes never poll faster than a busy
   * worker does.
   */
  submitted(partition: string): boolean {
    return this.partitions().includes(partition) && this.#wakes.submitted(partition);
  }

  /**
   * A local submit wrote the task of `marker`: if a listing caught the marker before the task
   * and skipped it (a young marker is rechecked only after a second or more, see
   * `Monitor.stale`), the task is there now, so the skip is dropped.
   */
  landed(marker: string): void {
    this.#o.skip.delete(marker);
  }

  /** The due markers of the last listing not tried yet (for tests). */
  get candidates(): readonly Candidate[] {
    return this.#candidates.left();
  }

  /** Where the next listing of `partition` resumes, when the last stopped at its page limit. */
  resumeAfter(partition: string): string | undefined {
    return this.#lister.resumeAfter(partition);
  }

  /**
   * The partitions of the ready index this worker lists: every hash shard of every type it has a
   * handler for (shards per the manifest) and not at its limit. It never reads the other types.
   */
  partitions(): string[] {
    const q = this.#queue;
    const found: string[] = [];
    for (const type of [...this.#o.handlers.keys()].sort()) {
      const shards = this.#o.limits.open(type) ? q.manifest.shardsOf(type) : 0;
      for (let part = 0; part < shards; part++) found.push(q.keys.partition(type, part));
    }
    return found;
  }

  /** Make the next pass list every partition again rather than reuse the last listing. */
  relist(): void {
    this.#listedAt = Number.NEGATIVE_INFINITY;
    this.#listAll = true;
    this.#listingAhead.drop();
  }

  /** Poll until the worker stops: pause `minPollMs` after finding work, doubling up to `maxPollMs` when idle. */
  async run(): Promise<void> {
    const o = this.#o;
    const idle = new IdlePauses(o.minPollMs, o.maxPollMs, this.#queue.random, o.alone);
    while (o.isRunning()) {
      if (o.running.size >= o.concurrency) {
        // A freed slot wakes the loop. Racing the running tasks' promises instead would attach a
        // reaction to each of them per turn, kept until that task ends: a long task on a busy
        // worker held gigabytes of them.
        await sleep(60_000, this.#wakes.signal);
        continue;
      }
      let claimed = 0;
      try {
        claimed = await this.pass(true);
      } catch (error) {
        // Storage trouble (throttling, an outage) must not kill the loop: back off and retry.
        this.#queue.logger.warn(`poll failed: ${errorMessage(error)}`, { error });
      }
      if (!o.isRunning()) break;
      if (claimed > 0 || this.#staleSteals) {
        // Steals left to the next listing are no sign of work: the idle ramp goes on where it
        // was. Restarting it on each stale read (a hostile client's markers, looked at again
        // while young) kept an idle worker listing 11 times a second in the chaos runs.
        if (claimed > 0) idle.reset();
        if (o.running.size < o.concurrency && (this.#candidates.size === 0 || this.#staleSteals))
          await sleep(o.minPollMs, this.#wakes.signal);
        continue;
      }
      if (this.#wakes.missed) {
        await this.#paceWake();
        continue;
      }
      this.#wakes.idle(true);
      await sleep(o.limits.pause(idle.ms), this.#wakes.signal);
      this.#wakes.idle(false);
      idle.advance(this.#steppedLast);
      if (this.#wakes.woken) await this.#paceWake();
    }
    await this.#listingAhead.settled();
  }

  /** After a local submit's wake: wait until `minPollMs` has passed since the last listing. */
  async #paceWake(): Promise<void> {
    const early = this.#listedAt + this.#o.minPollMs - this.#queue.clock.localNow();
    if (early > 0 && this.#o.isRunning()) await sleep(early, this.#wakes.signal);
  }

  /**
   * The local time by which a task the last pass saw, maybe due by the server's clock but not
   * by our lower bound of it, surely is due and worth reading (a marker listed past the lower
   * bound but within the upper, or a task read before its `availableAt`), or `undefined`.
   * `drain()` waits for it within its budget; a retry's backoff or a delay is not waited for.
   */
  get notDueUntil(): number | undefined {
    return this.#dueSoon.until;
  }

  /**
   * Try to fill free slots from the ready index. Returns how many tasks were claimed.
   * `listAhead`: when the listing in use goes stale soon, start the next one beside the claims
   * (`./listing-ahead.ts`); the poll loop asks for it, a drain's passes list afresh anyway.
   */
  async pass(listAhead = false): Promise<number> {
    const o = this.#o;
    const local = this.#queue.clock.localNow();
    this.#dueSoon.startPass(local);
    const stale =
      this.#staleSteals || this.#wakes.waiting || local - this.#listedAt > o.listReuseMs;
    if (this.#candidates.size === 0 || stale) await this.list();
    else if (listAhead) this.#listAheadIfDue(local);
    let claimed = 0;
    for (let relisted = false; ; relisted = true) {
      const taken = await this.#take(claimed, !relisted);
      claimed = taken.claimed;
      if (!taken.relist) break;
      await this.list();
    }
    this.#quiet = claimed === 0;
    return claimed;
  }

  /**
   * Claim from the current candidates. Our own share first, oldest first; then others' shares
   * once their tasks have waited a while (their owner may be busy, dead or a pure monitor); then
   * anything, when our share gave nothing. Stealing goes newest first, away from where the owner
   * is working. When `mayRelist` and reads keep finding tasks other workers took since the
   * listing ({@link WASTED_READS_BEFORE_RELIST} in a row), it stops and asks for a fresh listing:
   * one LIST instead of more GETs of a stale page (most of the extra GETs of 8 workers draining
   * one backlog were such reads), at most once per pass and not within `minPollMs` of the last.
   * When it may not, a thief leaves the other shares of a listing shown stale to the next (at the
   * end of an 8-worker backlog, all reading on through the same stale ones was most wasted GETs).
   */
  async #take(
    claimedBefore: number,
    mayRelist: boolean,
  ): Promise<{ claimed: number; relist: boolean }> {
    const o = this.#o;
    let claimed = claimedBefore;
    const stealBefore = this.#queue.now() - STEAL_AFTER_MS;
    const passes: { pick: (m: Candidate) => boolean; own: boolean }[] = [
      { pick: (m) => o.mine(m.id), own: true },
      { pick: (m) => m.dueMs <= stealBefore, own: false },
      { pick: () => claimed === 0, own: false },
    ];
    for (const { pick, own } of passes) {
      for (const marker of own
        ? this.#ownOrder()
        : this.#candidates.stealOrder(this.#queue.random)) {
        if (o.running.size >= o.concurrency || !o.isRunning()) return { claimed, relist: false };
        if (!pick(marker) || !o.limits.open(marker.type)) continue;
        this.#candidates.remove(marker);
        if (o.skip.skipped(marker.key, this.#queue.clock.localNow())) continue;
        try {
          if (await this.#inspect(marker)) claimed++;
        } catch (error) {
          // One task's storage trouble (a throttled or failed read or claim) must not end the
          // pass: the other candidates are still due, and a pass that throws counts as idle and
          // backs the worker off (the chaos tests measured 10% faults making a worker ~80x
          // slower). The marker stays in the index, so a later listing retries it.
          this.#queue.logger.warn(
            `task ${marker.id}: ${errorMessage(error)} (retried at the next listing)`,
            { taskId: marker.id, type: marker.type, worker: o.workerId, error },
          );
        }
        if (this.#wastedInRow >= WASTED_READS_BEFORE_RELIST && this.#candidates.size > 0) {
          if (mayRelist && this.#queue.clock.localNow() - this.#listedAt >= o.minPollMs)
            return { claimed, relist: true };
          if (!own && this.#shownStale) {
            this.#candidates = new Candidates(this.#candidates.left().filter((m) => o.mine(m.id)));
            this.#staleSteals = true;
            return { claimed, relist: false };
          }
        }
      }
    }
    return { claimed, relist: false };
  }

  /**
   * The candidates in the order this worker takes its own share: oldest first, one read ahead
   * before all. Workers started together see no peers at first, so all take the whole index and
   * read the same oldest tasks (most GETs that won nothing in a short 8-worker drain): once a
   * read showed another worker at work and none is known yet, start from a random point.
   */
  #ownOrder(): Iterable<Candidate> {
    const { mine, shareVersion } = this.#o;
    const own = { mine, version: shareVersion === undefined ? mine : shareVersion() };
    if (this.#candidates.mixed) return this.#candidates.walk({}, own);
    const first = this.#ahead.heldKey;
    const rotate =
      this.#o.alone() && this.#queue.clock.localNow() - this.#contendedAt <= CONTENDED_MS;
    return this.#candidates.walk(rotate ? { first, random: this.#queue.random } : { first }, own);
  }

  /** Start reading the candidate the next claim would take, beside a claim of the last slot. */
  #readAhead(claiming: string): void {
    const o = this.#o;
    if (o.running.size + 1 < o.concurrency || !o.quickHandlers()) return;
    const local = this.#queue.clock.localNow();
    for (const next of this.#ownOrder()) {
      if (next.id === claiming || !o.mine(next.id) || !o.limits.open(next.type)) continue;
      if (o.skip.skipped(next.key, local)) continue;
      this.#ahead.start(next.key, () => this.#queue.read(next.id));
      return;
    }
  }

  /** A read of `id` won nothing: another worker got there (a lost steal says naught of peers). */
  #contended(id: string): void {
    this.#wastedInRow++;
    this.#contendedAt = this.#queue.clock.localNow();
    if (this.#o.mine(id)) this.#o.onContended?.();
  }

  /**
   * List due markers: the monitor's batched sweep and, when one is due, one step of its round;
   * then this worker's partitions in turn, from where the last listing left off, until one has
   * due markers. A quiet worker (its last pass found nothing) spends one request per poll: the
   * monitor's step or one partition, so its cost stays flat however many types and shards it
   * handles. A deep partition is read a page (`PAGES_PER_POLL`) per poll, resuming where the
   * last stopped.
   */
  async list(): Promise<void> {
    const { monitor } = this.#o;
    this.#o.stats.polls++;
    this.#wastedInRow = 0;
    this.#staleSteals = this.#shownStale = false;
    await monitor.sweep();
    this.#o.skip.prune(this.#queue.clock.localNow());
    // A quiet worker alternates a poll with a step of the monitor's round and one with a listing
    // of its own partitions: a long round (many partitions of types nobody here runs, many
    // journals to prune) must not keep it from new work of its own (the soak run found quiet
    // workers claiming nothing for whole rounds).
    // A worker's first listing, and a local submit's wake (its task's partition first), step not.
    // A missed wake (./wakes.ts) may step: a steady local stream misses a wake at nearly every
    // listing, and must not starve the monitor. It still gets its partition listed.
    const { woken, missed } = this.#wakes.take();
    const mayStep =
      woken === undefined && this.#o.stats.polls > 1 && (!this.#quiet || !this.#steppedLast);
    const stepped = mayStep && (await monitor.step(this.#queue.now()));
    this.#steppedLast = stepped;
    const all = this.#listAll || !this.#quiet;
    this.#listAll = false;
    const partitions = this.partitions();
    const first = woken ?? missed;
    if (first !== undefined && partitions.includes(first)) this.#cursor = partitions.indexOf(first);
    const budget =
      all || partitions.length === 0 ? partitions.length : stepped && missed === undefined ? 0 : 1;
    this.#candidates = new Candidates();
    let listedAt: number | undefined;
    for (let i = 0; i < budget && this.#candidates.size === 0; i++) {
      const partition = partitions[this.#cursor++ % partitions.length]!;
      const local = this.#queue.clock.localNow();
      const ahead = await this.#listingAhead.take(partition, local, this.#o.listReuseMs);
      const listing = ahead ?? (await this.#lister.list(partition));
      // A listing made ahead is as old as when it ended, not when it was taken.
      listedAt = i === 0 && ahead !== undefined ? ahead.endedAt : undefined;
      this.#candidates = new Candidates(this.#lister.use(partition, listing));
    }
    this.#listingAhead.drop();
    this.#listedAt = listedAt ?? this.#queue.clock.localNow();
  }

  /**
   * Start listing the partition the next relist begins with, when the listing in use goes stale
   * soon: a busy worker with quick handlers, one listing ahead at a time (`./listing-ahead.ts`).
   */
  #listAheadIfDue(local: number): void {
    const o = this.#o;
    if (this.#quiet || this.#listingAhead.held || !o.quickHandlers()) return;
    const lead = listAheadLeadMs(this.#lister.lastListingMs, o.listReuseMs);
    if (local - this.#listedAt < o.listReuseMs - lead) return;
    const partitions = this.partitions();
    if (partitions.length === 0) return;
    const partition = partitions[this.#cursor % partitions.length]!;
    this.#listingAhead.start(partition, local, () => this.#lister.list(partition));
  }

  /** Look at one due marker's task and act on it. True when the task was claimed. */
  async #inspect(marker: Candidate): Promise<boolean> {
    const q = this.#queue;
    let found: Versioned | undefined;
    try {
      found = await (this.#ahead.take(marker.key) ?? q.read(marker.id));
    } catch (error) {
      if (error instanceof OqError && error.code === "MALFORMED") {
        q.warnOnce(marker.key, `skipping task ${marker.id}: ${error.message}`);
        this.#o.emit({ kind: "skipped-malformed", id: q.keys.task(marker.id) });
        // A malformed object names no marker: once the grace is over the marker is garbage.
        this.#o.monitor.stale(marker, q.now(), true);
        return false;
      }
      throw error;
    }
    const now = q.now();
    // A finished task that still names its marker was written before terminal transitions
    // cleared it: the marker is garbage all the same (a replay writes a new one).
    if (
      found === undefined ||
      found.task.marker !== marker.relative ||
      isTerminal(found.task.status)
    ) {
      // Finished or moved on (to a claim's lease marker a second after it): our listing is stale.
      if (found !== undefined) this.#contended(marker.id);
      if (found !== undefined) this.#shownStale = true;
      await this.#o.monitor.unnamed(marker, found, now);
      return false;
    }
    return this.#act(marker, found, now);
  }

  /** Carry out {@link nextStep}'s decision for a task named by its marker. */
  async #act(marker: Candidate, found: Versioned, now: number): Promise<boolean> {
    const q = this.#queue;
    const { task } = found;
    const { monitor, skip } = this.#o;
    const handled = this.#o.handlers.has(task.type);
    const latest = q.clock.bounds().upper;
    const context = { now, latest, handled, monitor: monitor.enabled, listedAs: marker.type };
    const step = nextStep(task, context);
    switch (step.kind) {
      case "claim":
        return this.#claim(marker, found);
      case "monitor":
        await monitor.apply(found, (t) => step.change(t, q.now(), q.random()), step.as);
        return false;
      case "lease-live":
        this.#contended(marker.id);
        skip.untilServer(marker.key, step.at);
        return false;
      case "not-due": {
        const until = skip.untilServer(marker.key, step.at);
        if (step.at <= q.clock.bounds().upper) this.#dueSoon.read(marker.key, until);
        return false;
      }
      case "unhandled":
        if (step.warning !== undefined) q.warnOnce(marker.key, step.warning);
        skip.untilServer(marker.key, step.at);
        return false;
      case "leave":
        return false;
    }
  }

  /** Claim `found` with a conditional write and start it. True when the claim was won. */
  async #claim(marker: Candidate, found: Versioned): Promise<boolean> {
    const q = this.#queue;
    const entry = this.#o.handlers.get(found.task.type)!;
    const leaseMs = (entry.options.leaseSeconds ?? this.#o.leaseSeconds) * 1000;
    const token = q.randomHex(32);
    let next: TaskRecord;
    try {
      const now = q.now();
      const lease = leaseToWrite(q, leaseMs);
      next = claimTask(found.task, { workerId: this.#o.workerId, token, leaseMs: lease, now });
    } catch (error) {
      // A record no claim can start (written by hand): say so once, and leave it for a while
      // rather than read it at every listing.
      q.warnOnce(marker.key, `cannot claim task ${found.task.id}: ${errorMessage(error)}`);
      this.#o.skip.untilServer(marker.key, q.now() + UNHANDLED_RECHECK_MS);
      return false;
    }
    const limited = await this.#o.limits.acquire(found.task, { token, leaseMs, next });
    if (limited === undefined) return false;
    next = limited.next;
    const key = q.keys.task(found.task.id);
    const unsafe = this.#refusals.claiming(key, found.etag);
    if (unsafe !== undefined) {
      this.#o.onUnsafe(found.task.id, unsafe);
      return false;
    }
    let refused = false;
    let unsettled = false;
    let written: Versioned | undefined;
    this.#readAhead(found.task.id);
    try {
      written = await q.write(found, next, {
        onPreconditionFailed: () => (refused = true),
        onUnsettled: () => (unsettled = true),
      });
    } catch (error) {
      this.#o.probes.confirm(next, token, found.etag); // a slot it holds expires with its lease
      throw error;
    }
    if (written === undefined && unsettled) {
      // Lost for now, but the PUT may still land: watch for it, as after a failed read-back.
      this.#o.probes.confirm(next, token, found.etag);
      return false;
    }
    if (written === undefined) {
      this.#o.limits.release(limited.grant);
      this.#contended(found.task.id);
      if (refused) this.#refusals.refused(key, found.etag);
      return false;
    }
    this.#refusals.won();
    this.#listingAhead.claimed(found.task.id);
    this.#wastedInRow = 0;
    this.#o.start(written, { token, leaseMs, entry, grant: limited.grant });
    return true;
  }
}
