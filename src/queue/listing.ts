/**
 * Listing tasks through the indexes (docs/protocol.md, "Listing tasks"): pending and running
 * tasks from the ready index, finished ones from the finished journal, each index read as
 * streams in time order (one per partition of a type, one per type and terminal status) merged
 * by time. It never lists `tasks/`: a task costs the one GET that reads it, and only tasks the
 * filters can match are read. A cursor holds every stream's position, so a page resumes exactly
 * where the last one stopped.
 *
 * @module
 */
import { parseDate } from "../duration.ts";
import { MalformedObjectError, NotFoundError, ValidationError } from "../errors.ts";
import { checkTaskType, type FinishedStatus, type ReadyMarker, timeKey } from "../keys.ts";
import { checkOptions, listOptionsSchema } from "../options.ts";
import type { TaskRecord, TaskStatus } from "../task/record.ts";
import { TERMINAL_STATUSES } from "../task/transitions.ts";
import { mapLimit } from "../util/async.ts";
import type { QueueInternals } from "./internals.ts";
import type { Journal, JournalEntry } from "./journal.ts";
import type { ListTasksOptions } from "./types.ts";

/** Tasks read at once while listing. */
const READ_CONCURRENCY = 16;

/**
 * A running task whose first lease check has not moved its marker yet still sits at its pending
 * marker, due when it was claimed: listing running tasks reads pending markers due up to this
 * long after now too, in case the claimer's clock ran ahead.
 */
const CLOCK_SLACK_MS = 60_000;

/** One entry of a stream: a task the listing may return, once read and checked. */
interface Item {
  id: string;
  /** Merge order: a marker's time (the second in its key), a journal entry's finish time. */
  atMs: number;
  /** Whether the task as read is what this entry stands for (not stale, not another). */
  matches(task: TaskRecord): boolean;
}

/** Where a stream stands: the last marker key taken, or a journal key and the entries taken. */
type Position = string | [string, number];

/** An index range read in its own order, one item ahead. */
interface Stream {
  readonly name: string;
  /** The next item, or `undefined` at the end (after {@link advance}). */
  readonly head: Item | undefined;
  /** Move past the head, reading the next page or journal when needed. */
  advance(): Promise<void>;
  /** The position after the items taken so far (`undefined`: none, from the start). */
  readonly position: Position | undefined;
}

/** One partition of a type's ready index: its markers in key (time) order. */
class MarkerStream implements Stream {
  readonly name: string;
  head: (Item & { relative: string }) | undefined;
  position: string | undefined;
  readonly #markers: AsyncGenerator<ReadyMarker>;
  readonly #accept: (marker: ReadyMarker) => boolean;
  readonly #wanted: ReadonlySet<TaskStatus>;

  constructor(
    q: QueueInternals,
    type: string,
    part: string,
    after: string | undefined,
    accept: (marker: ReadyMarker) => boolean,
    wanted: ReadonlySet<TaskStatus>,
  ) {
    this.name = `r/${type}/${part}`;
    this.position = after;
    this.#accept = accept;
    this.#wanted = wanted;
    this.#markers = q.markers({
      prefix: `${q.keys.readyType(type)}${part}/`,
      ...(after === undefined ? {} : { startAfter: q.keys.full(after) }),
    });
  }

  async advance(): Promise<void> {
    if (this.head !== undefined) this.position = this.head.relative;
    for (;;) {
      const next = await this.#markers.next();
      if (next.done === true) {
        this.head = undefined;
        return;
      }
      const marker = next.value;
      // A marker that cannot stand for a wanted status costs nothing; the next cursor starts
      // after the last marker taken, so it is passed over again, as cheaply.
      if (!this.#accept(marker)) continue;
      const wanted = this.#wanted;
      this.head = {
        id: marker.id,
        relative: marker.relative,
        atMs: marker.dueMs,
        matches: (task) =>
          task.marker === marker.relative && task.type === marker.type && wanted.has(task.status),
      };
      return;
    }
  }
}

