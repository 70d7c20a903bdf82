/**
 * Type-level tests of typed task definitions, checked by `tsc --noEmit -p .` (this file is in
 * the project, never run): each `@ts-expect-error` line must be an error, or tsc fails with
 * "Unused '@ts-expect-error' directive"; every other line must compile.
 */
import { type } from "arktype";
import * as v from "valibot";
import * as z from "zod";
import {
  defineTask,
  type Queue,
  type StandardSchemaV1,
  type TaskInput,
  type TaskOutput,
  type TaskRecord,
  Worker,
} from "../mod.ts";

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const assertType = <T extends true>(_value?: T) => {};

const email = defineTask("email", {
  input: type({ to: "string", "cc?": "string[]" }),
  output: type({ messageId: "string" }),
  maxRetries: 5,
});
const report = defineTask("report", { input: z.object({ month: z.string() }) });
const resize = defineTask("resize", {
  input: v.object({ url: v.string(), width: v.optional(v.number(), 100) }),
  output: v.object({ bytes: v.number() }),
});

export async function typedSubmit(queue: Queue): Promise<void> {
  await queue.submit(email, { to: "a@example.com" });
  await queue.submit(email, { to: "a@example.com", cc: ["b@example.com"] }, { delay: "1m" });
  // @ts-expect-error: `to` must be a string
  await queue.submit(email, { to: 1 });
  // @ts-expect-error: `to` is missing
  await queue.submit(email, {});
  // @ts-expect-error: the input is required
  await queue.submit(email);
  // @ts-expect-error: zod schema: `month` must be a string
  await queue.submit(report, { month: 11 });
  // valibot: `width` has a default, so it may be left out at submit...
  await queue.submit(resize, { url: "https://example.com/a.png" });
  assertType<Equal<TaskInput<typeof resize>, { url: string; width?: number | undefined }>>();
  // String forms keep taking anything.
  await queue.submit("email", { to: 1 });
  await queue.submit("anything");
}

export async function typedWait(queue: Queue): Promise<void> {
  const task = await queue.submit(email, { to: "a@example.com" });
  assertType<Equal<typeof task.input, { to: string; cc?: string[] }>>();
  const done = await queue.wait(task, { timeout: "1m" });
  assertType<Equal<typeof done.output, { messageId: string } | null>>();
  assertType<Equal<TaskOutput<typeof email>, { messageId: string }>>();
  // No output schema: unknown.
  const r = await queue.wait(await queue.submit(report, { month: "2026-11" }));
  assertType<Equal<typeof r.output, unknown>>();
  // By id: an untyped record, as before.
  const byId = await queue.wait(task.id);
  assertType<Equal<typeof byId, TaskRecord>>();
}

export async function typedSubmitMany(queue: Queue): Promise<void> {
  await queue.submitMany([
    { type: email, input: { to: "a@example.com" } },
    { type: report, input: { month: "2026-11" } },
    { type: "untyped", input: 42 },
  ]);
  await queue.submitMany(["a", "b"].map((to) => ({ type: email, input: { to } })));
  // @ts-expect-error: the report entry's input is not a report input
  await queue.submitMany([{ type: report, input: { to: "a@example.com" } }]);
  await queue.submitMany([
    { type: email, input: { to: "x" } },
    // @ts-expect-error: one bad entry among good ones
    { type: email, input: { to: 2 } },
  ]);
}

export function typedHandlers(worker: Worker): void {
  worker.task(email, async (input) => {
    assertType<Equal<typeof input, { to: string; cc?: string[] }>>();
    return { messageId: `<${input.to}>` };
  });
  // @ts-expect-error: the output schema wants { messageId: string }
  worker.task(email, async () => ({ id: 1 }));
  worker.task(resize, (input) => {
    // The handler gets the schema's output: the default filled in.
    assertType<Equal<typeof input, { url: string; width: number }>>();
    return { bytes: input.width * 2 };
  });
  worker.task(report, async (input) => {
    assertType<Equal<typeof input, { month: string }>>();
    // @ts-expect-error: no such field
    return input.year;
  });
  // String forms unchanged: input typed by the handler's annotation, or unknown.
  worker.task("legacy", async (input: { a: number }) => input.a);
  worker.task("other", async (input) => {
    assertType<Equal<typeof input, unknown>>();
  });
}

// Every Standard Schema v1 validator fits, and a plain object does not.
export const schemas: StandardSchemaV1[] = [type("string"), z.string(), v.string()];
// @ts-expect-error: not a Standard Schema
defineTask("bad", { input: { parse: (x: unknown) => x } });
// @ts-expect-error: defaults are checked too
defineTask("bad", { input: type("string"), maxRetries: "3" });
export const unusedWorker = Worker;
