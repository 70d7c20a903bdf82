/**
 * Large inputs and outputs: a value whose JSON is larger than the queue's threshold is stored
 * once, as an immutable object of its own that the task names (`inputRef`, `outputRef`), instead
 * of being copied into every version of the task object (each claim, renewal and finish rewrites
 * it). See docs/protocol.md, "Large inputs and outputs".
 *
 * @module
 */
import {
  MalformedObjectError,
  NotFoundError,
  PreconditionFailedError,
  ValidationError,
} from "../errors.ts";
import { type Keys, shardOf } from "../keys.ts";
import { retry } from "../retry.ts";
import type { Storage } from "../storage/storage.ts";
import { getBounded } from "../store/bounds.ts";
import { READ_BACK_RETRY } from "../store/documents.ts";
import type { PayloadRef, TaskRecord } from "../task/record.ts";
import { toHex } from "../util/format.ts";

/** Inputs and outputs whose JSON is larger than this many bytes are stored apart by default. */
export const DEFAULT_PAYLOAD_THRESHOLD_BYTES = 256 * 1024;

/**
 * The default largest input or output, in bytes of JSON: one PUT, and small enough that a worker
 * can hold the text, its bytes and the parsed value of a few at once (a Cloudflare Worker has
 * 128 MB in all).
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;

/**
 * A byte-size queue option (`maxInputBytes`, `maxOutputBytes`, `payloadThresholdBytes`), or its
 * default. Throws `ValidationError` for anything but a whole number of at least `min` and, when
 * `max` is given, at most `max.bytes` (`max.name` names that limit in the message).
 */
export function byteOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max?: { bytes: number; name: string },
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min)
    throw new ValidationError(
      `Invalid ${name} ${JSON.stringify(value)}: give a whole number of bytes, at least ${min}.`,
    );
  if (max !== undefined && value > max.bytes)
    throw new ValidationError(
      `Invalid ${name} ${value}: the largest is ${max.bytes} bytes (${max.name}). Values up to it are kept inside every version of a task object, whose size readers bound by this limit; larger ones are stored apart anyway. Lower ${name}.`,
    );
  return value;
}

/** What a {@link PayloadStore} works with. */
export interface PayloadDeps {
  storage: Storage;
  keys: Keys;
  randomHex: (length: number) => string;
}

const decoder = new TextDecoder();

/** Lower-case hex SHA-256 of `bytes`. */
async function sha256Of(bytes: Uint8Array): Promise<string> {
  return toHex(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
  );
}

/**
 * The largest input and output this queue reads, in bytes (`maxInputBytes`, `maxOutputBytes`):
 * a task that names a larger one is refused before any of it is read, whatever the task says.
 */
export interface PayloadReadLimits {
  input: number;
  output: number;
}

/** The payload objects of one queue: written once before the task names them, read and checked. */
export class PayloadStore {
  /** Values whose JSON is larger than this many bytes are stored apart. */
  readonly thresholdBytes: number;
  readonly #deps: PayloadDeps;
  readonly #maxBytes: PayloadReadLimits;

  constructor(deps: PayloadDeps, thresholdBytes: number, maxBytes: PayloadReadLimits) {
    this.#deps = deps;
    this.thresholdBytes = thresholdBytes;
    this.#maxBytes = maxBytes;
  }

  /** True when a value of `bytes` bytes of JSON is stored as its own object. */
  storedApart(bytes: number): boolean {
    return bytes > this.thresholdBytes;
  }

  /**
   * Write `bytes` (JSON) as a new payload of task `id`, named `{name}.{nonce}.json`, with
   * `If-None-Match: *`, and return its reference. The key is new (a random nonce), so a 412 can
   * only be this very PUT, committed and then sent again by a layer below: it counts as written.
   * Transient failures are tried again (6 tries).
   */
  async put(id: string, name: string, bytes: Uint8Array): Promise<PayloadRef> {
    const { storage, keys, randomHex } = this.#deps;
    const key = keys.payload(id, `${name}.${randomHex(16)}.json`);
    await retry(async () => {
      try {
        await storage.put(keys.full(key), bytes, {
          contentType: "application/json",
          ifNoneMatch: "*",
        });
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
      }
    }, READ_BACK_RETRY);
    return { key, bytes: bytes.length, sha256: await sha256Of(bytes) };
  }