/** One type's journals of one terminal status, entries in journal order. */
class JournalStream implements Stream {
  readonly name: string;
  head: (Item & { journal: string; index: number }) | undefined;
  position: [string, number] | undefined;
  readonly #entries: AsyncGenerator<Item & { journal: string; index: number }>;

  constructor(
    q: QueueInternals,
    type: string,
    status: FinishedStatus,
    after: [string, number] | undefined,
    bounds: { sinceMs?: number; untilMs?: number },
  ) {
    this.name = `d/${type}/${status}`;
    this.position = after;
    this.#entries = journalEntries(q, type, status, after, bounds);
  }

  async advance(): Promise<void> {
    if (this.head !== undefined) this.position = [this.head.journal, this.head.index + 1];
    const next = await this.#entries.next();
    this.head = next.done === true ? undefined : next.value;
  }
}

/**
 * The entries of a type's journals of `status`, oldest journal first, each journal's entries by
 * finish time: from the cursor's journal on (its first `taken` entries skipped), else from the
 * first journal whose time is not before `sinceMs`. Entries outside the bounds are passed over
 * unread. A journal gone meanwhile (pruned) is skipped.
 */
async function* journalEntries(
  q: QueueInternals,
  type: string,
  status: FinishedStatus,
  after: [string, number] | undefined,
  bounds: { sinceMs?: number; untilMs?: number },
): AsyncGenerator<Item & { journal: string; index: number }> {
  let startAfter: string | undefined;
  if (after !== undefined) {
    const [relative, taken] = after;
    yield* entriesOf(q, q.keys.full(relative), status, taken, bounds);
    startAfter = q.keys.full(relative);
  } else if (bounds.sinceMs !== undefined) {
    // A journal's key time is at or after all of its entries: those before `since` hold none
    // wanted. `…/{time}` sorts before every key of that second and after every earlier one.
    startAfter = `${q.keys.journals(type, status)}${timeKey(bounds.sinceMs)}`;
  }
  for await (const journal of q.journal.list(
    type,
    status,
    startAfter === undefined ? {} : { startAfter },
  ))
    yield* entriesOf(q, journal.key, status, 0, bounds);
}

async function* entriesOf(
  q: QueueInternals,
  key: string,
  status: FinishedStatus,
  from: number,
  bounds: { sinceMs?: number; untilMs?: number },
): AsyncGenerator<Item & { journal: string; index: number }> {
  const parsed = q.keys.parseJournal(key);
  const journal = parsed === undefined ? undefined : await readJournal(q, key);
  if (parsed === undefined || journal === undefined) return;
  const relative = key.slice(q.keys.prefix.length);
  const entries = sortedEntries(journal);
  for (let index = from; index < entries.length; index++) {
    const { entry, atMs } = entries[index]!;
    if (bounds.sinceMs !== undefined && !(atMs >= bounds.sinceMs)) continue;
    if (bounds.untilMs !== undefined && !(atMs <= bounds.untilMs)) continue;
    yield {
      id: entry.id,
      atMs,
      journal: relative,
      index,
      // A failed, cancelled or expired task may have been replayed since (and may have ended
      // again, in a later journal): only the entry of its current end stands for it.
      matches: (task) =>
        task.status === status &&
        task.type === journal.type &&
        (task.finishedAt ?? task.updatedAt) === entry.at,
    };
  }
}

/** A journal's entries by finish time (then id): the same order every time it is read. */
function sortedEntries(journal: Journal): { entry: JournalEntry; atMs: number }[] {
  return journal.entries
    .map((entry) => ({ entry, atMs: Date.parse(entry.at) }))
    .sort(
      (a, b) => a.atMs - b.atMs || (a.entry.id < b.entry.id ? -1 : a.entry.id > b.entry.id ? 1 : 0),
    );
}

async function readJournal(q: QueueInternals, key: string): Promise<Journal | undefined> {
  try {
    const journal = await q.journal.read(key);
    if (journal.invalid !== undefined)
      q.logger.warn(`${journal.invalid.message}; those entries are skipped`);
    return journal;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    if (error instanceof MalformedObjectError) {
      q.logger.warn(`skipping ${key}: ${error.message}`);
      return undefined;
    }
    throw error;
  }
}

