/**
 * The finished journal: small objects under `done/{type}/{status}/{time}/` listing the tasks
 * that reached a terminal state, so that pruning, the dead-letter list and listing finished
 * tasks never read every stored task (docs/protocol.md, "The finished journal"). A writer
 * buffers the tasks it finishes and writes one journal per type and status at most every
 * {@link JOURNAL_FLUSH_MS} (or every {@link JOURNAL_MAX_ENTRIES}), so a task costs a share of one
 * PUT, not one of its own.
 *
 * @module
 */
import * as v from "valibot";
import { MalformedObjectError } from "../errors.ts";
import { type FinishedStatus, isTaskId, type JournalKey, type Keys } from "../keys.ts";
import type { Logger } from "../logger.ts";
import type { Storage } from "../storage/storage.ts";
import { getBounded } from "../store/bounds.ts";
import type { TaskRecord } from "../task/record.ts";
import { isTerminal } from "../task/transitions.ts";
import { errorMessage } from "../util/errors.ts";
import { validate } from "../util/schema.ts";
import { payloadKeys } from "./payloads.ts";

/** A writer flushes its buffered entries at most this long after the first, ms. */
export const JOURNAL_FLUSH_MS = 5000;

/** A writer flushes a type and status as soon as this many entries are buffered. */
export const JOURNAL_MAX_ENTRIES = 1000;

/** One finished task in a journal. */
export interface JournalEntry {
  /** The task id. */
  id: string;
  /** When it finished: its `finishedAt` as written (ISO 8601). */
  at: string;
  /**
   * True when the task had an idempotency key: a later submit may replace it under the same id
   * once its key's window has passed. Absent (false) otherwise. A note for readers of the
   * journal; pruning reads every task before deleting it, keyed or not.
   */
  keyed?: boolean;
  /**
   * The payload objects (large input, output) the task named, relative to the prefix. Absent
   * when there are none. A note for readers of the journal: pruning deletes the payloads the
   * task's record names, never a journal's list (a journal may be written by hand).
   */
  payloads?: string[];
}

/** The stored journal object. */
export interface Journal {
  /** Always `"journal"`: what this object is. */
  oq: "journal";
  /** The tasks' type. */
  type: string;
  /** The terminal status they reached. */
  status: FinishedStatus;
  /** The tasks, in the order they finished. */
  entries: JournalEntry[];
}

/**
 * A journal as read: the entries that name a task, and what was wrong with those that do not.
 */
export interface ReadJournal extends Journal {
  /**
   * Set when entries were left out because their `id` is not a task id (an empty string, a
   * path, `..`: a journal written by hand or by a buggy writer). It names the journal's key and
   * the first such id; readers warn with it and never delete the journal, so it stays for an
   * operator to fix or remove.
   */
  invalid?: MalformedObjectError;
}

