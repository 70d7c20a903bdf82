/**
 * Structured worker logs: a task's start and outcome reach the queue's logger with the fields a
 * log pipeline filters on (task id, type, attempt, duration, worker), on memory and on MinIO.
 */
import { describe, expect, it } from "vitest";
import type { LogFields, Logger } from "../../src/logger.ts";
import { Queue } from "../../src/queue/queue.ts";
import { Worker } from "../../src/worker/worker.ts";
import { memoryTarget, s3Target, type Target } from "../helpers/targets.ts";
import { fast, until } from "../helpers/wait.ts";

/** One entry a {@link recordingLogger} saw. */
interface Entry {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  fields: LogFields | undefined;
}

/** A logger that keeps every entry. */
function recordingLogger(entries: Entry[]): Logger {
  const at =
    (level: Entry["level"]) =>
    (message: string, fields?: LogFields): void => {
      entries.push({ level, message, fields });
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

const storages: Target[] = [memoryTarget, ...(s3Target === undefined ? [] : [s3Target])];

for (const target of storages) {
  describe(`worker log entries (${target.name})`, () => {
    it("a completed task and a failed-then-retried task log taskId, type, attempt, durationMs and worker", async () => {
      const instance = await target.create();
      const entries: Entry[] = [];
      const queue = new Queue({
        storage: instance.storage,
        prefix: instance.prefix,
        logger: recordingLogger(entries),
      });
      const worker = new Worker(queue, { ...fast, id: "log-w1", skipDoctor: true })
        .task("echo", async (input) => input)
        .task("flaky", async (_input, ctx) => {
          if (ctx.attempt === 1) throw new Error("first try fails");
          return "second try";
        });
      try {
        const echo = await queue.submit("echo", { n: 1 });
        const flaky = await queue.submit("flaky", null, {
          backoff: { initialSeconds: 0.05, maxSeconds: 0.1 },
        });
        await worker.start();
        await until("both tasks completed", async () => {
          const [e, f] = await Promise.all([queue.get(echo.id), queue.get(flaky.id)]);
          return e.status === "completed" && f.status === "completed";
        });
        const about = (id: string, event: string) =>
          entries.filter((e) => e.fields?.taskId === id && e.fields?.event === event);

        expect(about(echo.id, "started")).toEqual([
          {
            level: "info",
            message: `echo ${echo.id} started (attempt 1)`,
            fields: {
              taskId: echo.id,
              type: "echo",
              attempt: 1,
              worker: "log-w1",
              event: "started",
            },
          },
        ]);
        const [echoDone] = about(echo.id, "completed");
        expect(echoDone).toMatchObject({
          level: "info",
          message: expect.stringMatching(new RegExp(`^echo ${echo.id} completed in \\d`)),
          fields: { taskId: echo.id, type: "echo", attempt: 1, worker: "log-w1" },
        });
        expect(echoDone!.fields!.durationMs).toBeGreaterThanOrEqual(0);

        const [retry] = about(flaky.id, "retry-scheduled");
        expect(retry).toMatchObject({
          level: "warn",
          message: expect.stringContaining("attempt 1 failed in"),
          fields: {
            taskId: flaky.id,
            type: "flaky",
            attempt: 1,
            worker: "log-w1",
            error: { name: "Error", message: "first try fails" },
          },
        });
        expect(retry!.message).toContain("will retry: first try fails");
        expect(typeof retry!.fields!.durationMs).toBe("number");
        expect(about(flaky.id, "started").map((e) => e.fields?.attempt)).toEqual([1, 2]);
        const [flakyDone] = about(flaky.id, "completed");
        expect(flakyDone!.fields).toMatchObject({
          taskId: flaky.id,
          type: "flaky",
          attempt: 2,
          worker: "log-w1",
        });
        expect(typeof flakyDone!.fields!.durationMs).toBe("number");
        // The first attempt's error is still on the record, but it is not this outcome's.
        expect(flakyDone!.fields).not.toHaveProperty("error");
      } finally {
        await worker.stop();
        await instance.cleanup();
      }
    });
  });
}
