/**
 * `oq worker` on Node talks to S3 through `node:http` (src/runtime/node-fetch.ts), not Node's
 * `fetch`: loading undici (by `fetch` or by a `Headers` object, as aws4fetch's signer made)
 * cost a starting worker 25-100 ms and about 10 MB for its whole life. The handler below reports
 * whether the process loaded undici by the time it ran a task; the worker has by then read the
 * manifest, proven the backend, claimed the task and written its heartbeat.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, startOq } from "../helpers/cli.ts";
import { s3Target } from "../helpers/targets.ts";
import { until } from "../helpers/wait.ts";

const TASKS = `
export const probe = () =>
  process.moduleLoadList.filter((m) => m.includes("undici"));
`;

describe.runIf(s3Target !== undefined)("oq worker's HTTP client on Node", () => {
  it("runs a task on MinIO without ever loading undici (Node's fetch)", async () => {
    const instance = await s3Target!.create();
    const cwd = mkdtempSync(join(tmpdir(), "oq-http-"));
    writeFileSync(join(cwd, "tasks.mjs"), TASKS);
    const queue = new Queue({ storage: instance.storage, prefix: instance.prefix });
    const worker = startOq(["worker", "tasks.mjs"], {
      cwd,
      env: cleanEnv({ ...instance.env, NO_COLOR: "1" }),
    });
    try {
      const task = await queue.submit("probe", null);
      let output: unknown;
      await until("the probe task completed", async () => {
        const t = await queue.get(task.id);
        output = t.output;
        return t.status === "completed";
      });
      expect(output).toEqual([]);
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
      rmSync(cwd, { recursive: true, force: true });
      await instance.cleanup();
    }
  });
});
