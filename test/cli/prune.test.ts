import { describe, expect, it } from "vitest";
import { MANY_ROUNDS_TIMEOUT_MS } from "../helpers/cli.ts";
import { cliTargets, withCliQueue } from "../helpers/cli-queue.ts";
import { pause } from "../helpers/wait.ts";

for (const target of cliTargets) {
  describe(`oq retention and oq prune on ${target.name}`, () => {
    it("shows and sets retention, refuses bad values, and prunes only what is past it", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await withCliQueue(target, async ({ oq, queue }) => {
        const shown = await oq("retention");
        expect(shown.code, shown.stderr).toBe(0);
        expect(shown.stdout).toMatch(/\(every type\)\s+7d\s+30d\s+30d\s+30d/);

        const set = await oq(
          "retention",
          "--type",
          "email",
          "--cancelled",
          "0",
          "--failed",
          "forever",
        );
        expect(set.code, set.stderr).toBe(0);
        expect(set.stdout).toMatch(/email\s+7d\s+forever\s+0\s+30d/);
        // failed raised to forever: replays of email tasks are held back, and it says until when.
        expect(set.stderr).toMatch(
          /Replays of email tasks wait until \S+Z: the retention was raised/,
        );
        expect((await queue.manifest()).retention).toEqual({
          types: { email: { failed: null, cancelled: 0 } },
        });
        // Lowered only: nothing held back, nothing said.
        const lowered = await oq("retention", "--type", "video", "--completed", "1d");
        expect(lowered.code, lowered.stderr).toBe(0);
        expect(lowered.stderr).not.toMatch(/Replays of/);

        const [bad, badStatus] = await Promise.all([
          oq("retention", "--completed", "soon"),
          oq("prune", "--status", "running"),
        ]);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/Invalid completed retention "soon"/);
        expect(badStatus.code).toBe(2);
        expect(badStatus.stderr).toMatch(/use completed, failed, cancelled, expired/);

        const [gone, kept, live] = await queue.submitMany([
          { type: "email", input: 1 },
          { type: "video", input: 2 },
          { type: "email", input: 3 },
        ]);
        await queue.cancel(gone!.id);
        await queue.cancel(kept!.id);
        await pause(1100);

        const dry = await oq("prune", "--dry-run", "--json");
        expect(dry.code, dry.stderr).toBe(0);
        expect(JSON.parse(dry.stdout)).toMatchObject({ deleted: 1, journals: 1, more: false });
        expect(await queue.read(gone!.id)).toBeDefined();

        const pruned = await oq("prune");
        expect(pruned.code, pruned.stderr).toBe(0);
        expect(pruned.stdout).toMatch(/1\s+finished tasks deleted/);
        expect(await queue.read(gone!.id)).toBeUndefined();
        expect((await queue.get(kept!.id)).status).toBe("cancelled");
        expect((await queue.get(live!.id)).status).toBe("pending");
      });
    });

    it("prunes past a journal whose entries name no task id, warning about it by key, on every run", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await withCliQueue(target, async ({ oq, queue, instance }) => {
        const [gone, live] = await queue.submitMany([
          { type: "email", input: 1 },
          { type: "email", input: 2 },
        ]);
        await queue.cancel(gone!.id);
        // A completed journal: pruned before the cancelled ones, so a crash there stops the run.
        const bad = `${queue.keys.journals("email", "completed")}20000101T000000Z/abcd.json`;
        await instance.storage.put(
          bad,
          JSON.stringify({
            oq: "journal",
            type: "email",
            status: "completed",
            entries: [{ id: "", at: "2000-01-01T00:00:00.000Z" }],
          }),
        );
        await pause(1100);
        for (const round of [1, 2]) {
          const pruned = await oq("prune", "--completed", "0", "--cancelled", "0");
          expect(pruned.code, `${round}: ${pruned.stderr}`).toBe(0);
          expect(pruned.stderr).toContain(bad);
          expect(pruned.stderr).not.toMatch(/Unexpected error/);
        }
        expect(await queue.read(gone!.id)).toBeUndefined();
        expect((await queue.get(live!.id)).status).toBe("pending");
        expect(await queue.list({ status: "completed" })).toMatchObject({ tasks: [] });
      });
    });
  });
}
