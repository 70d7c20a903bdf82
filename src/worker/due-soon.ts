/**
 * What a drain waits for before it ends: tasks that may be due by the server's clock but not yet
 * by the worker's lower bound of it (a submit a moment ago, stamped by a clock ahead of that
 * bound; markers have second resolution). Kept by the poller, read by `drain()`.
 *
 * @module
 */

/** Local times by which tasks the poller saw, maybe due already, surely are. */
export class DueSoon {
  /** The earliest marker the last listing stopped at past the lower bound but within the upper. */
  #listedPast: number | undefined;
  /** Marker key → local time its task, read before it was due, surely is. Kept across passes:
   * the skip list hides those markers from the next ones. */
  readonly #read = new Map<string, number>();

  /** A pass begins at local time `localMs`: forget what its listing will see again. */
  startPass(localMs: number): void {
    this.#listedPast = undefined;
    for (const [key, at] of this.#read) if (at <= localMs) this.#read.delete(key);
  }

  /** The listing stopped at a marker that surely is due at local `localMs`. */
  listedPast(localMs: number): void {
    this.#listedPast = Math.min(this.#listedPast ?? Number.POSITIVE_INFINITY, localMs);
  }

  /** The task of marker `key` was read before it was due; it surely is at local `localMs`. */
  read(key: string, localMs: number): void {
    this.#read.set(key, localMs);
  }

  /** The soonest of them (local ms), or `undefined` when none. */
  get until(): number | undefined {
    const soonest = Math.min(this.#listedPast ?? Number.POSITIVE_INFINITY, ...this.#read.values());
    return soonest === Number.POSITIVE_INFINITY ? undefined : soonest;
  }
}
