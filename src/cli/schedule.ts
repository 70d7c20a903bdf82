import { defineCommand } from "citty";
import { formatDuration } from "../duration.ts";
import {
  CATCH_UP_POLICIES,
  type CatchUpPolicy,
  type NewSchedule,
  type ScheduleInfo,
  type ScheduleRecord,
} from "../schedule/record.ts";
import { Scheduler } from "../schedule/scheduler.ts";
import { intArg, jsonArg, oqCommand, secondsArg, taskInputArg, taskTypeArg } from "./args.ts";
import { openQueue } from "./config.ts";
import { usageError } from "./errors.ts";
import { log, out, outJson, relative, type Styles, styles, table } from "./output.ts";

const idArg = {
  id: { type: "positional", description: "Schedule id (A-Z a-z 0-9 . _ : -)", required: true },
} as const;

const jsonFlag = { json: { type: "boolean", description: "Print the schedule as JSON" } } as const;

function when(iso: string | null, now: number, s: Styles): string {
  return iso === null ? s.dim("-") : `${iso} ${s.dim(`(${relative(Date.parse(iso), now)})`)}`;
}

function policyArg(value: string | undefined): CatchUpPolicy | undefined {
  if (value === undefined) return undefined;
  if (!(CATCH_UP_POLICIES as readonly string[]).includes(value)) {
    throw usageError(
      `Invalid --catch-up "${value}": expected latest (run the latest missed slot once), all (every missed slot, at most 100) or none (skip missed slots).`,
    );
  }
  return value as CatchUpPolicy;
}

/** The lines of the human view of a schedule, for `oq schedule show`. */
export function describeSchedule(
  schedule: ScheduleRecord,
  upcoming: readonly string[],
  now: number,
  s: Styles,
): string[] {
  const opts = schedule.task;
  const taskOptions = [
    opts.timeoutSeconds === null
      ? undefined
      : `timeout ${formatDuration(opts.timeoutSeconds * 1000)}`,
    opts.maxRetries === null ? undefined : `max retries ${opts.maxRetries}`,
    opts.ttlSeconds === null ? undefined : `ttl ${formatDuration(opts.ttlSeconds * 1000)}`,
  ].filter((x) => x !== undefined);
  const rows: [string, string][] = [
    ["id", schedule.id],
    ["state", schedule.enabled ? s.green("enabled") : s.yellow("disabled")],
    ["cron", `${schedule.cron} ${s.dim(`(${schedule.timezone})`)}`],
    ["task", `${schedule.type} ${JSON.stringify(schedule.input)}`],
    ["task options", taskOptions.length === 0 ? s.dim("queue defaults") : taskOptions.join(", ")],
    ["catch-up", schedule.catchUp],
    ["created", when(schedule.createdAt, now, s)],
    ["last slot", when(schedule.lastSlot, now, s)],
    ["last task", schedule.lastTaskId ?? s.dim("-")],
    ["done through", when(schedule.doneThrough, now, s)],
    ["next runs", upcoming.length === 0 ? s.dim("-") : upcoming[0]!],
    ...upcoming.slice(1).map((u): [string, string] => ["", u]),
  ];
  return table(rows.map(([k, v]) => [s.bold(k), v]));
}

const create = oqCommand({
  name: "create",
  description: "Create a schedule (rejects an existing id). Only slots after now fire.",
  examples: [
    `oq schedule create nightly-report -t report -i '{"kind":"daily"}' -c "0 9 * * *" --tz Europe/Paris`,
    `oq schedule create heartbeat -t ping -c "*/10 * * * * *" --catch-up none`,
    `oq schedule create sync -t sync -c "@hourly" --catch-up all --timeout 5m --max-retries 2 --ttl 1h`,
  ],
  args: {
    ...idArg,
    ...taskTypeArg("Type of the tasks it submits", true),
    ...taskInputArg,
    cron: {
      type: "string",
      alias: ["c"],
      description:
        'Cron expression (croner): 5 fields, or 6-7 with seconds first; "0 9 * * *", "*/30 * * * * *", "@daily"',
      required: true,
      valueHint: "expr",
    },
    tz: {
      type: "string",
      description: "IANA timezone the expression runs in (default UTC)",
      valueHint: "zone",
    },
    "catch-up": {
      type: "string",
      description:
        "After downtime: latest (default; run the latest missed slot once), all (every missed slot, at most 100), none",
      valueHint: "policy",
    },
    timeout: {
      type: "string",
      description: "Time limit of each attempt (90s, 5m)",
      valueHint: "duration",
    },
    "max-retries": {
      type: "string",
      description: "Retries after the first run of each task",
      valueHint: "n",
    },
    ttl: {
      type: "string",
      description: "Each task expires if not started within this long of its slot's submission",
      valueHint: "duration",
    },
    disabled: { type: "boolean", description: "Create it disabled (enable it later)" },
    ...jsonFlag,
  },
  async run(args) {
    const spec: NewSchedule = {
      id: args.id,
      type: args.type,
      input: jsonArg(args.input, "input"),
      cron: args.cron,
      enabled: args.disabled !== true,
    };
    if (args.tz !== undefined) spec.timezone = args.tz;
    const catchUp = policyArg(args["catch-up"]);
    if (catchUp !== undefined) spec.catchUp = catchUp;
    const timeout = secondsArg(args.timeout, "timeout");
    if (timeout !== undefined) spec.timeoutSeconds = timeout;
    const maxRetries = intArg(args["max-retries"], "max-retries", 0);
    if (maxRetries !== undefined) spec.maxRetries = maxRetries;
    const ttl = secondsArg(args.ttl, "ttl");
    if (ttl !== undefined) spec.ttlSeconds = ttl;
    const scheduler = new Scheduler(await openQueue(args));
    const schedule = await scheduler.create(spec);
    if (args.json) outJson(schedule);
    else out(schedule.id);
    const next = scheduler.upcoming(schedule, 1)[0];
    const now = scheduler.queue.now();
    log().success(
      `Created schedule ${schedule.id}: ${schedule.type} at "${schedule.cron}" (${schedule.timezone})${
        next === undefined
          ? schedule.enabled
            ? ""
            : ", disabled"
          : `, next run ${next} (${relative(Date.parse(next), now)})`
      }.`,
    );
  },
});