const journalSchema = v.looseObject({
  oq: v.literal("journal"),
  type: v.string(),
  status: v.picklist(["completed", "failed", "cancelled", "expired"]),
  entries: v.array(
    v.looseObject({
      id: v.string(),
      at: v.string(),
      keyed: v.exactOptional(v.boolean()),
      payloads: v.exactOptional(v.array(v.string())),
    }),
  ),
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a {@link FinishedJournal} works with. */
export interface JournalDeps {
  storage: Storage;
  keys: Keys;
  logger: Logger;
  randomHex: (length: number) => string;
}

interface Group {
  type: string;
  status: FinishedStatus;
  entries: JournalEntry[];
  latestMs: number;
}

/** The finished journal of one queue: buffered writes, reads and listings. */
export class FinishedJournal {
  readonly #deps: JournalDeps;
  readonly #groups = new Map<string, Group>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(deps: JournalDeps) {
    this.#deps = deps;
  }

  /** Entries waiting for the next flush. */
  get buffered(): number {
    let n = 0;
    for (const group of this.#groups.values()) n += group.entries.length;
    return n;
  }

  /** Note that `task` (as just written) reached a terminal state. */
  record(task: TaskRecord): void {
    if (!isTerminal(task.status)) return;
    const payloads = payloadKeys(task);
    this.#add(task.type, task.status as FinishedStatus, [
      {
        id: task.id,
        at: task.finishedAt ?? task.updatedAt,
        ...(task.idempotencyKey === null ? {} : { keyed: true }),
        ...(payloads.length === 0 ? {} : { payloads }),
      },
    ]);
  }

  /** Buffer `entries`; a retry after a failed write waits for the timer, never flushes at once. */
  #add(
    taskType: string,
    status: FinishedStatus,
    entries: readonly JournalEntry[],
    retrying = false,
  ): void {
    const name = `${taskType}/${status}`;
    let group = this.#groups.get(name);
    if (group === undefined) {
      group = { type: taskType, status, entries: [], latestMs: 0 };
      this.#groups.set(name, group);
    }
    for (const entry of entries) {
      group.entries.push(entry);
      group.latestMs = Math.max(group.latestMs, Date.parse(entry.at));
    }
    if (group.entries.length >= JOURNAL_MAX_ENTRIES && !retrying) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), JOURNAL_FLUSH_MS);
  }

  /**
   * Write every buffered entry now (one PUT per type and status). A journal that cannot be
   * written stays buffered for the next flush, with a warning: its tasks are not lost, only not
   * yet prunable or listed as finished.
   */
  flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const groups = [...this.#groups.values()];
    this.#groups.clear();
    // Flushes run one after another, so a journal's key time never goes backwards for a writer.
    this.#flushing = this.#flushing.then(() => this.#write(groups));
    return this.#flushing;
  }

  async #write(groups: Group[]): Promise<void> {
    const { storage, keys, randomHex, logger } = this.#deps;
    for (const group of groups) {
      const key = keys.newJournal(group.type, group.status, group.latestMs, randomHex(16));
      const body: Journal = {
        oq: "journal",
        type: group.type,
        status: group.status,
        entries: group.entries,
      };
      try {
        await storage.put(key, encoder.encode(`${JSON.stringify(body)}\n`), {
          contentType: "application/json",
        });
      } catch (error) {
        logger.warn(
          `could not write the finished journal of ${group.entries.length} ${group.type} tasks (${group.status}); kept for the next flush: ${errorMessage(error)}`,
        );
        this.#add(group.type, group.status, group.entries, true);
      }
    }
  }

  /**
   * Read the journal at `key`. Throws `MalformedObjectError` for an object that is not one (or is
   * larger than any document oq writes: it is not read).
   * Entries whose id is not a task id are left out and reported in `invalid`: they name no task
   * object (a key built from them is none oq wrote), and one bad entry should not hide or block
   * the others.
   */
  async read(key: string): Promise<ReadJournal> {
    const got = await getBounded(this.#deps.storage, key);
    let value: unknown;
    try {
      value = JSON.parse(decoder.decode(got.body));
    } catch {
      throw new MalformedObjectError(`Object ${key} is not a finished journal: not JSON.`, { key });
    }
    const result = validate(journalSchema, value);
    if (!result.ok)
      throw new MalformedObjectError(
        `Object ${key} is not a valid finished journal: ${result.summary}`,
        { key },
      );
    const journal = result.value as Journal;
    const bad = journal.entries.filter((e) => !isTaskId(e.id));
    if (bad.length === 0) return journal;
    const first = JSON.stringify(bad[0]!.id.slice(0, 140));
    return {
      ...journal,
      entries: journal.entries.filter((e) => isTaskId(e.id)),
      invalid: new MalformedObjectError(
        `Object ${key} is a finished journal with ${bad.length} ${bad.length === 1 ? "entry" : "entries"} whose id is not a task id (the first: ${first})`,
        { key },
      ),
    };
  }

  /**
   * Journal keys of `type` tasks that reached `status`, oldest first, across pages: after
   * `startAfter` (a full key), and only those whose time is at or before `untilMs`; the time of
   * the first journal after it goes to `beyond.timeMs`. Keys that are not journals are skipped
   * with a warning.
   */
  async *list(
    taskType: string,
    status: FinishedStatus,
    options: { startAfter?: string; untilMs?: number; beyond?: { timeMs?: number } } = {},
  ): AsyncGenerator<JournalKey> {
    const { storage, keys, logger } = this.#deps;
    let continuationToken: string | undefined;
    for (;;) {
      const page = await storage.list({
        prefix: keys.journals(taskType, status),
        ...(continuationToken !== undefined
          ? { continuationToken }
          : options.startAfter !== undefined
            ? { startAfter: options.startAfter }
            : {}),
      });
      for (const o of page.objects) {
        const journal = keys.parseJournal(o.key);
        if (journal === undefined) {
          logger.warn(
            `skipping ${o.key}: not a finished journal (expected done/<type>/<status>/<time>/<hex>.json)`,
          );
          continue;
        }
        if (options.untilMs !== undefined && journal.timeMs > options.untilMs) {
          if (options.beyond) options.beyond.timeMs = journal.timeMs;
          return;
        }
        yield journal;
      }
      if (!page.isTruncated) return;
      continuationToken = page.nextContinuationToken;
    }
  }

  /** The types with journals (one delimiter LIST per 1,000 types). */
  async types(): Promise<string[]> {
    const { storage, keys } = this.#deps;
    const types = new Set<string>();
    let continuationToken: string | undefined;
    do {
      const page = await storage.list({
        prefix: keys.done,
        delimiter: "/",
        ...(continuationToken === undefined ? {} : { continuationToken }),
      });
      for (const prefix of page.prefixes ?? []) types.add(prefix.slice(keys.done.length, -1));
      // A storage that ignores the delimiter returns whole keys: roll them up here.
      for (const o of page.objects) {
        const parsed = keys.parseJournal(o.key);
        if (parsed !== undefined) types.add(parsed.type);
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken !== undefined);
    return [...types].sort();
  }
}
