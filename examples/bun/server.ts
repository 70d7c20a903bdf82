/**
 * An HTTP server with an oq worker embedded in the same Bun process: each `POST /resize`
 * submits a task and answers 202 at once; the worker runs the tasks in the background. On
 * SIGTERM (or Ctrl-C) the server stops accepting requests, the worker stops claiming, running
 * tasks get a grace period to finish and are otherwise handed back as pending for another
 * worker (the interrupted attempt does not count), then the process exits.
 *
 *   bun examples/bun/server.ts                  # file store in ./.oq
 *   OQ_BUCKET=jobs OQ_ENDPOINT=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=... \
 *     AWS_SECRET_ACCESS_KEY=... bun examples/bun/server.ts
 *
 *   curl -X POST localhost:3000/resize -d '{"image":"cat.png","width":128}'
 *   curl localhost:3000/tasks/<id>
 *
 * Variables: PORT (3000; 0 picks a free one), OQ_GRACE_MS (10000), and the usual OQ_URL,
 * OQ_BUCKET, OQ_ENDPOINT, OQ_REGION, OQ_PREFIX, AWS_*.
 */
import { connect, type TaskContext, Worker } from "oq";
import { FileStorage } from "oq/file";

const queue = await connect({
  env: Bun.env,
  // Without OQ_URL or OQ_BUCKET the queue lives in ./.oq (or OQ_URL=file:./dir).
  openFile: (root) => new FileStorage({ root }),
});

/** Pretend to resize an image: takes `ms` (default 200), stops early when told to. */
async function resize(input: { image: string; width: number; ms?: number }, ctx: TaskContext) {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, input.ms ?? 200);
    ctx.signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(ctx.signal.reason);
    });
  });
  return { image: input.image.replace(/(\.\w+)?$/, `-${input.width}w$1`), width: input.width };
}

const worker = new Worker(queue, {
  concurrency: 4,
  shutdownGraceMs: Number(Bun.env.OQ_GRACE_MS ?? 10_000),
  onEvent: (e) => console.log(`worker: ${e.kind} ${e.type ?? ""} ${e.id}`),
}).task("resize", resize);
await worker.start();

const server = Bun.serve({
  port: Number(Bun.env.PORT ?? 3000),
  async fetch(request) {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/resize") {
      const input = (await request.json()) as { image: string; width: number; ms?: number };
      const task = await queue.submit("resize", input);
      return Response.json({ id: task.id, status: task.status }, { status: 202 });
    }
    const match = /^\/tasks\/([^/]+)$/.exec(url.pathname);
    if (request.method === "GET" && match !== null) {
      const found = await queue.read(match[1]!);
      return found === undefined
        ? Response.json({ error: "no such task" }, { status: 404 })
        : Response.json(found.task);
    }
    return Response.json({ error: "not found" }, { status: 404 });
  },
  error(error) {
    return Response.json({ error: error.message }, { status: 500 });
  },
});
console.log(`listening on http://localhost:${server.port} (queue on ${queue.storage.name})`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  // Stop accepting requests and wait for those in flight (their submits complete), ...
  await server.stop();
  // ... then stop the worker: running tasks finish within the grace period or are handed back.
  await worker.stop();
  console.log(`stopped: ${JSON.stringify(worker.stats)}`);
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
