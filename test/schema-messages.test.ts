/**
 * oq's own schemas (valibot, src/util/schema.ts): what a stored object or an option is rejected
 * with, and what a record written by a newer oq keeps. These pin behaviour that a change of the
 * validation library could alter without any other test noticing.
 */
import * as v from "valibot";
import { afterEach, describe, expect, it } from "vitest";
import { MalformedObjectError, ValidationError } from "../src/errors.ts";
import {
  checkOptions,
  handlerOptionsSchema,
  listOptionsSchema,
  workerOptionsSchema,
} from "../src/options.ts";
import { Queue } from "../src/queue/queue.ts";
import { encodeSchedule, parseSchedule, type ScheduleRecord } from "../src/schedule/record.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { encodeTask, parseTask } from "../src/task/record.ts";
import { claimTask } from "../src/task/transitions.ts";
import { makeTask, T0 } from "./helpers/task.ts";

const malformed = (body: unknown): MalformedObjectError => {
  try {
    parseTask(JSON.stringify(body), "tasks/k.json");
  } catch (error) {
    expect(error).toBeInstanceOf(MalformedObjectError);
    return error as MalformedObjectError;
  }
  throw new Error("parsed");
};

/** A stored schedule record as oq writes it, with `changes` applied. */
const storedSchedule = (changes: Record<string, unknown> = {}) => ({
  oq: 1,
  id: "s",
  type: "t",
  input: null,
  cron: "* * * * *",
  timezone: "UTC",
  catchUp: "all",
  task: { timeoutSeconds: null, maxRetries: null, ttlSeconds: null },
  enabled: true,
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
  doneThrough: "2026-01-01T00:00:00.000Z",
  lastSlot: null,
  lastTaskId: null,
  ...changes,
});

const optionsError = (schema: v.GenericSchema, value: unknown): string => {
  try {
    checkOptions(schema, value, "options");
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).message;
  }
  throw new Error("accepted");
};

