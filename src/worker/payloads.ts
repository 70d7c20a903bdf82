/**
 * The worker's side of large inputs and outputs (docs/protocol.md, "Large inputs and outputs"):
 * it reads a task's input object before calling the handler, and stores a large output as its
 * own object before the write that completes the task.
 *
 * @module
 */
import { MalformedObjectError, NotFoundError } from "../errors.ts";
import type { QueueInternals } from "../queue/internals.ts";
import type { PayloadRef, TaskRecord } from "../task/record.ts";
import type { Failure } from "../task/transitions.ts";
import { errorMessage } from "../util/errors.ts";
import { jsonText } from "../util/json-value.ts";
import { PermanentError } from "./options.ts";

const encoder = new TextEncoder();

/**
 * The input the handler gets: the record's own, or its object's (one GET). A missing or
 * damaged object can never be read back, so it fails the task permanently (`PayloadMissing`,
 * `PayloadCorrupt`) rather than retrying it forever; a storage outage is retried as usual.
 */
export async function readInput(q: QueueInternals, task: TaskRecord): Promise<unknown> {
  try {
    return await q.payloads.input(task);
  } catch (error) {
    if (error instanceof NotFoundError || error instanceof MalformedObjectError) {
      const permanent = new PermanentError(error.message, { cause: error });
      permanent.name = error instanceof NotFoundError ? "PayloadMissing" : "PayloadCorrupt";
      throw permanent;
    }
    throw error;
  }
}

/** What a successful handler's result becomes: an output to record, or a failed attempt. */
export type StoredOutput = { output: unknown; outputRef?: PayloadRef } | { failure: Failure };

/**
 * Check `output` of `task` (attempt `task.attempt`) and store it as its own object when it is
 * larger than the queue's threshold, before the completing write names it. An output that is
 * not JSON (the same check as a task's input: a BigInt, a cycle, a Map or a Set, which JSON
 * would store as `{}`) fails the task permanently with `InvalidOutput`, and one larger than
 * `maxOutputBytes` with `ValidationError`, each saying what to fix: the same handler would
 * return it again. One that cannot be written fails the attempt (retried). Otherwise the output
 * recorded is its JSON round trip, exactly what is stored.
 */
export async function storeOutput(
  q: QueueInternals,
  task: TaskRecord,
  output: unknown,
): Promise<StoredOutput> {
  let text: string;
  try {
    text = jsonText(output, "output");
  } catch (error) {
    return {
      failure: {
        name: "InvalidOutput",
        message: `Output of ${task.type} task is not JSON-serializable: ${errorMessage(error)}`,
        permanent: true,
      },
    };
  }
  // A UTF-16 unit takes at most 3 bytes of UTF-8: most outputs need no encoding to tell.
  if (text.length * 3 <= q.payloads.thresholdBytes) return { output: JSON.parse(text) };
  const bytes = encoder.encode(text);
  if (bytes.length > q.maxOutputBytes) {
    return {
      failure: {
        name: "ValidationError",
        message: `Output of ${task.type} task is ${bytes.length} bytes of JSON; the limit is ${q.maxOutputBytes} (maxOutputBytes). Store large results in an object of your own and return its key, or raise maxOutputBytes.`,
        permanent: true,
      },
    };
  }
  if (!q.payloads.storedApart(bytes.length)) return { output: JSON.parse(text) };
  try {
    const outputRef = await q.payloads.put(task.id, `output.${task.attempt}`, bytes);
    return { output: null, outputRef };
  } catch (error) {
    return {
      failure: {
        name: "OutputNotStored",
        message: `could not store the output (${bytes.length} bytes) as its own object: ${errorMessage(error)}`,
        permanent: false,
      },
    };
  }
}
