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
import { runtimeFetchOption } from "./src/runtime/node-fetch.ts";

export * from "./mod.ts";
export { FileStorage, type FileStorageOptions } from "./src/runtime/file/storage.ts";
export { type NodeFetchOptions, nodeFetch } from "./src/runtime/node-fetch.ts";

/**
 * Open a queue like the portable `connect`, with three additions for runtimes that have a
 * filesystem: `env` defaults to the process environment, `file:` URLs (and the no-bucket
 * default, `./.oq`) open a {@link FileStorage}, and on Node the S3 driver talks through
 * `node:http` ({@link nodeFetch}) unless `fetch` is given: Node's own `fetch` costs a starting
 * process 25-100 ms and about 10 MB.
 */
export function connect(options: ConnectOptions | string = {}): Promise<Queue> {
  const opts: ConnectOptions = typeof options === "string" ? { url: options } : options;
  return connectPortable({
    env: process.env,
    ...runtimeFetchOption(),
    openFile: (root) => new FileStorage({ root }),
    ...opts,
  });
}
