import { describe, expect, it } from "vitest";
import type { TaskRecord } from "../../src/task/record.ts";
import { MANY_ROUNDS_TIMEOUT_MS } from "../helpers/cli.ts";
import { cliTargets, withCliQueue } from "../helpers/cli-queue.ts";
import { runAll } from "../helpers/run.ts";

for (const target of cliTargets) {
  describe(`oq replay --all-failed and oq list on ${target.name}`, () => {
    it("replays every failed task with progress, reports the refused ones, and finds none left", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await withCliQueue(target, async ({ oq, queue }) => {
        // sms keeps failed tasks for no time at all: a replay of one is refused.
        await queue.setRetention({ failed: 0 }, { type: "sms" });
        const [e1, e2, e3, done, sms] = await queue.submitMany([
          { type: "email", input: "fail" },
          { type: "email", input: "fail" },
          { type: "email", input: "fail" },
          { type: "email", input: "ok" },
          { type: "sms", input: "fail" },
        ]);
        await runAll(queue, ["email", "sms"]);
        const emails = [e1!, e2!, e3!].map((t) => t.id);

        const dry = await oq("replay", "--all-failed", "--type", "email", "--dry-run", "--json");
        expect(dry.code, dry.stderr).toBe(0);
        expect(JSON.parse(dry.stdout)).toEqual({
          dryRun: true,
          replayed: 3,
          skipped: 0,
          refused: [],
        });
        for (const id of emails) expect((await queue.get(id)).status).toBe("failed");

        const all = await oq("replay", "--all-failed");
        expect(all.code).toBe(1);
        expect(all.stderr).toMatch(/replayed 3, skipped 0 \(no longer in that state\), refused 1/);
        expect(all.stdout).toMatch(/3\s+replayed/);
        expect(all.stdout).toContain(`refused ${sms!.id}: Cannot replay task ${sms!.id}`);
        expect(all.stderr).toMatch(/1 task was not replayed/);
        for (const id of emails) expect((await queue.get(id)).status).toBe("pending");
        expect((await queue.get(sms!.id)).status).toBe("failed");
        expect((await queue.get(done!.id)).status).toBe("completed");

        // Their journal entries are stale now: nothing of email is failed any more.
        const again = await oq("replay", "--all-failed", "--type", "email", "--json");
        expect(again.code, again.stderr).toBe(0);
        expect(JSON.parse(again.stdout)).toMatchObject({ replayed: 0, skipped: 0 });

        // Several ids: each reported, exit 1 when one could not be replayed.
        const cancelled = await queue.cancel(
          (await queue.submit("email", "later", { delay: 3600 })).id,
        );
        const several = await oq("replay", cancelled.id, sms!.id, "--json");
        expect(several.code).toBe(1);
        expect(JSON.parse(several.stdout)).toMatchObject([
          { id: cancelled.id, ok: true, result: "replayed" },
          { id: sms!.id, ok: false, result: "invalid_state" },
        ]);
        expect((await queue.get(cancelled.id)).status).toBe("pending");

        const [both, neither, typeAlone] = await Promise.all([
          oq("replay", e1!.id, "--all-failed"),
          oq("replay"),
          oq("replay", e1!.id, "--type", "email"),
        ]);
        for (const r of [both, neither, typeAlone]) expect(r.code).toBe(2);
      });
    });

    it("lists completed tasks of the last 24 hours by default, older ones with --since", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await withCliQueue(target, async ({ instance, oq, queue }) => {
        const recent = await queue.submit("email", "ok");
        await runAll(queue, ["email"]);
        // A task that completed two days ago, with its journal, written as oq would have.
        const at = new Date(queue.now() - 2 * 86_400_000).toISOString();
        const old: TaskRecord = {
          ...(await queue.get(recent.id)),
          id: "old-1",
          createdAt: at,
          updatedAt: at,
          availableAt: at,
          startedAt: at,
          finishedAt: at,
        };
        const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
        await instance.storage.put(queue.keys.task(old.id), encode(old));
        await instance.storage.put(
          queue.keys.newJournal("email", "completed", Date.parse(at), "0a1b"),
          encode({
            oq: "journal",
            type: "email",
            status: "completed",
            entries: [{ id: old.id, at }],
          }),
        );

        const listed = async (...args: string[]) => {
          const r = await oq("list", "--json", ...args);
          expect(r.code, r.stderr).toBe(0);
          return (JSON.parse(r.stdout) as { tasks: TaskRecord[] }).tasks.map((t) => t.id);
        };
        expect(await listed("--status", "completed")).toEqual([recent.id]);
        expect(await listed()).toEqual([recent.id]);
        expect(await listed("--status", "completed", "--since", "3d")).toEqual([old.id, recent.id]);
        expect(await listed("--status", "completed", "--since", "all")).toEqual([
          old.id,
          recent.id,
        ]);
        const bad = await oq("list", "--since", "yesterday");
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/Invalid --since "yesterday"/);
      });
    });
  });
}
