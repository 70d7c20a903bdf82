/**
 * A worker in its own process for the memory benchmark (`scripts/bench.ts`): one `Worker` over
 * the S3 server in OQ_TEST_S3_* and the prefix in BENCH_PREFIX, running no-op `noop` tasks with
 * BENCH_CONCURRENCY slots. Every 100 ms it prints one line,
 *
 *   mem <rss bytes> <heap used bytes> <heap total bytes> <tasks completed>
 *
 * and it prints `ready` once polling. SIGTERM stops it gracefully.
 */
import { Queue } from "../src/queue/queue.ts";
import { S3Storage } from "../src/storage/s3/driver.ts";
import { Worker } from "../src/worker/worker.ts";

const env = process.env;
const storage = new S3Storage({
  endpoint: env.OQ_TEST_S3_ENDPOINT!,
  bucket: env.OQ_TEST_S3_BUCKET!,
  region: env.OQ_TEST_S3_REGION ?? "us-east-1",
  accessKeyId: env.OQ_TEST_S3_ACCESS_KEY_ID!,
  secretAccessKey: env.OQ_TEST_S3_SECRET_ACCESS_KEY!,
});
const queue = new Queue({ storage, prefix: env.BENCH_PREFIX ?? "" });
const worker = new Worker(queue, { concurrency: Number(env.BENCH_CONCURRENCY ?? 8) }).task(
  "noop",
  () => null,
);
await worker.start();
const sample = () => {
  const m = process.memoryUsage();
  process.stdout.write(`mem ${m.rss} ${m.heapUsed} ${m.heapTotal} ${worker.stats.completed}\n`);
};
sample();
const timer = setInterval(sample, 100);
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  clearInterval(timer);
  void worker.stop().finally(() => process.exit(0));
});
