/**
 * `oq submit`: add one task to the queue and print its id.
 *
 * @module
 */
import type { SubmitOptions } from "../queue/types.ts";
import {
  dateArg,
  intArg,
  jsonArg,
  oqCommand,
  secondsArg,
  taskInputArg,
  taskTypeArg,
} from "./args.ts";
import { openQueue } from "./config.ts";
import { usageError } from "./errors.ts";
import { log, out, outJson, relative } from "./output.ts";

export default oqCommand({
  name: "submit",
  description: "Submit a task and print its id (--json: the stored record).",
  examples: [
    `oq submit -t email -i '{"to":"a@example.com"}'`,
    `oq submit -t report -i @params.json --delay 1h --ttl 30m`,
    `oq submit -t invoice -i '{"order":42}' --idempotency-key order-42 --max-retries 5 --json`,
  ],
  args: {
    ...taskTypeArg("Task type: selects the handler", true),
    ...taskInputArg,
    at: {
      type: "string",
      description:
        "Do not start before this time (ISO 8601 with timezone, or epoch ms, not seconds)",
      valueHint: "date",
    },
    delay: {
      type: "string",
      description: "Do not start before this delay from now (90, 45s, 1h30m)",
      valueHint: "duration",
    },
    ttl: {
      type: "string",
      description: "Expire unless started within this long after it becomes due",
      valueHint: "duration",
    },
    "expires-at": {
      type: "string",
      description: "Expire unless started by this time",
      valueHint: "date",
    },
    timeout: {
      type: "string",
      description: "Time limit of each attempt (the worker's default otherwise)",
      valueHint: "duration",
    },
    "max-retries": {
      type: "string",
      description: "Retries after the first run (default 3)",
      valueHint: "n",
    },
    priority: {
      type: "string",
      description: "From -10 to 10, higher runs first (default 0; negative: --priority=-5)",
      valueHint: "n",
    },
    "idempotency-key": {
      type: "string",
      description: "Submitting the same key again returns the first task",
      valueHint: "key",
    },
    "idempotency-window": {
      type: "string",
      description:
        "The key holds this long after its task's creation; then a finished task is replaced (24h)",
      valueHint: "duration",
    },
    json: { type: "boolean", description: "Print the stored task record as JSON" },
  },
  async run(args) {
    const input = jsonArg(args.input, "input");
    const options: SubmitOptions = {};
    if (args.at !== undefined && args.delay !== undefined)
      throw usageError("Give either --at or --delay, not both.");
    if (args.ttl !== undefined && args["expires-at"] !== undefined)
      throw usageError("Give either --ttl or --expires-at, not both.");
    const at = dateArg(args.at, "at");
    if (at !== undefined) options.scheduleAt = at;
    const delay = secondsArg(args.delay, "delay");
    if (delay !== undefined) options.delay = delay;
    const ttl = secondsArg(args.ttl, "ttl");
    if (ttl !== undefined) options.ttlSeconds = ttl;
    const expiresAt = dateArg(args["expires-at"], "expires-at");
    if (expiresAt !== undefined) options.expiresAt = expiresAt;
    const timeout = secondsArg(args.timeout, "timeout");
    if (timeout !== undefined) options.timeoutSeconds = timeout;
    const maxRetries = intArg(args["max-retries"], "max-retries", 0);
    if (maxRetries !== undefined) options.maxRetries = maxRetries;
    if (args.priority !== undefined) {
      if (!/^-?\d{1,2}$/.test(args.priority.trim()))
        throw usageError(
          `Invalid --priority "${args.priority}": expected a whole number from -10 to 10.`,
        );
      options.priority = Number(args.priority.trim());
    }
    if (args["idempotency-key"] !== undefined) options.idempotencyKey = args["idempotency-key"];
    const window = secondsArg(args["idempotency-window"], "idempotency-window");
    if (window !== undefined) options.idempotencyWindow = window;

    const queue = await openQueue(args);
    const key = options.idempotencyKey;
    const { task, created } =
      key === undefined
        ? { task: await queue.submit(args.type, input, options), created: true }
        : await queue.submitUnique(args.type, input, { ...options, idempotencyKey: key });
    if (args.json) outJson(task);
    else out(task.id);
    const due = Date.parse(task.availableAt);
    const now = queue.now();
    if (!created) {
      log().info(
        `Found existing ${task.type} task ${task.id} (${task.status}) under idempotency key ${JSON.stringify(key)}; nothing new was submitted.`,
      );
      return;
    }
    log().success(
      `Submitted ${task.type} task ${task.id}${due > now + 1000 ? `, due ${relative(due, now)} (${task.availableAt})` : ""}.`,
    );
  },
});
