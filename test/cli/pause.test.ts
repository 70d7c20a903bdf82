import { describe, expect, it } from "vitest";
import type { TaskRecord } from "../../src/task/record.ts";
import { MANY_ROUNDS_TIMEOUT_MS } from "../helpers/cli.ts";
import { cliTargets, withCliQueue } from "../helpers/cli-queue.ts";

for (const target of cliTargets) {
  describe(`oq pause and resume on ${target.name}`, () => {
    it("pauses and resumes a type, shows it in stats, refuses a missing type with exit 2; submit takes --priority", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await withCliQueue(target, async ({ oq, queue }) => {
        const paused = await oq("pause", "email");
        expect(paused.code, paused.stderr).toBe(0);
        expect(paused.stderr).toMatch(/email is paused/);
        expect(await queue.isPaused("email")).toBe(true);

        const submitted = await oq("submit", "-t", "email", "--priority=-3", "--json");
        expect(submitted.code, submitted.stderr).toBe(0);
        expect((JSON.parse(submitted.stdout) as TaskRecord).priority).toBe(-3);
        const stats = await oq("stats");
        expect(stats.stdout).toMatch(/email\s+PAUSED, 1 due/);

        const [resumed, none, both, badPriority] = await Promise.all([
          oq("resume", "-t", "email"),
          oq("pause"),
          oq("pause", "email", "--type", "video"),
          oq("submit", "-t", "email", "--priority", "11"),
        ]);
        expect(resumed.code, resumed.stderr).toBe(0);
        expect(await queue.isPaused("email")).toBe(false);
        expect(none).toMatchObject({ code: 2, stdout: "" });
        expect(none.stderr).toMatch(/Give the type to pause: oq pause --type email/);
        expect(both).toMatchObject({ code: 2 });
        expect(badPriority).toMatchObject({ code: 2 });
        expect(badPriority.stderr).toMatch(/priority/);
      });
    });
  });
}
