/**
 * One race round, shared by the create and swap race checks: many concurrent conditional PUTs of
 * distinct bodies on one key must have exactly one winner, whose body is stored.
 *
 * @module
 */
import { AmbiguousWriteError, ConflictError, PreconditionFailedError } from "../errors.ts";
import type { PutOptions } from "../storage/storage.ts";
import { ADVICE_RACE } from "./advice.ts";
import { bail, CheckFailed, headerText, type Outcome, type Probe } from "./probe.ts";

/**
 * A race round that must be decided: {@link race}, run once more when nobody won (every writer
 * got 409 or no answer, and nothing was stored: inconclusive, not unsafe); throws
 * {@link noWinner} when it stays undecided.
 */
export async function decidedRace(
  p: Probe,
  key: string,
  writers: number,
  options: PutOptions,
  evidence: string[],
  label: string,
): Promise<void> {
  if (await race(p, key, writers, options, evidence, label)) return;
  if (await race(p, key, writers, options, evidence, `${label} (again)`)) return;
  throw noWinner();
}

/** One race round: `writers` concurrent conditional PUTs of distinct bodies on one key. */
export async function race(
  p: Probe,
  key: string,
  writers: number,
  options: PutOptions,
  evidence: string[],
  label: string,
): Promise<boolean> {
  const bodies = Array.from({ length: writers }, (_, i) => p.body(`${label} writer ${i}`));
  const results = await Promise.all(bodies.map((b) => p.put(key, b, options)));
  const won: number[] = [];
  const lost: number[] = [];
  const ambiguous: number[] = [];
  for (const [i, r] of results.entries()) {
    if (r.ok) won.push(i);
    else if (r.error instanceof PreconditionFailedError || r.error instanceof ConflictError)
      lost.push(i);
    else if (r.error instanceof AmbiguousWriteError) ambiguous.push(i);
    else bail(r, `Writer ${i} of the ${label}`);
  }
  const read = await p.get(key);
  if (!read.ok) bail(read, `Reading the ${label} result`);
  const stored = read.value === undefined ? -1 : bodies.indexOf(read.value.body);
  // An ambiguous answer is settled by the stored body: that writer won if its body is there.
  for (const i of ambiguous) if (i === stored) won.push(i);
  const statusCounts = new Map<string, number>();
  for (const r of results) {
    const s = r.line.slice(r.line.indexOf("-> ") + 3).replace(/ ETag .*/, "");
    statusCounts.set(s, (statusCounts.get(s) ?? 0) + 1);
  }
  const summary = [...statusCounts].map(([s, n]) => `${n}x ${s}`).join(", ");
  evidence.push(
    `${writers} concurrent PUT ${key}${headerText(options)} -> ${summary}; winners: ${won.length}; stored body: ${stored === -1 ? (read.value === undefined ? "absent" : "foreign") : `writer ${stored}`}`,
  );
  return judge(won, stored, results);
}

/**
 * The round's verdict: true with exactly one winner whose body is stored, false when nobody won
 * and a writer got 409 or no answer (undecided); throws `CheckFailed` for anything else.
 */
function judge(won: number[], stored: number, results: Outcome<unknown>[]): boolean {
  const writers = results.length;
  if (won.length > 1) {
    throw new CheckFailed(
      `${won.length} of ${writers} concurrent conditional writers were told they won (writers ${won.join(", ")}): the backend does not enforce the condition under concurrency.`,
      true,
      ADVICE_RACE,
    );
  }
  if (won.length === 1 && stored !== won[0]) {
    throw new CheckFailed(
      `Writer ${won[0]} won, but the object holds ${stored === -1 ? "another body" : `writer ${stored}'s body`}: a write reported as lost landed.`,
      true,
      ADVICE_RACE,
    );
  }
  if (won.length === 0 && stored !== -1) {
    throw new CheckFailed(
      `Every writer was told it lost, but the object holds writer ${stored}'s body: a won write was reported as 412 (a client retrying a committed write does this).`,
      true,
      ADVICE_RACE,
    );
  }
  if (won.length === 0) {
    // Nobody won and nothing is stored. 409s, or answers lost with nothing landing (MinIO below
    // write quorum answers every writer 503 SlowDownWrite), leave the round undecided: no writer
    // was refused wrongly, none was told it won. Only a round of 412s alone is a wrong refusal.
    const undecided = results.some(
      (r) => !r.ok && (r.error instanceof ConflictError || r.error instanceof AmbiguousWriteError),
    );
    if (!undecided) {
      throw new CheckFailed(
        `All ${writers} writers were refused with 412 although the condition held for the first of them: the backend evaluates the condition wrongly.`,
        true,
        ADVICE_RACE,
      );
    }
    return false;
  }
  return true;
}

/** The check's failure when a race stayed undecided twice in a row. */
function noWinner(): CheckFailed {
  return new CheckFailed(
    "Twice in a row nobody won: every concurrent writer was refused with 409 or got no answer (a 5xx such as 503 SlowDownWrite) and nothing was stored, so the race could not be decided.",
    false,
    "Run oq doctor again; if it keeps happening, the backend cannot settle concurrent conditional writes and is unfit for oq.",
  );
}
