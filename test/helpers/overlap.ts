/**
 * Measures of runs observed by handlers: how many ran at once, how many started within a window.
 * The limit tests use them to check what workers did, not what they meant to do.
 */

/** The most intervals `[start, end)` that overlap at any moment. */
export function maxOverlap(runs: readonly { start: number; end: number }[]): number {
  const edges = runs.flatMap((r) => [
    { at: r.start, d: 1 },
    { at: r.end, d: -1 },
  ]);
  // An end at the same moment as a start comes first: the slot was free by then.
  edges.sort((a, b) => a.at - b.at || a.d - b.d);
  let running = 0;
  let most = 0;
  for (const e of edges) {
    running += e.d;
    most = Math.max(most, running);
  }
  return most;
}

/** The most of `times` within any window `[t, t + windowMs)`. */
export function mostInWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}
