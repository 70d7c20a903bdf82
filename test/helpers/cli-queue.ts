/**
 * The setup of a CLI test against a real queue: a fresh prefix on the file store or MinIO, an
 * `oq` runner pointed at it (colour off), and a `Queue` over the same objects to check what the
 * commands did. One place, so every CLI test reaches its queue the same way.
 *
 * @module
 */
import { tmpdir } from "node:os";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, type OqResult, runOq } from "./cli.ts";
import { fileTarget, s3Target, type Target, type TargetInstance } from "./targets.ts";

/** The storages CLI tests run against: the file store, and MinIO when it is configured. */
export const cliTargets: Target[] = [fileTarget, ...(s3Target === undefined ? [] : [s3Target])];

/** What {@link withCliQueue} hands a test. */
export interface CliQueue {
  /** The storage and prefix of this test. */
  instance: TargetInstance;
  /** The environment of an `oq` subprocess reaching this queue. */
  env: Record<string, string>;
  /** Run `oq` with these arguments against this queue, in a temporary directory. */
  oq: (...args: string[]) => Promise<OqResult>;
  /** The same queue, in this process. */
  queue: Queue;
}

/** Run `test` against a fresh queue on `target`, and remove the queue afterwards. */
export async function withCliQueue(
  target: Target,
  test: (q: CliQueue) => Promise<void>,
): Promise<void> {
  const instance = await target.create();
  try {
    const env = cleanEnv({ ...instance.env, NO_COLOR: "1" });
    const oq = (...args: string[]) => runOq(args, { cwd: tmpdir(), env });
    const queue = new Queue({ storage: instance.storage, prefix: instance.prefix });
    await test({ instance, env, oq, queue });
  } finally {
    await instance.cleanup();
  }
}
