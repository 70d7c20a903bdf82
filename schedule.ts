/**
 * `oq/schedule`: cron schedules. A {@link Scheduler} creates, lists, enables, disables, triggers
 * and deletes schedules stored in the queue's bucket, and submits each slot's task exactly once;
 * {@link startScheduler} runs one in the background of a process.
 *
 * ```ts
 * import { connect } from "oq";
 * import { Scheduler } from "oq/schedule";
 * const queue = await connect({ bucket: "jobs", env: process.env });
 * await new Scheduler(queue).create({ id: "nightly", cron: "0 3 * * *", type: "report" });
 * ```
 *
 * Portable like `oq`. An entry point of its own, apart from `oq`, because it brings a cron parser
 * (croner) that most processes never use: `oq` is imported by every worker's tasks module, and
 * everything it exports is loaded and compiled before the worker takes its first task.
 *
 * @module
 */
export type {
  CatchUpPolicy,
  NewSchedule,
  ScheduleInfo,
  ScheduleRecord,
  ScheduleTaskOptions,
} from "./src/schedule/record.ts";
export { type SchedulerHandle, startScheduler } from "./src/schedule/runner.ts";
export {
  type FiredSlot,
  type RunOptions,
  Scheduler,
  type SchedulerOptions,
  type SkippedSlots,
  type TickResult,
} from "./src/schedule/scheduler.ts";
