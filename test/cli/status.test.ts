/**
 * `oq status` exit codes: a task record in the bucket that fails validation is storage trouble
 * (exit 1, like an unreachable bucket), not a usage error (exit 2, the command line was wrong).
 * Runs the real CLI as a subprocess on the file store.
 */
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError, EXIT_FAILURE, EXIT_USAGE } from "../../src/cli/errors.ts";
import { MalformedObjectError, ValidationError } from "../../src/errors.ts";
import { Keys } from "../../src/keys.ts";
import { cleanEnv, type OqResult, runOq } from "../helpers/cli.ts";
import { fileTarget, type TargetInstance } from "../helpers/targets.ts";

let store: TargetInstance;
beforeAll(async () => {
  store = await fileTarget.create();
});
afterAll(() => store.cleanup());

function oq(...args: string[]): Promise<OqResult> {
  return runOq(args, { cwd: tmpdir(), env: cleanEnv({ NO_COLOR: "1" }) });
}

describe("oq status exit codes", () => {
  it("exits 1, not 2, for a stored task record that is invalid (issue 14)", async () => {
    const { storage } = store;
    const keys = new Keys();
    // A hand-written record that forgot `"oq": 1`, and one that is not JSON at all.
    await storage.put(
      keys.task("Job-7"),
      JSON.stringify({ id: "Job-7", type: "email", status: "pending" }),
    );
    await storage.put(keys.task("Job-8"), "not json");
    const url = store.url!;
    const [invalid, notJson, badId, missing] = await Promise.all([
      oq("status", "Job-7", "--url", url),
      oq("status", "Job-8", "--url", url, "--json"),
      oq("status", "bad id!", "--url", url),
      oq("status", "--url", url),
    ]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(
      /Invalid object in storage: Object tasks\/_\/Job-7\.json is not a valid task:[\s\S]*oq must be 1/,
    );
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toMatch(/tasks\/_\/Job-8\.json is not a task: its body is not JSON/);
    // Bad usage is still exit 2.
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/Invalid task id "bad id!"/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/Missing required positional argument: ID/);
    for (const r of [invalid, notJson, badId, missing]) expect(r.stdout).toBe("");
  });

  it("maps MALFORMED to exit 1 and VALIDATION to exit 2; a malformed object is still a ValidationError", () => {
    const malformed = new MalformedObjectError("Object k is not a valid task: x", { key: "k" });
    expect(malformed.code).toBe("MALFORMED");
    expect(malformed.name).toBe("MalformedObjectError");
    // Code written against ValidationError to skip invalid objects keeps skipping them.
    expect(malformed).toBeInstanceOf(ValidationError);
    expect(describeError(malformed).exitCode).toBe(EXIT_FAILURE);
    expect(describeError(new ValidationError("bad id")).exitCode).toBe(EXIT_USAGE);
  });
});
