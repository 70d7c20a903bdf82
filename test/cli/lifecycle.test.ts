/**
 * `oq lifecycle` and doctor's lifecycle check. On memory and file the command says the backend
 * has no lifecycle rules (exit 1). On MinIO (when `OQ_TEST_S3_*` is set), in a bucket of this
 * test's own (`oq-test-lifecycle`, versioned) so no other test's bucket gains rules: the dry run
 * changes nothing, `--apply` sets the rule and keeps a rule someone else set, doctor warns before
 * and not after, and the worker's doctor run does not check lifecycle at all.
 */
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DoctorReport, requireSafeBackend, runDoctor } from "../../src/doctor/mod.ts";
import { Queue } from "../../src/queue/queue.ts";
import { lifecycleJson, parseLifecycle } from "../../src/storage/lifecycle.ts";
import type { S3Storage } from "../../src/storage/s3/driver.ts";
import { cleanEnv, MANY_ROUNDS_TIMEOUT_MS, ROOT, runOq, TSX } from "../helpers/cli.ts";
import { fileTarget, removePrefix, s3Config, testS3Storage } from "../helpers/targets.ts";

const BUCKET = "oq-test-lifecycle";
const FOREIGN_RULE =
  "<Rule><ID>someone else's</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule>";
const FOREIGN = `<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${FOREIGN_RULE}</LifecycleConfiguration>`;
const unique = () => `lc-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}/`;

function lifecycleCheck(report: DoctorReport) {
  return report.checks.find((c) => c.id === "lifecycle");
}

describe("oq lifecycle on a backend without lifecycle rules", () => {
  it("says so and exits 1 on memory and file; a bad --noncurrent-days is a usage error", async () => {
    const file = await fileTarget.create();
    try {
      const env = cleanEnv({ NO_COLOR: "1" });
      const [memory, onFile, apply, zero] = await Promise.all([
        runOq(["lifecycle", "--url", "memory:"], { cwd: tmpdir(), env }),
        runOq(["lifecycle", "--url", file.url!], { cwd: tmpdir(), env }),
        runOq(["lifecycle", "--url", "memory:", "--apply"], { cwd: tmpdir(), env }),
        runOq(["lifecycle", "--url", "memory:", "--noncurrent-days", "0"], { cwd: tmpdir(), env }),
      ]);
      for (const r of [memory, onFile, apply]) {
        expect(r).toMatchObject({ code: 1, stdout: "" });
        expect(r.stderr).toMatch(/has no bucket lifecycle rules \(only S3 buckets have them\)/);
      }
      expect(zero.code).toBe(2);
      expect(zero.stderr).toMatch(/Invalid --noncurrent-days "0"/);
    } finally {
      await file.cleanup();
    }
  });
});