const list = oqCommand({
  name: "list",
  description: "List schedules with their next run times.",
  examples: ["oq schedule list", "oq schedule list --json | jq '.[].nextRunAt'"],
  args: {
    json: { type: "boolean", description: "Print the schedules (with nextRunAt) as JSON" },
  },
  async run(args) {
    const scheduler = new Scheduler(await openQueue(args));
    const schedules: ScheduleInfo[] = await scheduler.list();
    if (args.json) return outJson(schedules);
    if (schedules.length === 0) {
      log().info('No schedules. Create one with: oq schedule create ID -t TYPE -c "0 9 * * *"');
      return;
    }
    const s = styles();
    const now = scheduler.queue.now();
    const rows = schedules.map((sc) => [
      sc.id,
      sc.type,
      sc.cron,
      sc.timezone,
      sc.catchUp,
      sc.enabled ? s.green("enabled") : s.yellow("disabled"),
      sc.nextRunAt === null
        ? s.dim("-")
        : `${sc.nextRunAt} ${s.dim(`(${relative(Date.parse(sc.nextRunAt), now)})`)}`,
      sc.lastSlot === null ? s.dim("-") : relative(Date.parse(sc.lastSlot), now),
    ]);
    const header = ["ID", "TYPE", "CRON", "TZ", "CATCH-UP", "STATE", "NEXT RUN", "LAST RUN"];
    for (const line of table([header.map((h) => s.bold(h)), ...rows])) out(line);
  },
});

const show = oqCommand({
  name: "show",
  description: "Show one schedule, its last slot and its next runs.",
  examples: ["oq schedule show nightly-report", "oq schedule show nightly-report --json"],
  args: { ...idArg, ...jsonFlag },
  async run(args) {
    const scheduler = new Scheduler(await openQueue(args));
    const schedule = await scheduler.get(args.id);
    const upcoming = scheduler.upcoming(schedule, 5);
    if (args.json) return outJson({ ...schedule, nextRuns: upcoming });
    for (const line of describeSchedule(schedule, upcoming, scheduler.queue.now(), styles())) {
      out(line);
    }
  },
});

const enable = oqCommand({
  name: "enable",
  description: "Enable a schedule; slots that fell while it was disabled do not fire.",
  examples: ["oq schedule enable nightly-report"],
  args: { ...idArg },
  async run(args) {
    const scheduler = new Scheduler(await openQueue(args));
    const schedule = await scheduler.enable(args.id);
    const next = scheduler.upcoming(schedule, 1)[0];
    log().success(
      `Enabled schedule ${schedule.id}${next === undefined ? "" : `; next run ${next}`}.`,
    );
  },
});

const disable = oqCommand({
  name: "disable",
  description: "Disable a schedule: no slot fires until it is enabled again.",
  examples: ["oq schedule disable nightly-report"],
  args: { ...idArg },
  async run(args) {
    const schedule = await new Scheduler(await openQueue(args)).disable(args.id);
    log().success(`Disabled schedule ${schedule.id}.`);
  },
});

const remove = oqCommand({
  name: "delete",
  description: "Delete a schedule (tasks it already submitted stay).",
  examples: ["oq schedule delete nightly-report"],
  args: { ...idArg },
  async run(args) {
    await new Scheduler(await openQueue(args)).delete(args.id);
    log().success(`Deleted schedule ${args.id}.`);
  },
});

const trigger = oqCommand({
  name: "trigger",
  description: "Submit the schedule's task now (also when disabled); prints the task id.",
  examples: [
    "oq schedule trigger nightly-report",
    "oq schedule trigger nightly-report --idempotency-key rerun-2026-05-01",
  ],
  args: {
    ...idArg,
    "idempotency-key": {
      type: "string",
      description: "Retrying with the same key makes no second task (default: a fresh key)",
      valueHint: "key",
    },
    json: { type: "boolean", description: "Print the task record as JSON" },
  },
  async run(args) {
    const scheduler = new Scheduler(await openQueue(args));
    const key = args["idempotency-key"];
    const task = await scheduler.trigger(args.id, key === undefined ? {} : { idempotencyKey: key });
    if (args.json) outJson(task);
    else out(task.id);
    log().success(`Triggered schedule ${args.id}: ${task.type} task ${task.id}.`);
  },
});

/** `oq schedule run`, loaded only when it runs (it brings the scheduler). */
async function runCommand() {
  const { default: run } = await import("./schedule-run.ts");
  return run;
}

export default defineCommand({
  meta: {
    name: "schedule",
    description:
      "Recurring tasks from cron expressions: create, list, show, enable, disable, delete, trigger, run.",
  },
  subCommands: {
    create,
    list,
    show,
    enable,
    disable,
    delete: remove,
    trigger,
    run: runCommand,
  },
});
