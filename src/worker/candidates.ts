/**
 * The due markers of a worker's last listing that it has not tried yet, and the orders in which
 * it tries them (`./priority-order.ts` says which orders; this file makes walking them cheap).
 *
 * Why a class of its own: a listing holds up to three pages (3,000 markers) and a draining worker
 * walks it at least once per claim. Copying, rotating and re-scanning the whole list on every walk
 * was the largest item of a 4-worker drain's CPU profile (issue 15: 6,089 whole-list scans of
 * 1,722 markers on average to drain 3,000 tasks, more CPU than the requests' signing). Here what
 * the listing says about priorities is found once, a walk is lazy and costs only the markers it
 * passes, and a tried marker is set aside instead of spliced out.
 *
 * @module
 */
import type { Candidate } from "./monitor.ts";
import { mixedPriorities, stealOrder } from "./priority-order.ts";

/** The untried markers of one listing (in the listing's order: by effective priority). */
export class Candidates {
  readonly #list: readonly Candidate[];
  /** Each marker by its full key: membership, and the read-ahead's marker found at once. */
  readonly #byKey = new Map<string, Candidate>();
  readonly #tried = new Set<Candidate>();
  readonly #mixed: boolean;

  constructor(list: readonly Candidate[] = []) {
    this.#list = list;
    for (const marker of list) this.#byKey.set(marker.key, marker);
    this.#mixed = mixedPriorities(list);
  }

  /** How many are left to try. */
  get size(): number {
    return this.#list.length - this.#tried.size;
  }

  /** Whether the listing holds more than one priority (its order then matters most). */
  get mixed(): boolean {
    return this.#mixed;
  }

  /** Set `marker` aside for the rest of this listing (tried, or given up). */
  remove(marker: Candidate): void {
    if (this.#byKey.get(marker.key) === marker) this.#tried.add(marker);
  }

  /** Those left, in the listing's order (a copy). */
  left(): Candidate[] {
    return this.#list.filter((m) => !this.#tried.has(m));
  }

  /**
   * Those left in the listing's order, lazily: from a random point on (`random()` in [0, 1),
   * called now) when given, wrapping around; the untried marker keyed `first`, when given, before
   * all. A marker set aside during the walk is not yielded after that.
   */
  walk(options: { first?: string | undefined; random?: () => number } = {}): Iterable<Candidate> {
    const head = options.first === undefined ? undefined : this.#byKey.get(options.first);
    const lead = head === undefined || this.#tried.has(head) ? undefined : head;
    const n = this.#list.length;
    const from = options.random === undefined ? 0 : Math.floor(options.random() * n);
    const list = this.#list;
    const tried = this.#tried;
    return (function* () {
      if (lead !== undefined) yield lead;
      for (let i = 0; i < n; i++) {
        const marker = list[(from + i) % n]!;
        if (marker !== lead && !tried.has(marker)) yield marker;
      }
    })();
  }

  /** Those left in the order a worker steals them (`stealOrder`). */
  stealOrder(random: () => number): Candidate[] {
    return stealOrder(this.left(), random, this.#mixed);
  }
}
