/**
 * The due markers of a worker's last listing that it has not tried yet, and the orders in which
 * it tries them (`./priority-order.ts` says which orders; this file makes walking them cheap).
 *
 * Why a class of its own: a listing holds up to a page (1,000 markers; it held three pages when
 * this was measured) and a draining worker walks it at least once per claim. Copying, rotating
 * and re-scanning the whole list on every walk was the largest item of a 4-worker drain's CPU
 * profile (issue 15: 6,089 whole-list scans of 1,722 markers on average to drain 3,000 tasks,
 * more CPU than the requests' signing). Here what the listing says about priorities is found
 * once, a walk is lazy and costs only the markers it passes, and a tried marker is set aside
 * instead of spliced out. A walk of this worker's own share starts past the run of markers at the
 * listing's head that were tried or are not its own, so a worker of four does not step over the
 * others' shares on every claim.
 *
 * @module
 */
import type { Candidate } from "./monitor.ts";
import { mixedPriorities, stealOrder } from "./priority-order.ts";

/** Which markers are this worker's own (`Peers.mine`), and a value that changes when that may. */
export interface OwnShare {
  mine: (id: string) => boolean;
  /** Changes whenever `mine` may answer differently (the live peers change). */
  version: unknown;
}

/** The untried markers of one listing (in the listing's order: by effective priority). */
export class Candidates {
  readonly #list: readonly Candidate[];
  /** Each marker by its full key: membership, and the read-ahead's marker found at once. */
  readonly #byKey = new Map<string, Candidate>();
  readonly #tried = new Set<Candidate>();
  readonly #mixed: boolean;
  /** Every marker before `from` was tried or is not ours, as long as the share is `version`. */
  readonly #ownHead = { from: 0, version: undefined as unknown };

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
   * all; only those of `own` share, when given. A marker set aside during the walk is not yielded
   * after that.
   */
  walk(
    options: { first?: string | undefined; random?: () => number } = {},
    own?: OwnShare,
  ): Iterable<Candidate> {
    const head = options.first === undefined ? undefined : this.#byKey.get(options.first);
    const lead = head === undefined || this.#tried.has(head) ? undefined : head;
    const ownHead = this.#ownHead;
    if (own !== undefined && own.version !== ownHead.version) {
      ownHead.version = own.version;
      ownHead.from = 0;
    }
    const n = this.#list.length;
    const { random } = options;
    const rotated = random !== undefined;
    // Not rotated, a walk of our own share starts at its head (nothing before it is for us).
    const from = rotated ? Math.floor(random() * n) : own === undefined ? 0 : ownHead.from;
    const list = this.#list;
    const tried = this.#tried;
    return (function* () {
      if (lead !== undefined) yield lead;
      // Rotated: every marker, wrapping around. Not: from the head to the end.
      const count = rotated ? n : n - from;
      for (let step = 0; step < count; step++) {
        const at = (from + step) % n;
        const marker = list[at]!;
        const gone = tried.has(marker) || (own !== undefined && !own.mine(marker.id));
        if (gone && own !== undefined && !rotated && at === ownHead.from) ownHead.from = at + 1;
        if (!gone && marker !== lead) yield marker;
      }
    })();
  }

  /** Those left in the order a worker steals them (`stealOrder`). */
  stealOrder(random: () => number): Candidate[] {
    return stealOrder(this.left(), random, this.#mixed);
  }
}
