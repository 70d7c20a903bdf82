import { describe, expect, it } from "vitest";
import type { Manifest } from "../../src/queue/manifest.ts";
import { MANY_ROUNDS_TIMEOUT_MS } from "../helpers/cli.ts";
import { cliTargets, withCliQueue } from "../helpers/cli-queue.ts";

for (const target of cliTargets) {
  describe(`oq shards on ${target.name}`, () => {
    it("lists shards per type, raises a type's shards, refuses fewer with exit 2, --json prints the manifest", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await withCliQueue(target, async ({ oq, queue }) => {
        const [empty, emptyJson] = await Promise.all([oq("shards"), oq("shards", "--json")]);
        expect(empty).toMatchObject({ code: 0, stdout: "every type has 1 shard\n" });
        expect(emptyJson.code, emptyJson.stderr).toBe(0);
        expect(JSON.parse(emptyJson.stdout)).toMatchObject({
          oq: "queue",
          protocol: 2,
          shards: {},
        });

        const raised = await oq("shards", "video", "4");
        expect(raised).toMatchObject({ code: 0, stdout: "video\t4\n" });
        expect(raised.stderr).toMatch(/video now has 4 shards/);

        const [fewer, noCount, zero, tooMany, notANumber, badType, same] = await Promise.all([
          oq("shards", "video", "2"),
          oq("shards", "video"),
          oq("shards", "email", "0"),
          oq("shards", "email", "257"),
          oq("shards", "email", "many"),
          oq("shards", "../etc", "2"),
          oq("shards", "video", "4", "--json"),
        ]);
        expect(fewer).toMatchObject({ code: 2, stdout: "" });
        expect(fewer.stderr).toMatch(/Type video has 4 shards; shards can only be added \(2 < 4\)/);
        expect(noCount).toMatchObject({ code: 2, stdout: "" });
        expect(noCount.stderr).toMatch(/Give the number of shards for video: oq shards video 8/);
        for (const r of [zero, tooMany, notANumber]) {
          expect(r).toMatchObject({ code: 2, stdout: "" });
          expect(r.stderr).toMatch(/Invalid shard count .*: use an integer from 1 to 256/);
        }
        expect(badType).toMatchObject({ code: 2, stdout: "" });
        expect(badType.stderr).toMatch(/Invalid task type/);
        for (const r of [fewer, noCount, zero, tooMany, notANumber, badType]) {
          expect(r.stderr).not.toMatch(/Unexpected error/);
        }
        // Asking for the count a type already has changes nothing and succeeds.
        expect(same.code, same.stderr).toBe(0);
        expect((JSON.parse(same.stdout) as Manifest).shards).toEqual({ video: 4 });

        const [listed, json] = await Promise.all([oq("shards"), oq("shards", "--json")]);
        expect(listed).toMatchObject({ code: 0, stdout: "video\t4\n" });
        const manifest = JSON.parse(json.stdout) as Manifest;
        expect(manifest.shards).toEqual({ video: 4 });
        // The CLI wrote the manifest the library reads.
        expect(await queue.manifest()).toEqual(manifest);
      });
    });
  });
}
