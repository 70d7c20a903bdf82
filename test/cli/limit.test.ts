import { describe, expect, it } from "vitest";
import { MANY_ROUNDS_TIMEOUT_MS } from "../helpers/cli.ts";
import { cliTargets, withCliQueue } from "../helpers/cli-queue.ts";

for (const target of cliTargets) {
  describe(`oq limit on ${target.name}`, () => {
    it("sets, shows and removes a type's limits; refuses bad values with exit 2", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await withCliQueue(target, async ({ oq, queue }) => {
        expect(await oq("limit")).toMatchObject({ code: 0, stdout: "no type has limits\n" });
        const set = await oq("limit", "video", "--concurrency", "3", "--rate", "0.5");
        expect(set.code, set.stderr).toBe(0);
        expect(set.stdout).toBe(
          "video\tconcurrency 3 (0 running)\trate 0.5/s (0 started in the last 2 s)\n",
        );
        expect(set.stderr).toMatch(/within 10 minutes/);
        expect(await queue.limits("video")).toMatchObject([{ concurrency: 3, ratePerSecond: 0.5 }]);

        const [one, all, json] = await Promise.all([
          oq("limit", "video"),
          oq("limit"),
          oq("limit", "video", "--json"),
        ]);
        expect(one.stdout).toBe(set.stdout);
        expect(all.stdout).toBe(set.stdout);
        expect(JSON.parse(json.stdout)).toMatchObject({ type: "video", concurrency: 3 });

        await queue.submit("video", null);
        const stats = await oq("stats");
        expect(stats.code, stats.stderr).toBe(0);
        expect(stats.stdout).toMatch(/limits\n {2}video\tconcurrency 3 \(0 running\)/);

        const removed = await oq("limit", "video", "--rate", "none");
        expect(removed.stdout).toBe("video\tconcurrency 3 (0 running)\trate -\n");
        await oq("limit", "video", "--concurrency", "none");
        expect(await oq("limit")).toMatchObject({ code: 0, stdout: "no type has limits\n" });

        const [zero, fraction, word, noType] = await Promise.all([
          oq("limit", "video", "--concurrency", "0"),
          oq("limit", "video", "--rate", "2.5"),
          oq("limit", "video", "--rate", "fast"),
          oq("limit", "--concurrency", "3"),
        ]);
        for (const r of [zero, fraction, word, noType]) {
          expect(r).toMatchObject({ code: 2, stdout: "" });
          expect(r.stderr).not.toMatch(/Unexpected error/);
        }
        // Each names the flag and the CLI's way to remove a limit ("none"), not the library's null.
        expect(zero.stderr).toMatch(
          /Invalid --concurrency "0": use an integer from 1 to 10000, or "none" to remove the limit/,
        );
        expect(fraction.stderr).toMatch(
          /Invalid --rate "2.5": use an integer from 1 to 1000 starts per second, or a number below 1/,
        );
        expect(word.stderr).toMatch(/Invalid --rate "fast": use an integer from 1 to 1000/);
        for (const r of [zero, fraction, word]) expect(r.stderr).not.toMatch(/null/);
        expect(noType.stderr).toMatch(/Name the task type to limit/);
      });
    });
  });
}
