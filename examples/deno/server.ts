/**
 * An HTTP server with an oq worker embedded in the same Deno process: each `POST /resize`
 * submits a task and answers 202 at once; the worker runs the tasks in the background. On
 * SIGTERM (or Ctrl-C) the server shuts down (in-flight requests finish), the worker stops
 * claiming, running tasks get a grace period to finish and are otherwise handed back as pending
 * (the interrupted attempt does not count), then the process exits.
 *
 *   deno run --allow-net --allow-env --allow-read --allow-write examples/deno/server.ts
 *
 * In your project: `deno add jsr:@oq/oq` (this checkout resolves `@oq/oq` from its deno.json).
 * Only the file store needs --allow-read/--allow-write; with an S3 bucket (OQ_BUCKET,
 * OQ_ENDPOINT, AWS_*), --allow-net and --allow-env are enough.
 *
 * Variables: PORT (3000; 0 picks a free one), OQ_GRACE_MS (10000), and the usual OQ_URL,
 * OQ_BUCKET, OQ_ENDPOINT, OQ_REGION, OQ_PREFIX, AWS_*.
 */
import { connect, type TaskContext, Worker } from "@oq/oq";
import { FileStorage } from "@oq/oq/file";

const env = Deno.env.toObject();
const queue = await connect({
  env,
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
  shutdownGraceMs: Number(env.OQ_GRACE_MS ?? 10_000),
  onEvent: (e) => console.log(`worker: ${e.kind} ${e.type ?? ""} ${e.id}`),
}).task("resize", resize);
await worker.start();

const server = Deno.serve(
  {
    port: Number(env.PORT ?? 3000),
    onListen: ({ port }) =>
      console.log(`listening on http://localhost:${port} (queue on ${queue.storage.name})`),
  },
  async (request) => {
    const url = new URL(request.url);
    try {
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
    } catch (error) {
      return Response.json({ error: (error as Error).message }, { status: 500 });
    }
  },
);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  // Stop accepting connections and let requests in flight finish (their submits complete), ...
  await server.shutdown();
  // ... then stop the worker: running tasks finish within the grace period or are handed back.
  await worker.stop();
  console.log(`stopped: ${JSON.stringify(worker.stats)}`);
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));
