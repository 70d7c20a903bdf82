import { describe, expect, it } from "vitest";
import { applyNoteLine, type Ledger, ledgerNotes, observeTasks } from "../scripts/soak-observe.ts";
import { readProcess, SoakFleet } from "../scripts/soak-processes-fleet.ts";
import { Queue } from "../src/queue/queue.ts";
import { removePrefix, s3Config, testS3Storage } from "./helpers/targets.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(s3Config !== undefined)("process soak fleet on MinIO", () => {
  it("a worker process reports its writes, a SIGKILLed one is replaced, and /proc gives RSS and sockets", async () => {
    const raw = testS3Storage();
    const prefix = `soak-fleet-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/`;
    const ledger: Ledger = new Map();
    const notes = ledgerNotes(ledger);
    const queue = new Queue({ storage: observeTasks(raw, `${prefix}tasks/`, notes), prefix });
    const startMs = Date.now();
    const fleet = new SoakFleet({
      env: {
        ...process.env,
        SOAK_WORKER: JSON.stringify({
          prefix,
          bucket: s3Config!.bucket,
          monitorRoundSeconds: 5,
          maxPollMs: 300,
        }),
      },
      startMs: () => startMs,
      onLine: (_, tag, rest) => void applyNoteLine(tag, rest, notes, ledger),
    });
    const submitAndWait = async (n: number) => {
      const ids = [];
      for (let i = 0; i < n; i++) ids.push((await queue.submit("soak", {})).id);
      while (!ids.every((id) => ledger.get(id)?.finished?.status === "completed")) await sleep(100);
      return ids;
    };
    try {
      const first = await fleet.spawn(0);
      const reading = await readProcess(first.pid);
      expect(reading?.rssKb).toBeGreaterThan(10_000);
      expect(reading?.sockets).toBeGreaterThan(0);
      const before = await submitAndWait(5);
      const successor = await fleet.killAndRestart(0);
      expect(first.end).toBe("killed");
      expect(await readProcess(first.pid)).toBeUndefined();
      expect(successor.pid).not.toBe(first.pid);
      const after = await submitAndWait(5);
      for (const id of [...before, ...after]) expect(ledger.get(id)?.executions).toEqual({ 1: 1 });
      await fleet.stopAll();
      expect(successor.end).toBe("stopped");
      expect(fleet.crashes).toEqual([]);
    } finally {
      await fleet.stopAll();
      await removePrefix(raw, prefix);
    }
  }, 60_000);
});
