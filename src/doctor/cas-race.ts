/**
 * Check: concurrent swappers. `writers` concurrent `If-Match` PUTs on one version, `rounds`
 * times: exactly one winner each.
 *
 * @module
 */
import type { PutOptions } from "../storage/storage.ts";
import { bail, type Probe } from "./probe.ts";
import { decidedRace } from "./race.ts";

/** Run the check, pushing evidence; throws `CheckFailed` when it fails. */
export async function checkCasRace(
  p: Probe,
  writers: number,
  rounds: number,
  evidence: string[],
): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const key = p.key(`cas-race-${r}`);
    const base = await p.put(key, p.body(`cas race ${r + 1} base`));
    if (!base.ok) bail(base, "Writing the race's base version");
    evidence.push(base.line);
    const options: PutOptions = { ifMatch: base.value.etag };
    await decidedRace(p, key, writers, options, evidence, `swap race ${r + 1}`);
  }
}
