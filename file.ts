/**
 * `oq/file`: a storage in a local directory, for development and single-machine deployments that
 * have no object store. It needs `node:fs`, so it lives outside the portable main entry point;
 * Node, Bun and Deno all run it.
 *
 * ```ts
 * import { FileStorage } from "oq/file";
 * const storage = new FileStorage({ root: "./.oq" });
 * ```
 *
 * @module
 */
export { FileStorage, type FileStorageOptions, fileStorage } from "./src/storage/file.ts";