/** What a cursor holds: each stream's position and the time bounds of its listing. */
interface CursorState {
  v: 1;
  since?: number;
  until?: number;
  at: Record<string, Position>;
}

function encodeCursor(state: CursorState): string {
  // Positions are keys relative to the prefix: ASCII only (types and ids are), so btoa is safe.
  return btoa(JSON.stringify(state)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string): CursorState {
  const invalid = () =>
    new ValidationError(
      "Invalid cursor: pass the cursor of the previous page of the same listing unchanged.",
    );
  let state: unknown;
  try {
    state = JSON.parse(atob(cursor.replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    throw invalid();
  }
  const s = state as Partial<CursorState> | null;
  if (
    typeof s !== "object" ||
    s === null ||
    s.v !== 1 ||
    typeof s.at !== "object" ||
    s.at === null ||
    (s.since !== undefined && typeof s.since !== "number") ||
    (s.until !== undefined && typeof s.until !== "number") ||
    !Object.values(s.at).every(
      (p) =>
        typeof p === "string" ||
        (Array.isArray(p) &&
          p.length === 2 &&
          typeof p[0] === "string" &&
          Number.isInteger(p[1]) &&
          p[1] >= 0),
    )
  )
    throw invalid();
  return s as CursorState;
}

const LIVE: readonly TaskStatus[] = ["pending", "running"];

/** A listing of tasks through the indexes, read a batch at a time (see the module). */
export class TaskListing {
  readonly #q: QueueInternals;
  readonly #streams: Stream[];
  readonly #bounds: { sinceMs?: number; untilMs?: number };

  private constructor(
    q: QueueInternals,
    streams: Stream[],
    bounds: { sinceMs?: number; untilMs?: number },
  ) {
    this.#q = q;
    this.#streams = streams;
    this.#bounds = bounds;
  }

  /**
   * Open a listing: check the options, find the streams (the types with markers or journals,
   * unless `type` names one; the partitions of each) and read each one's first page.
   */
  static async open(q: QueueInternals, given: ListTasksOptions): Promise<TaskListing> {
    const options = checkOptions(listOptionsSchema, given, "list options");
    if (options.type !== undefined) checkTaskType(options.type);
    const state = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const bounds = timeBounds(options, state);
    const wanted = new Set<TaskStatus>(
      options.status === undefined ? [...LIVE, ...TERMINAL_STATUSES] : [options.status].flat(),
    );
    const at = state?.at ?? {};
    // What this queue finished itself is listed too, not only once its journal is written.
    await q.journal.flush();
    const streams: Stream[] = [];
    const live = LIVE.filter((s) => wanted.has(s));
    if (live.length > 0) {
      const accept = markerFilter(new Set(live), q.now());
      const types =
        options.type !== undefined
          ? [options.type]
          : validTypes(await q.index.children(q.keys.ready));
      const parts = await mapLimit(types, READ_CONCURRENCY, async (type) => ({
        type,
        parts: (await q.index.children(q.keys.readyType(type))).filter((p) => PART.test(p)),
      }));
      for (const { type, parts: names } of parts)
        for (const part of names) {
          const name = `r/${type}/${part}`;
          const after = at[name];
          streams.push(
            new MarkerStream(
              q,
              type,
              part,
              typeof after === "string" ? after : undefined,
              accept,
              wanted,
            ),
          );
        }
    }
    const finished = TERMINAL_STATUSES.filter((s) => wanted.has(s)) as FinishedStatus[];
    if (finished.length > 0) {
      const types = options.type !== undefined ? [options.type] : await q.journal.types();
      for (const type of types)
        for (const status of finished) {
          const after = at[`d/${type}/${status}`];
          streams.push(
            new JournalStream(q, type, status, Array.isArray(after) ? after : undefined, bounds),
          );
        }
    }
    await mapLimit(streams, READ_CONCURRENCY, (s) => s.advance());
    return new TaskListing(q, streams, bounds);
  }

  /** True once every stream is read to its end. */
  get exhausted(): boolean {
    return this.#streams.every((s) => s.head === undefined);
  }

  /**
   * Up to `limit` tasks that match, in merge order, reading (at most `limit` at a time) only the
   * tasks the index entries name. Fewer only when the listing is exhausted.
   */
  async next(limit: number): Promise<TaskRecord[]> {
    const found: TaskRecord[] = [];
    // A journal written again after a lost response can name a task twice.
    const seen = new Set<string>();
    while (found.length < limit) {
      const batch: Item[] = [];
      while (batch.length < limit - found.length) {
        const stream = this.#first();
        if (stream === undefined) break;
        batch.push(stream.head!);
        await stream.advance();
      }
      if (batch.length === 0) break;
      const tasks = await mapLimit(batch, READ_CONCURRENCY, (item) => this.#read(item.id));
      for (const [i, task] of tasks.entries()) {
        if (task === undefined || !batch[i]!.matches(task) || seen.has(task.id)) continue;
        seen.add(task.id);
        found.push(task);
      }
    }
    return found;
  }

  /** Where the next page starts; `undefined` when the listing is exhausted. */
  cursor(): string | undefined {
    if (this.exhausted) return undefined;
    const state: CursorState = { v: 1, at: {} };
    if (this.#bounds.sinceMs !== undefined) state.since = this.#bounds.sinceMs;
    if (this.#bounds.untilMs !== undefined) state.until = this.#bounds.untilMs;
    for (const s of this.#streams) if (s.position !== undefined) state.at[s.name] = s.position;
    return encodeCursor(state);
  }

  /**
   * The stream whose head comes first: by time (a finished task's finish time), then stream name.
   * Each stream keeps its own order, so the merge is exactly by time when every stream is in time
   * order (one writer's journals are) and close to it otherwise.
   */
  #first(): Stream | undefined {
    let best: Stream | undefined;
    for (const s of this.#streams) {
      const h = s.head;
      if (h === undefined) continue;
      const b = best?.head;
      if (b === undefined || h.atMs < b.atMs || (h.atMs === b.atMs && s.name < best!.name))
        best = s;
    }
    return best;
  }

  async #read(id: string): Promise<TaskRecord | undefined> {
    try {
      return (await this.#q.read(id))?.task;
    } catch (error) {
      // A malformed object or an id no task could have (in a journal written by hand).
      if (error instanceof ValidationError) {
        this.#q.logger.warn(`skipping task ${id} while listing: ${error.message}`);
        return undefined;
      }
      throw error;
    }
  }
}

const PART = /^(0|[1-9][0-9]{0,2})$/;

function validTypes(names: string[]): string[] {
  return names.filter((name) => {
    try {
      checkTaskType(name);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Which markers can stand for a wanted live status, judged from the key alone: a `.lease`
 * marker is a running task's; any other is a pending task's, or a running one's claimed when it
 * was due (its first lease check moves it).
 */
function markerFilter(
  live: ReadonlySet<TaskStatus>,
  now: number,
): (marker: ReadyMarker) => boolean {
  if (live.has("pending") && live.has("running")) return () => true;
  if (live.has("pending")) return (m) => m.lease !== true;
  return (m) => m.lease === true || m.dueMs <= now + CLOCK_SLACK_MS;
}

/** The `since` and `until` bounds of a listing: from its cursor when it continues one. */
function timeBounds(
  options: Pick<ListTasksOptions, "since" | "until">,
  state: { since?: number; until?: number } | undefined,
): { sinceMs?: number; untilMs?: number } {
  const bounds: { sinceMs?: number; untilMs?: number } = {};
  const read = (name: "since" | "until"): number | undefined => {
    if (state !== undefined) return state[name];
    const given = options[name];
    return given === undefined ? undefined : parseDate(given, name);
  };
  const sinceMs = read("since");
  const untilMs = read("until");
  if (sinceMs !== undefined) bounds.sinceMs = sinceMs;
  if (untilMs !== undefined) bounds.untilMs = untilMs;
  return bounds;
}
