/**
 * Check: concurrent creators. `writers` concurrent `If-None-Match: *` PUTs, `rounds` times:
 * exactly one winner each.
 *
 * @module
 */
import type { PutOptions } from "../storage/storage.ts";
import type { Probe } from "./probe.ts";
import { decidedRace } from "./race.ts";

/** Run the check, pushing evidence; throws `CheckFailed` when it fails. */
export async function checkCreateRace(
  p: Probe,
  writers: number,
  rounds: number,
  evidence: string[],
): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const key = p.key(`create-race-${r}`);
    const options: PutOptions = { ifNoneMatch: "*" };
    await decidedRace(p, key, writers, options, evidence, `create race ${r + 1}`);
  }
}
