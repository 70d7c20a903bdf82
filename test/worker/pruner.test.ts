/**
 * The monitor's pruning past journals it leaves in place on purpose (malformed, or naming ids that
 * are no task ids: kept for an operator). More of them than one step prunes
 * ({@link PRUNE_JOURNALS_PER_STEP}) must neither hold up the journals behind them nor make an idle
 * worker list and read the same journals at every poll. Run on every target (MinIO when
 * `OQ_TEST_S3_*` is set), each with its own prefix, on a local clock the test moves.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { internals } from "../../src/queue/internals.ts";
import { Queue } from "../../src/queue/queue.ts";
import { type CountedStorage, countRequests } from "../../src/storage/count.ts";
import { Monitor } from "../../src/worker/monitor.ts";
import { PRUNE_JOURNALS_PER_STEP } from "../../src/worker/pruner.ts";
import { keysUnder, type TargetInstance, targets } from "../helpers/targets.ts";
import { shared } from "./helpers.ts";

/** The monitor's round in these tests; a poll moves the local clock by {@link POLL_MS}. */
const ROUND_MS = 60_000;
const POLL_MS = 1000;
const POLLS_PER_ROUND = ROUND_MS / POLL_MS;
/** Journals left in place, more than a step handles. */
const LEFT = 20;
/** Prunable journals (one cancelled task each) behind those. */
const BEHIND = 12;

for (const target of targets) {
  describe(`the monitor's pruning past journals left in place, on ${target.name}`, () => {
    let env: TargetInstance;
    let counted: CountedStorage;
    let queue: Queue;
    const clock = { offset: 0, now: () => Date.now() + clock.offset };
    const warnings: string[] = [];
    beforeEach(async () => {
      env = await target.create();
      counted = countRequests(env.storage);
      clock.offset = 0;
      warnings.length = 0;
      const logger = { info() {}, warn: (m: string) => void warnings.push(m), error() {} };
      queue = new Queue({ storage: counted, prefix: env.prefix, now: clock.now, logger });
    });
    afterEach(() => env.cleanup());

    const partition = () => queue.keys.journals("job", "cancelled");
    /** A journal key in the partition at 2000-01-01 00:00:`second` (older than any written). */
    const oldKey = (second: number) =>
      `${partition()}20000101T0000${String(second).padStart(2, "0")}Z/abcd.json`;
    const journal = (entries: unknown[]) =>
      JSON.stringify({ oq: "journal", type: "job", status: "cancelled", entries });

    /** `LEFT` journals left in place: half not JSON, half naming ids that are no task ids. */
    async function putLeftInPlace(): Promise<string[]> {
      const keys: string[] = [];
      for (let i = 0; i < LEFT; i++) {
        const key = oldKey(i);
        const body =
          i % 2 === 0 ? "not json" : journal([{ id: "../x", at: "2000-01-01T00:00:00Z" }]);
        await env.storage.put(key, body);
        keys.push(key);
      }
      return keys;
    }

    /** `n` cancelled tasks, each in a journal of its own (all newer than the hand-written ones). */
    async function cancelled(n: number): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const task = await queue.submit("job", i);
        await queue.cancel(task.id);
        await internals(queue).flush();
        ids.push(task.id);
      }
      return ids;
    }

    /** An idle worker's monitor: a step per poll at most, the local clock a poll further each. */
    function idleMonitor() {
      const monitor = new Monitor(internals(queue), {
        enabled: true,
        ...shared(queue),
        roundMs: ROUND_MS,
      });
      return async (polls: number): Promise<number> => {
        let stepped = 0;
        for (let i = 0; i < polls; i++) {
          if (await monitor.step(queue.now())) stepped++;
          clock.offset += POLL_MS;
        }
        return stepped;
      };
    }

    const gone = async (ids: readonly string[]) =>
      (await Promise.all(ids.map((id) => queue.read(id)))).every((t) => t === undefined);

    it("prunes the journals behind more than a step's worth left in place, and an idle worker's polls stay cheap", async () => {
      expect(LEFT).toBeGreaterThan(PRUNE_JOURNALS_PER_STEP);
      await queue.setRetention({ cancelled: 0 });
      const left = await putLeftInPlace();
      const ids = await cancelled(BEHIND);
      clock.offset += 2000; // journal keys are rounded up to the second: retention 0 covers them
      const poll = idleMonitor();

      // Within the first round: the tasks behind the journals left in place are pruned.
      await poll(POLLS_PER_ROUND);
      expect(await gone(ids)).toBe(true);
      expect(await keysUnder(env.storage, partition())).toEqual(left);
      // Each journal left in place was warned about once, naming it.
      for (const key of left) expect(warnings.filter((w) => w.includes(key))).toHaveLength(1);

      // Idle from here: each round reads the journals left in place once (retention 0 makes the
      // partition due every round), never at every poll. Before the resume position, each poll
      // of the monitor listed and read the same oldest 16 again (over 17 requests a poll).
      counted.reset();
      const rounds = 5;
      const stepped = await poll(rounds * POLLS_PER_ROUND);
      // A round: the manifest, the journals left in place, two LISTs of the partition (16 and 4
      // journals) and the round's own four (types with markers, with journals, tasks/, stopped
      // workers): 27 requests in 7 steps. One round more allows for where the rounds fall.
      expect(counted.total()).toBeLessThanOrEqual((rounds + 1) * (LEFT + 7));
      expect(stepped).toBeLessThanOrEqual((rounds + 1) * 7);
      expect(await keysUnder(env.storage, partition())).toEqual(left);
    });

    it("a pass that reached the end starts again from the oldest in a later round", async () => {
      await queue.setRetention({ cancelled: 0 });
      const left = await putLeftInPlace();
      const [first] = await cancelled(1);
      clock.offset += 2000;
      const poll = idleMonitor();
      await poll(POLLS_PER_ROUND);
      expect(await gone([first!])).toBe(true);

      // Behind where that pass went: an operator fixes the oldest journal left in place (it now
      // names a cancelled task), and a late journal lands among the old ones. Their tasks' own
      // journals are removed, so only these name them.
      const [fixedId, lateId] = await cancelled(2);
      for (const k of await keysUnder(env.storage, partition()))
        if (!left.includes(k)) await env.storage.delete(k);
      const entry = async (id: string) => ({ id, at: (await queue.get(id)).finishedAt });
      await env.storage.put(left[0]!, journal([await entry(fixedId!)]));
      await env.storage.put(oldKey(LEFT + 5), journal([await entry(lateId!)]));
      clock.offset += 2000;

      await poll(2 * POLLS_PER_ROUND);
      expect(await gone([fixedId!, lateId!])).toBe(true);
      expect(await keysUnder(env.storage, partition())).toEqual(left.slice(1));
    });
  });
}