  /**
   * Read the value `ref` names, for task `id` (`what`: "input" or "output", for messages).
   * Throws `NotFoundError` when the object is missing and `MalformedObjectError` when its bytes
   * are not what the task recorded (size, SHA-256) or not JSON: both mean the task can never
   * get its value back, so a worker fails it permanently instead of retrying.
   */
  async read(id: string, what: "input" | "output", ref: PayloadRef): Promise<unknown> {
    const { storage, keys } = this.#deps;
    const key = keys.full(ref.key);
    if (!isOwnPayload(id, ref.key))
      throw new MalformedObjectError(
        `Task ${id} names ${JSON.stringify(ref.key)} as its ${what}, which is not one of its own payloads (payloads/${shardOf(id)}/${id}/…).`,
        { key: keys.task(id) },
      );
    const limit = this.#maxBytes[what];
    if (ref.bytes > limit)
      // A record written by hand (or by a queue with a higher limit) must not make this one
      // download more than it would accept from a submit.
      throw new MalformedObjectError(
        `Task ${id}: its ${what} object ${key} is ${ref.bytes} bytes by the task's record, over this queue's ${what === "input" ? "maxInputBytes" : "maxOutputBytes"} (${limit}): left unread. Raise that option on the queue that reads it, or submit the task again with a smaller ${what}.`,
        { key },
      );
    let body: Uint8Array;
    try {
      // Never more than the task recorded: an object swapped for a huge one is refused unread.
      body = (await getBounded(storage, key, ref.bytes)).body;
    } catch (error) {
      if (error instanceof MalformedObjectError)
        throw new MalformedObjectError(
          `Task ${id}: its ${what} object ${key} is not what the task recorded (${ref.bytes} bytes): it was changed or damaged. Submit the task again. ${error.message}`,
          { key, cause: error },
        );
      if (!(error instanceof NotFoundError)) throw error;
      throw new NotFoundError(
        `Task ${id}: its ${what} is stored as ${key}, which does not exist (deleted by hand or by a lifecycle rule?). Submit the task again.`,
        { key },
      );
    }
    const sha256 = await sha256Of(body);
    if (body.length !== ref.bytes || sha256 !== ref.sha256) {
      throw new MalformedObjectError(
        `Task ${id}: its ${what} object ${key} is not what the task recorded (${ref.bytes} bytes, sha256 ${ref.sha256}; found ${body.length} bytes, sha256 ${sha256}): it was changed or damaged. Submit the task again.`,
        { key },
      );
    }
    try {
      return JSON.parse(decoder.decode(body));
    } catch {
      throw new MalformedObjectError(`Task ${id}: its ${what} object ${key} is not JSON.`, { key });
    }
  }

  /** The input a handler gets: the record's own, or the one stored apart. */
  input(task: TaskRecord): Promise<unknown> {
    return task.inputRef === undefined
      ? Promise.resolve(task.input)
      : this.read(task.id, "input", task.inputRef);
  }

  /**
   * `task` with its input and output as submitted and returned, read from their objects when
   * stored apart (one GET each, in parallel); the references stay, so a caller can tell.
   */
  async resolve(task: TaskRecord): Promise<TaskRecord> {
    if (task.inputRef === undefined && task.outputRef === undefined) return task;
    const [input, output] = await Promise.all([
      this.input(task),
      task.outputRef === undefined ? task.output : this.read(task.id, "output", task.outputRef),
    ]);
    return { ...task, input, output };
  }

  /** Delete the payload at `key` (relative to the prefix). Deleting a missing one succeeds. */
  remove(key: string): Promise<void> {
    return this.#deps.storage.delete(this.#deps.keys.full(key));
  }
}

/**
 * True when `key` (relative to the prefix) is a payload of task `id`: directly under its own
 * `payloads/{shard}/{id}/`. A record or journal written by hand could name any key; oq reads and
 * deletes only these, so a bad reference can never make a prune delete another object.
 */
export function isOwnPayload(id: string, key: string): boolean {
  const own = `payloads/${shardOf(id)}/${id}/`;
  const name = key.slice(own.length);
  return key.startsWith(own) && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && !name.includes("..");
}

/** The keys (relative to the prefix) of the payload objects `task` names (its own only). */
export function payloadKeys(task: Pick<TaskRecord, "id" | "inputRef" | "outputRef">): string[] {
  const keys: string[] = [];
  if (task.inputRef !== undefined) keys.push(task.inputRef.key);
  if (task.outputRef !== undefined) keys.push(task.outputRef.key);
  return keys.filter((key) => isOwnPayload(task.id, key));
}
