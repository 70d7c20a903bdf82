/**
 * Heartbeats and the live-peer list. Every worker writes `workers/{id}.json` every
 * `heartbeatSeconds` and, with it, lists `workers/` (no reads) to learn which workers are alive;
 * the id space is split evenly between them ({@link Peers.mine}). Correctness never depends on
 * this: it only saves the GETs of reading tasks another worker is claiming at the same moment.
 * A heartbeat also carries the worker's finished counts, which `queue.stats()` sums; a stopping
 * worker writes its last counts to `workers/stopped/{time}/{id}.json` before it deletes its
 * heartbeat, so they outlive it.
 *
 * @module
 */

import { NotFoundError } from "../errors.ts";
import { partOf } from "../keys.ts";
import { type FinishedCounter, parseSnapshot } from "../queue/finished-counts.ts";
import type { QueueInternals } from "../queue/internals.ts";
import { getBounded } from "../store/bounds.ts";
import { errorMessage } from "../util/errors.ts";
import type { WorkerStats } from "./events.ts";
import { GoneHeartbeats } from "./gone-workers.ts";

/** What a heartbeat says about its worker, besides its id and the time. */
export interface HeartbeatState {
  types: string[];
  concurrency: number;
  active: string[];
  /** Server time at which the worker started (epoch ms). */
  startedAt: number;
  stats: WorkerStats;
  /** The terminal states the worker wrote, by type and minute/hour. Default: none reported. */
  finished?: FinishedCounter;
}

/** A worker that lost a task to another looks for peers again at most this often, ms. */
const CONTENDED_LOOK_MS = 3000;

/** After starting, look for peers again after these pauses (ms), then at each heartbeat. */
const EARLY_LOOKS_MS = [300, 700, 2000];

