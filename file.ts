/**
 * `oq/file`: everything in the portable entry point, plus a storage in a local directory for
 * development and single-machine deployments with no object store. It needs `node:fs`, so it
 * lives outside the portable entry; Node, Bun and Deno all run it.
 *
 * Its {@link connect} also reads the process environment by default and opens `file:` URLs, and
 * with no bucket configured it uses the file store in `./.oq`:
 *
 * ```ts
 * import { connect, Worker } from "oq/file";
 * const queue = await connect(); // OQ_* variables, else ./.oq
 * ```
 *
 * @module
 */
import process from "node:process";
import { type ConnectOptions, connect as connectPortable } from "./src/connect.ts";
import type { Queue } from "./src/queue/queue.ts";
import { FileStorage } from "./src/runtime/file/storage.ts";

export * from "./mod.ts";
export { FileStorage, type FileStorageOptions } from "./src/runtime/file/storage.ts";

/**
 * Open a queue like the portable `connect`, with two additions for runtimes that have a
 * filesystem: `env` defaults to the process environment, and `file:` URLs (and the no-bucket
 * default, `./.oq`) open a {@link FileStorage}.
 */
export function connect(options: ConnectOptions | string = {}): Promise<Queue> {
  const opts: ConnectOptions = typeof options === "string" ? { url: options } : options;
  return connectPortable({
    env: process.env,
    openFile: (root) => new FileStorage({ root }),
    ...opts,
  });
}
