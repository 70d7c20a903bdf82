/**
 * Opening the queue a command works on: flags first, then `OQ_*` variables, then the local file
 * store at `./.oq`.
 *
 * @module
 */
import process from "node:process";
import { type ConnectOptions, connect, resolveStorage } from "../connect.ts";
import type { Queue } from "../queue.ts";
import { FileStorage } from "../runtime/file/storage.ts";
import type { Storage } from "../storage/storage.ts";
import { connectionFlags } from "./args.ts";
import { queueLogger } from "./output.ts";

/** The connection flags as citty hands them to a command. */
export interface ParsedConnectionArgs {
  url?: string | undefined;
  bucket?: string | undefined;
  endpoint?: string | undefined;
  region?: string | undefined;
  prefix?: string | undefined;
  "allow-no-versioning"?: boolean | undefined;
}

/** `connect()` options for a command's flags, with the process environment and the file store. */
export function connectOptions(args: ParsedConnectionArgs): ConnectOptions {
  const flags = connectionFlags({
    url: args.url,
    bucket: args.bucket,
    endpoint: args.endpoint,
    region: args.region,
    prefix: args.prefix,
    allowNoVersioning: args["allow-no-versioning"],
  });
  const options: ConnectOptions = {
    env: process.env,
    openFile: (root: string): Storage => new FileStorage({ root }),
    logger: queueLogger(),
  };
  if (flags.url !== undefined) options.url = flags.url;
  if (flags.bucket !== undefined) options.bucket = flags.bucket;
  if (flags.endpoint !== undefined) options.endpoint = flags.endpoint;
  if (flags.region !== undefined) options.region = flags.region;
  if (flags.prefix !== undefined) options.prefix = flags.prefix;
  if (flags.allowNoVersioning !== undefined) options.allowNoVersioning = flags.allowNoVersioning;
  return options;
}

/** Open the queue the flags and environment describe (checks bucket versioning). */
export function openQueue(
  args: ParsedConnectionArgs,
  extra: Partial<ConnectOptions> = {},
): Promise<Queue> {
  return connect({ ...connectOptions(args), ...extra });
}

/**
 * The storage and prefix the flags describe, without connecting, so a command can wrap the
 * storage (the demo counts its requests) before opening the queue on it.
 */
export function openStorage(args: ParsedConnectionArgs): {
  options: ConnectOptions;
  storage: Storage;
  prefix: string | undefined;
} {
  const options = connectOptions(args);
  return { options, ...resolveStorage(options) };
}