/** One worker's heartbeat and its view of the live workers. */
export class Peers {
  readonly #queue: QueueInternals;
  readonly #id: string;
  readonly #heartbeatSeconds: number;
  readonly #state: () => HeartbeatState;
  readonly #idIsNew: boolean;
  /** Live worker ids (sorted), for splitting work; just this worker until heartbeats say more. */
  #peers: string[] = [];
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  /** When the live workers were last listed because of contention (local ms). */
  #lookedAt = Number.NEGATIVE_INFINITY;
  #peerTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    queue: QueueInternals,
    id: string,
    heartbeatSeconds: number,
    state: () => HeartbeatState,
    options: {
      /**
       * The id was made up by this process (no `id` option): no earlier run can have left a
       * heartbeat under it, so the start skips looking for one. Default false.
       */
      idIsNew?: boolean;
    } = {},
  ) {
    this.#queue = queue;
    this.#id = id;
    this.#idIsNew = options.idIsNew ?? false;
    this.#heartbeatSeconds = heartbeatSeconds;
    this.#state = state;
  }

  /** The live worker ids, sorted (empty until the first listing). */
  get live(): readonly string[] {
    return this.#peers;
  }

  /**
   * True when a task falls in this worker's share. Workers split the id space evenly between
   * the live workers they see in heartbeats, so they rarely read a task another worker is
   * claiming at the same moment (each such read is a wasted GET).
   */
  mine(id: string): boolean {
    if (this.#peers.length <= 1) return true;
    const slot = Number.parseInt(id.slice(-6), 16) % this.#peers.length;
    return this.#peers[slot] === this.#id;
  }

  /**
   * True when a partition of the ready index (its key prefix) falls in this worker's share of
   * the live workers: monitors split the partitions of types nobody runs this way, so each is
   * scanned about once per round, not once per monitor.
   */
  owns(partition: string): boolean {
    if (this.#peers.length <= 1) return true;
    return this.#peers[partOf(partition, this.#peers.length)] === this.#id;
  }

  /**
   * Write the first heartbeat, then keep writing them. Workers started together miss each other
   * in their first listing: look again soon, and again while a look finds workers the one before
   * did not, until the heartbeat interval takes over.
   * `running` tells whether the worker still runs. Does nothing when heartbeats are off.
   */
  async start(running: () => boolean): Promise<void> {
    if (this.#heartbeatSeconds <= 0) return;
    if (!this.#idIsNew) await this.#keepPreviousCounts();
    await this.heartbeat();
    const again = (delays: number[]) => {
      const [next, ...rest] = delays;
      if (next === undefined) return;
      this.#peerTimer = setTimeout(() => {
        const before = this.#peers.join();
        void this.refresh()
          // A look that found the same workers as the last ends the early looks (workers started
          // together have found each other); a worker started later is found by the next
          // heartbeat's listing, or sooner once it takes tasks of this one's share (`contended`).
          // A failed look says nothing: look again.
          .then(
            () => this.#peers.join() !== before,
            () => true,
          )
          .then((lookAgain) => {
            if (running() && lookAgain) again(rest);
          });
      }, next);
    };
    again(EARLY_LOOKS_MS);
    // One heartbeat at a time: while storage is slow or throttling (a 503 storm), a new one each
    // interval piled up behind the last, and the pile hit the storage all at once.
    let beating = false;
    this.#heartbeatTimer = setInterval(() => {
      if (beating) return;
      beating = true;
      void this.heartbeat().finally(() => {
        beating = false;
      });
    }, this.#heartbeatSeconds * 1000);
  }

  /**
   * A worker id that runs again (a fixed `--id`) after its process was killed, without stopping,
   * would overwrite the heartbeat holding that run's finished counts: copy it to
   * `workers/stopped/` first, when it holds any. One GET per start with a given id (a 404 as a
   * rule); none with a generated one, which is new.
   */
  async #keepPreviousCounts(): Promise<void> {
    const q = this.#queue;
    try {
      const text = new TextDecoder().decode(
        (await getBounded(q.storage, q.keys.worker(this.#id))).body,
      );
      const finished = parseSnapshot((JSON.parse(text) as { finished?: unknown }).finished);
      if (finished === undefined) return;
      if (Object.keys(finished.hours).length === 0 && Object.keys(finished.minutes).length === 0)
        return;
      await q.storage.put(q.keys.stoppedWorker(this.#id, q.now()), text, {
        contentType: "application/json",
      });
    } catch (error) {
      if (error instanceof NotFoundError || error instanceof SyntaxError) return;
      q.logger.warn(`could not keep the previous run's finished counts: ${errorMessage(error)}`, {
        worker: this.#id,
        error,
      });
    }
  }

  /**
   * Stop writing heartbeats; when heartbeats are on, write the last one to
   * `workers/stopped/{time}/{id}.json` when it counts any finished task (so `queue.stats()` keeps
   * counting them), then delete this worker's heartbeat.
   */
  async stop(): Promise<void> {
    if (this.#heartbeatTimer !== undefined) clearInterval(this.#heartbeatTimer);
    if (this.#peerTimer !== undefined) clearTimeout(this.#peerTimer);
    if (this.#heartbeatSeconds <= 0) return;
    await this.keepCounts();
    await this.#queue.storage.delete(this.#queue.keys.worker(this.#id)).catch(() => {});
  }

  /**
   * Write this worker's finished counts to `workers/stopped/` (when it counted any), where
   * `stats()` finds them after the worker is gone; with `clear`, forget them then, so that a
   * worker that only drains (a cron-triggered runtime, no heartbeats between) adds each drain's
   * counts once. Does nothing when heartbeats are off.
   */
  async keepCounts(options: { clear?: boolean } = {}): Promise<void> {
    if (this.#heartbeatSeconds <= 0) return;
    const q = this.#queue;
    const now = q.now();
    const last = this.#body(now);
    const finished = last.finished;
    if (
      finished === undefined ||
      (Object.keys(finished.hours).length === 0 && Object.keys(finished.minutes).length === 0)
    )
      return;
    const body = JSON.stringify({ ...last, stoppedAt: new Date(now).toISOString() });
    try {
      await q.storage.put(q.keys.stoppedWorker(this.#id, now), body, {
        contentType: "application/json",
      });
      if (options.clear === true) this.#state().finished?.clear();
    } catch (error) {
      q.logger.warn(`could not keep this worker's finished counts: ${errorMessage(error)}`, {
        worker: this.#id,
        error,
      });
    }
  }

  /** What a heartbeat written at server time `now` says. */
  #body(now: number) {
    const state = this.#state();
    return {
      id: this.#id,
      types: state.types,
      concurrency: state.concurrency,
      active: state.active,
      startedAt: new Date(state.startedAt).toISOString(),
      seenAt: new Date(now).toISOString(),
      heartbeatSeconds: this.#heartbeatSeconds,
      stats: state.stats,
      ...(state.finished === undefined ? {} : { finished: state.finished.snapshot(now) }),
    };
  }

  /** Write this worker's heartbeat and refresh the peer list; failures are logged, not thrown. */
  async heartbeat(): Promise<void> {
    const q = this.#queue;
    const body = JSON.stringify(this.#body(q.now()));
    try {
      await q.storage.put(q.keys.worker(this.#id), body, { contentType: "application/json" });
      await this.refresh();
    } catch (error) {
      q.logger.warn(`heartbeat failed: ${errorMessage(error)}`, { worker: this.#id, error });
    }
  }

  /**
   * Another worker got to a task of this one's share first: list the live workers again, at most every
   * {@link CONTENDED_LOOK_MS}, so a worker that started after this one's last look gets its share
   * within seconds rather than at the next heartbeat. Costs one LIST, only while contended.
   */
  contended(): void {
    const local = this.#queue.clock.localNow();
    if (this.#heartbeatSeconds <= 0 || local - this.#lookedAt < CONTENDED_LOOK_MS) return;
    this.#lookedAt = local;
    void this.refresh().catch(() => {});
  }

  /**
   * Live workers from the heartbeat listing (one LIST per heartbeat; no reads): those whose
   * heartbeat is younger than three intervals, and always this worker. The first of them also
   * deletes heartbeats of workers gone a day ({@link GoneHeartbeats}). The delimiter rolls
   * `workers/stopped/` up into one entry, so stopped workers' counts are never paged through.
   */
  async refresh(): Promise<void> {
    const q = this.#queue;
    const freshAfter = q.now() - 3 * this.#heartbeatSeconds * 1000;
    const peers = new Set([this.#id]);
    const gone = new GoneHeartbeats(q.keys.workers, q.now(), q.keys.worker(this.#id));
    let continuationToken: string | undefined;
    do {
      const page = await q.storage.list({
        prefix: q.keys.workers,
        delimiter: "/",
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const o of page.objects) {
        gone.see(o);
        const m = /^([^/]+)\.json$/.exec(o.key.slice(q.keys.workers.length));
        if (m !== null && o.lastModified.getTime() >= freshAfter) peers.add(m[1]!);
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken !== undefined);
    this.#peers = [...peers].sort();
    // The first live worker deletes heartbeats of workers gone a day (gone-workers.ts).
    if (this.#peers[0] === this.#id) await gone.delete(q.storage, q.logger);
  }
}
