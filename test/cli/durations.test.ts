/**
 * Durations on the command line and in a tasks module (issue 13 item 7): `oq submit --ttl 30m
 * --timeout 1m30s`, `oq worker --lease 2m`, and a module's `{ handler, leaseSeconds: "3m" }`
 * reach the stored records as seconds, on the file store and MinIO. Runs the real CLI.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, MANY_ROUNDS_TIMEOUT_MS, runOq, startOq } from "../helpers/cli.ts";
import { fileTarget, s3Target, type Target } from "../helpers/targets.ts";

const targets: Target[] = [fileTarget, ...(s3Target === undefined ? [] : [s3Target])];
const dir = mkdtempSync(join(tmpdir(), "oq-durations-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Each handler returns the lease length it was given, in seconds.
const leaseLength =
  "(_input, ctx) => Math.round((Date.parse(ctx.task.lease.expiresAt) - Date.parse(ctx.task.updatedAt)) / 1000)";
const tasksModule = join(dir, "tasks.mjs");
writeFileSync(
  tasksModule,
  `export default { plain: ${leaseLength}, long: { handler: ${leaseLength}, leaseSeconds: "3m" } };\n`,
);
const badModule = join(dir, "bad.mjs");
writeFileSync(badModule, `export default { t: { handler: () => null, leaseSeconds: "10x" } };\n`);

for (const target of targets) {
  describe(`durations through oq submit and oq worker on ${target.name}`, () => {
    it('--ttl, --timeout, --lease and a module\'s leaseSeconds: "3m" arrive as seconds', {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      const instance = await target.create();
      try {
        const env = cleanEnv({ ...instance.env, NO_COLOR: "1" });
        const oq = (...args: string[]) => runOq(args, { cwd: dir, env });
        const queue = new Queue({ storage: instance.storage, prefix: instance.prefix });
        const [plain, long] = await Promise.all([
          oq("submit", "-t", "plain", "--ttl", "30m", "--timeout", "1m30s"),
          oq("submit", "-t", "long"),
        ]);
        expect(plain.code, plain.stderr).toBe(0);
        expect(long.code, long.stderr).toBe(0);
        const submitted = await queue.get(plain.stdout.trim());
        expect(submitted.timeoutSeconds).toBe(90);
        expect(Date.parse(submitted.expiresAt!) - Date.parse(submitted.availableAt)).toBe(
          1_800_000,
        );

        const worker = startOq(["worker", tasksModule, "--lease", "2m", "--skip-doctor"], {
          cwd: dir,
          env,
        });
        try {
          const [p, l] = await Promise.all(
            [plain, long].map((r) => queue.wait(r.stdout.trim(), { timeout: 60 })),
          );
          // Within 2 s: on S3 the server clock corrects the times, at one-second resolution.
          expect(Math.abs((p!.output as number) - 120)).toBeLessThanOrEqual(2);
          expect(Math.abs((l!.output as number) - 180)).toBeLessThanOrEqual(2);
        } finally {
          worker.child.kill("SIGTERM");
          await worker.exited;
        }

        const bad = await oq("worker", badModule, "--skip-doctor");
        expect(bad.code).toBe(2);
        expect(bad.stderr).toContain(
          'leaseSeconds: "10x" is not a duration; use seconds or e.g. "30m"',
        );
      } finally {
        await instance.cleanup();
      }
    });
  });
}