if (s3Config !== undefined) {
  const c = s3Config;
  describe("oq lifecycle and doctor on MinIO", () => {
    let storage: S3Storage;
    const prefix = unique();
    const env = cleanEnv({
      NO_COLOR: "1",
      OQ_BUCKET: BUCKET,
      OQ_ENDPOINT: c.endpoint,
      OQ_REGION: c.region,
      OQ_PREFIX: prefix,
      AWS_ACCESS_KEY_ID: c.accessKeyId,
      AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
    });
    const oq = (...args: string[]) => runOq(args, { cwd: tmpdir(), env });
    const rules = async () => lifecycleJson(parseLifecycle(await storage.getLifecycle())).Rules;

    beforeAll(async () => {
      await promisify(execFile)(
        process.execPath,
        [
          "--import",
          TSX,
          join(ROOT, "scripts/s3-admin.ts"),
          "create-bucket",
          BUCKET,
          "--versioned",
        ],
        { env },
      );
      storage = testS3Storage(BUCKET);
    }, 60_000);

    afterAll(async () => {
      // Leave the bucket with only the foreign rule, not one for a prefix that is gone.
      await storage?.putLifecycle(FOREIGN);
      if (storage !== undefined) await removePrefix(storage, prefix);
    });

    it("doctor warns without the rule; the dry run changes nothing; --apply sets it and keeps a foreign rule; doctor is then content", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      await storage.putLifecycle(FOREIGN);
      const queue = new Queue({ storage, prefix });
      const quick = { raceWriters: 2, raceRounds: 1, writeVerdict: false };

      const before = lifecycleCheck(await runDoctor(queue, quick));
      expect(before).toMatchObject({ status: "warn" });
      expect(before!.fix).toMatch(/non-current versions .* the bucket grows/);
      expect(before!.fix).toMatch(/Run oq lifecycle --apply/);
      const doctor = await oq("doctor", "--writers", "2", "--rounds", "1");
      expect(doctor.code, doctor.stderr).toBe(0);
      expect(doctor.stdout).toMatch(/! Lifecycle rules expire old versions and delete markers/);
      expect(doctor.stdout).toMatch(/what to do:.*oq lifecycle --apply/);

      const dry = await oq("lifecycle");
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toContain(
        `<ID>oq-retention:${prefix}</ID><Filter><Prefix>${prefix}</Prefix></Filter>`,
      );
      expect(dry.stdout).toContain("<ID>someone else&#39;s</ID>");
      expect(dry.stdout).toContain(
        `aws s3api put-bucket-lifecycle-configuration --bucket ${BUCKET} --endpoint-url ${c.endpoint} --lifecycle-configuration '{"Rules":[{"ID":"someone else'\\''s"`,
      );
      expect(await rules()).toEqual([
        {
          ID: "someone else's",
          Filter: { Prefix: "logs/" },
          Status: "Enabled",
          Expiration: { Days: 30 },
        },
      ]);

      const applied = await oq("lifecycle", "--apply", "--noncurrent-days", "3");
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.stderr).toMatch(
        new RegExp(
          `Added lifecycle rule oq-retention:${prefix} on s3://${BUCKET} .*kept the bucket's 1 other rule\\(s\\): someone else's`,
        ),
      );
      const set = await rules();
      expect(set).toHaveLength(2);
      expect(set).toContainEqual({
        ID: "someone else's",
        Filter: { Prefix: "logs/" },
        Status: "Enabled",
        Expiration: { Days: 30 },
      });
      // MinIO does not keep AbortIncompleteMultipartUpload (it has its own upload expiry); AWS does.
      expect(set).toContainEqual(
        expect.objectContaining({
          ID: `oq-retention:${prefix}`,
          Filter: { Prefix: prefix },
          Status: "Enabled",
          NoncurrentVersionExpiration: { NoncurrentDays: 3 },
          Expiration: { ExpiredObjectDeleteMarker: true },
        }),
      );

      const again = await oq("lifecycle", "--apply", "--json");
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({
        applied: true,
        replaced: true,
        kept: ["someone else's"],
        ruleId: `oq-retention:${prefix}`,
      });
      const replaced = await rules();
      expect(replaced).toHaveLength(2);
      expect(replaced).toContainEqual(
        expect.objectContaining({ NoncurrentVersionExpiration: { NoncurrentDays: 1 } }),
      );

      const after = lifecycleCheck(await runDoctor(queue, quick));
      expect(after).toMatchObject({ status: "ok" });
      expect(after!.evidence.join("\n")).toMatch(/covered by rule\(s\): oq-retention:/);

      // The doctor run a worker needs proves safety only: no lifecycle requests.
      const worker = await requireSafeBackend(queue, {
        force: true,
        raceWriters: 2,
        raceRounds: 1,
      });
      expect(worker.report?.checks.map((check) => check.id)).not.toContain("lifecycle");
    });

    it("doctor needs no rule for old versions on a bucket without versioning", {
      timeout: MANY_ROUNDS_TIMEOUT_MS,
    }, async () => {
      const unversioned = testS3Storage(c.unversionedBucket);
      const scratch = unique();
      try {
        const queue = new Queue({ storage: unversioned, prefix: scratch });
        const report = await runDoctor(queue, {
          raceWriters: 2,
          raceRounds: 1,
          writeVerdict: false,
        });
        const check = lifecycleCheck(report);
        expect(check).toMatchObject({ status: "ok" });
        expect(check!.evidence.join("\n")).toMatch(
          /versioning -> Disabled[\s\S]*keeps no old versions and no delete markers: no lifecycle rule is needed/,
        );
      } finally {
        await removePrefix(unversioned, scratch);
      }
    });
  });
}
