/**
 * `oq shards` as a real subprocess: it prints each type's hash shards, raises a type's count,
 * refuses to lower it or to guess a missing count (exit 2, saying what to use), and `--json`
 * prints the manifest the library reads. On the file store and, when `OQ_TEST_S3_*` is set,
 * on MinIO.
 */
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import type { Manifest } from "../../src/queue/manifest.ts";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, MANY_ROUNDS_TIMEOUT_MS, runOq } from "../helpers/cli.ts";
import { fileTarget, s3Target, type Target } from "../helpers/targets.ts";

const targets: Target[] = [fileTarget, ...(s3Target === undefined ? [] : [s3Target])];

for (const target of targets) {
  describe(`oq shards on ${target.name}`, () => {
    it("lists shards per type, raises a type's shards, refuses fewer with exit 2, --json prints the manifest", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      const instance = await target.create();
      try {
        const env = cleanEnv({ ...instance.env, NO_COLOR: "1" });
        const oq = (...args: string[]) => runOq(args, { cwd: tmpdir(), env });

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
        const queue = new Queue({ storage: instance.storage, prefix: instance.prefix });
        expect(await queue.manifest()).toEqual(manifest);
      } finally {
        await instance.cleanup();
      }
    });
  });
}
