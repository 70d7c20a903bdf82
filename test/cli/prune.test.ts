/**
 * `oq retention` and `oq prune` as real subprocesses: retention shown and set per queue and per
 * type, bad values refused with exit 2 saying what to use, a dry run that deletes nothing, a
 * prune that deletes only finished tasks past retention, and `--json`. On the file store and,
 * when `OQ_TEST_S3_*` is set, on MinIO.
 */
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, MANY_ROUNDS_TIMEOUT_MS, runOq } from "../helpers/cli.ts";
import { fileTarget, s3Target, type Target } from "../helpers/targets.ts";
import { pause } from "../helpers/wait.ts";

const targets: Target[] = [fileTarget, ...(s3Target === undefined ? [] : [s3Target])];

for (const target of targets) {
  describe(`oq retention and oq prune on ${target.name}`, () => {
    it("shows and sets retention, refuses bad values, and prunes only what is past it", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      const instance = await target.create();
      try {
        const env = cleanEnv({ ...instance.env, NO_COLOR: "1" });
        const oq = (...args: string[]) => runOq(args, { cwd: tmpdir(), env });
        const queue = new Queue({ storage: instance.storage, prefix: instance.prefix });

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
        expect((await queue.manifest()).retention).toEqual({
          types: { email: { failed: null, cancelled: 0 } },
        });

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
      } finally {
        await instance.cleanup();
      }
    });
  });
}
