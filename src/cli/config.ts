/**
 * Opening the queue a command works on: flags first, then `OQ_*` variables, then the local file
 * store at `./.oq`.
 *
 * @module
 */
import process from "node:process";
import { type ConnectOptions, connect, connectInSteps, resolveStorage } from "../connect.ts";
import type { Queue } from "../queue/queue.ts";
import { FileStorage } from "../runtime/file/storage.ts";
import { runtimeFetchOption } from "../runtime/node-fetch.ts";
import { nodeRandomHex } from "../runtime/node-random.ts";
import type { Storage } from "../storage/storage.ts";
import { type ConnectionArgs, connectOptions } from "./connection.ts";
import { queueLogger } from "./logs.ts";

/** `connect()` options for a command's flags, with the process environment and the file store. */
function cliConnectOptions(args: ConnectionArgs): ConnectOptions {
  return {
    ...connectOptions(args, process.env),
    ...runtimeFetchOption(),
    randomHex: nodeRandomHex,
    openFile: (root: string): Storage => new FileStorage({ root }),
    logger: queueLogger(),
  };
}

/** Open the queue the flags and environment describe (checks bucket versioning). */
export function openQueue(
  args: ConnectionArgs,
  extra: Partial<ConnectOptions> = {},
): Promise<Queue> {
  return connect({ ...cliConnectOptions(args), ...extra });
}

/**
 * {@link openQueue} in two steps: the queue at once, and its versioning check to await (see
 * `connectInSteps`).
 */
export function openQueueInSteps(
  args: ConnectionArgs,
  extra: Partial<ConnectOptions> = {},
): { queue: Queue; checked: Promise<void> } {
  return connectInSteps({ ...cliConnectOptions(args), ...extra });
}

/**
 * The storage and prefix the flags describe, without connecting, so a command can wrap the
 * storage (the demo counts its requests) before opening the queue on it.
 */
export function openStorage(args: ConnectionArgs): {
  options: ConnectOptions;
  storage: Storage;
  prefix: string | undefined;
} {
  const options = cliConnectOptions(args);
  return { options, ...resolveStorage(options) };
}