describe("oq's schemas", () => {
  afterEach(() => {
    v.deleteGlobalMessage();
    v.deleteSchemaMessage();
    v.deleteSpecificMessage(v.number);
  });

  it("a task record with a wrong-typed nested field is MALFORMED, naming the field, what it must be and what it was", () => {
    const running = claimTask(makeTask(), {
      workerId: "w1",
      token: "tok",
      leaseMs: 10_000,
      now: T0,
    });
    const bad = malformed({ ...running, lease: { ...running.lease, expiresAt: 5 } });
    expect(bad.code).toBe("MALFORMED");
    expect(bad.message).toBe(
      "Object tasks/k.json is not a valid task: lease.expiresAt must be a string (was a number)",
    );
    const history = [...running.history, { ...running.history[0], attempt: -1, at: "later" }];
    const last = `history[${history.length - 1}]`;
    expect(malformed({ ...running, history }).message).toBe(
      `Object tasks/k.json is not a valid task: ${last}.at must be an ISO 8601 date (was "later"); ${last}.attempt must be at least 0 (was -1)`,
    );
    const { oq: _, ...foreign } = running;
    expect(malformed({ ...foreign, lease: 7 }).message).toBe(
      "Object tasks/k.json is not a valid task: oq must be 1 (was missing); lease must be an object or null (was a number)",
    );
    expect(malformed(null).message).toMatch(/not a valid task: must be an object \(was null\)$/);
  });

  it("a malformed manifest's message says to fix or restore it, never to delete it", async () => {
    const storage = new MemoryStorage();
    const queue = new Queue({ storage, prefix: "jobs/" });
    await storage.put(queue.keys.manifest, '{"oq":"manifest","protocol":2,"shards":"x"}');
    const error = await queue.submit("t", null).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedObjectError);
    const message = (error as Error).message;
    // Deleting it, as the message used to advise, strands every task in a shard above 0.
    expect(message).not.toMatch(/Fix or delete it/);
    expect(message).toContain("do not delete it");
    expect(message).toContain(`aws s3api list-object-versions --prefix ${queue.keys.manifest}`);
  });

  it("a stored number, duration or date beyond what oq writes is MALFORMED, naming the field", () => {
    const task = JSON.stringify({ ...makeTask(), timeoutSeconds: 12345, priority: 11 });
    const infinite = () => parseTask(task.replace("12345", "1e999"), "tasks/k.json");
    expect(infinite).toThrow(
      "Object tasks/k.json is not a valid task: timeoutSeconds must be a finite number (was Infinity); priority must be at most 10 (was 11)",
    );
    expect(malformed({ ...makeTask(), availableAt: "-271821-04-20T00:00:00.000Z" }).message).toBe(
      'Object tasks/k.json is not a valid task: availableAt must be a date in the years 0000 to 9999 (was "-271821-04-20T00:00:00.000Z")',
    );
    const schedule = storedSchedule({
      task: { timeoutSeconds: 1e20, maxRetries: null, ttlSeconds: null },
      doneThrough: "-271821-04-20T00:00:00.000Z",
    });
    // It used to fail every tick in croner with "Invalid timezone 'UTC'".
    expect(() => parseSchedule(JSON.stringify(schedule), "schedules/s.json")).toThrow(
      'Object schedules/s.json is not a valid schedule: task.timeoutSeconds must be at most 3155760000 seconds (100 years) (was 100000000000000000000); doneThrough must be a date in the years 0000 to 9999 (was "-271821-04-20T00:00:00.000Z")',
    );
  });

  it("input, output and progress may nest 128 levels of arrays and objects, not 129", () => {
    const nest = (levels: number): unknown => {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { k: value };
      return value;
    };
    for (const field of ["input", "output", "progress"]) {
      const at = { ...makeTask(), [field]: nest(128) };
      expect(parseTask(JSON.stringify(at), "tasks/k.json")).toMatchObject({ [field]: nest(128) });
      expect(malformed({ ...makeTask(), [field]: nest(129) }).message).toMatch(
        `${field} must be arrays and objects nested at most 128 levels deep`,
      );
    }
    const schedule = storedSchedule({ input: nest(129) });
    expect(() => parseSchedule(JSON.stringify(schedule), "schedules/s.json")).toThrow(
      "input must be arrays and objects nested at most 128 levels deep",
    );
    expect(() =>
      parseSchedule(JSON.stringify({ ...schedule, input: nest(128) }), "schedules/s.json"),
    ).not.toThrow();
  });

  it("records at the bounds oq writes, and lenient dates in range, still read", () => {
    const edge = {
      ...makeTask(),
      maxRetries: Number.MAX_SAFE_INTEGER,
      backoff: { initialSeconds: 3_155_760_000, maxSeconds: 3_155_760_000, factor: 100 },
      timeoutSeconds: 3_155_760_000,
      priority: -10,
      availableAt: "0000-01-01T00:00:00.000Z",
      expiresAt: "9999-12-31T23:59:59.999Z",
      createdAt: "Tuesday 5 March 2024",
      updatedAt: "2026-01-01T00:00:00Z",
    };
    expect(parseTask(JSON.stringify(edge), "k")).toEqual(edge);
  });

  it("keys written by a newer oq survive a read, a transition and a write (records are loose)", () => {
    const newer = {
      ...makeTask(),
      tags: ["a"],
      backoff: { ...makeTask().backoff, jitter: 0.2 },
    };
    const read = parseTask(JSON.stringify(newer), "k");
    const claimed = claimTask(read, { workerId: "w1", token: "tok", leaseMs: 10_000, now: T0 });
    const written = JSON.parse(new TextDecoder().decode(encodeTask(claimed)));
    expect(written.tags).toEqual(["a"]);
    expect(written.backoff.jitter).toBe(0.2);
    expect(written.status).toBe("running");

    const schedule = storedSchedule({
      cron: "@hourly",
      catchUp: "latest",
      note: "from a newer oq",
    }) as ScheduleRecord & { note: string };
    const again = parseSchedule(encodeSchedule(parseSchedule(JSON.stringify(schedule), "k")), "k");
    expect(again).toEqual(schedule);
  });

  it("a user's valibot global, schema or specific messages do not change oq's messages", () => {
    v.setGlobalMessage(() => "custom message of the application");
    v.setSchemaMessage(() => "custom schema message of the application");
    v.setSpecificMessage(v.number, () => "custom number message of the application");
    const running = claimTask(makeTask(), {
      workerId: "w1",
      token: "tok",
      leaseMs: 10_000,
      now: T0,
    });
    expect(malformed({ ...running, attempt: "1" }).message).toBe(
      "Object tasks/k.json is not a valid task: attempt must be a number (was a string)",
    );
    expect(optionsError(listOptionsSchema, { limit: 0 })).toBe(
      "Invalid options: limit must be a whole number from 1 to 10000 (was 0).",
    );
  });

  it("options errors name each bad option, what to use and what was given", () => {
    expect(optionsError(listOptionsSchema, { status: "bogus", limit: 1.5 })).toBe(
      'Invalid options: status must be one of pending, running, completed, failed, cancelled, expired (or an array of them) (was "bogus"); limit must be a whole number from 1 to 10000 (was 1.5).',
    );
    expect(optionsError(workerOptionsSchema, { minPollMs: 500, maxPollMs: 100 })).toBe(
      "Invalid options: maxPollMs must be at least minPollMs (was 100).",
    );
    expect(optionsError(workerOptionsSchema, { logScan: { pageSize: 0 }, onEvent: 1 })).toBe(
      "Invalid options: onEvent must be a function (was a number); logScan.pageSize must be a whole number from 1 to 1000 (was 0).",
    );
    // An option not in the schema is refused (a misspelling would leave the default in force);
    // handler options alone let other keys through.
    expect(optionsError(workerOptionsSchema, { leaseSeconds: "2m", extra: 1 })).toBe(
      "Invalid options: extra must be removed (not a known key).",
    );
    expect(checkOptions(workerOptionsSchema, { leaseSeconds: "2m" }, "options")).toEqual({
      leaseSeconds: 120,
    });
    expect(checkOptions(handlerOptionsSchema, { leaseSeconds: "2m", extra: 1 }, "options")).toEqual(
      { leaseSeconds: 120, extra: 1 },
    );
  });
});
