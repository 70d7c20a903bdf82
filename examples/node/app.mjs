/**
 * oq on Node: a worker service that also submits a few tasks when it starts, then runs until
 * SIGTERM or Ctrl-C, when it stops claiming, lets running tasks finish (or hands them back) and
 * exits.
 *
 *   npm install /path/to/oq-0.1.0.tgz              # `npm pack` in a checkout (not on npm yet)
 *   node app.mjs                                   # file store in ./.oq
 *   OQ_BUCKET=jobs OQ_ENDPOINT=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=... \
 *     AWS_SECRET_ACCESS_KEY=... node app.mjs      # any S3-compatible bucket
 *
 * It is an ES module (`.mjs`): top-level `await` needs one. From this checkout: `npm run build`
 * first (it imports the built package by name). Submit more from another shell with
 * `npx oq submit -t send-email -i '{"to":"x@example.com"}'`.
 */
import process from "node:process";
import { connect, PermanentError, Worker } from "oq/file";

// The OQ_* variables of the process; without OQ_URL or OQ_BUCKET the queue lives in ./.oq.
const queue = await connect();

const worker = new Worker(queue, {
  concurrency: 4,
  onEvent: (e) => {
    if (e.kind !== "started")
      console.log(`${e.kind} ${e.type} ${e.id}${e.error ? `: ${e.error}` : ""}`);
  },
}).task("send-email", async (input, ctx) => {
  if (!String(input.to).includes("@")) throw new PermanentError(`invalid address ${input.to}`);
  await new Promise((resolve) => setTimeout(resolve, 100));
  return { to: input.to, messageId: `<${ctx.task.id}@example.com>` };
});
await worker.start();
console.log(`worker ${worker.id} on ${queue.storage.name}`);

for (const to of ["ada@example.com", "grace@example.com", "not-an-address"]) {
  const task = await queue.submit("send-email", { to });
  console.log(`submitted ${task.id} (${to})`);
}

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  await worker.stop();
  console.log(`stopped: ${JSON.stringify(worker.stats)}`);
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
