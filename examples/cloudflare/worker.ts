/**
 * oq on Cloudflare Workers: `fetch` submits tasks, and a cron trigger (`scheduled`) drains them:
 * it claims and runs due tasks until none is left or its time budget runs out, then returns.
 * Unfinished tasks are handed back, so the next cron tick (or any other worker) continues.
 *
 * Storage: the R2 binding `QUEUE_R2` when present (no credentials; R2 keeps no object versions,
 * so only each task's own event log, `queue.getHistory()`, records its past),
 * otherwise the S3 bucket described by the `OQ_*` / `AWS_*` variables of the Worker's `env`,
 * reached over signed `fetch` (aws4fetch on Web Crypto: no Node APIs, no `nodejs_compat`).
 *
 *   POST /tasks          {"type": "thumbnail", "input": {...}, "options": {...}}  → 201 {id, status}
 *   GET  /tasks/:id      the task record
 *
 * Run it: `npx wrangler dev --test-scheduled`, then `curl -X POST localhost:8787/tasks -d
 * '{"type":"thumbnail","input":{"image":"a.png"}}'` and `curl localhost:8787/__scheduled`.
 */
import {
  connect,
  type Queue,
  type R2BucketLike,
  R2Storage,
  type SubmitOptions,
  type TaskContext,
  Worker,
} from "oq";

export interface Env {
  /** An R2 bucket binding; wins over the S3 variables when bound. */
  QUEUE_R2?: R2BucketLike;
  OQ_BUCKET?: string;
  OQ_ENDPOINT?: string;
  OQ_REGION?: string;
  OQ_PREFIX?: string;
  OQ_ALLOW_NO_VERSIONING?: string;
  AWS_ACCESS_KEY_ID?: string;
  AWS_SECRET_ACCESS_KEY?: string;
}

/** The parts of the Workers runtime's `ExecutionContext` used here. */
interface Context {
  waitUntil(promise: Promise<unknown>): void;
}

/** The task handlers this Worker runs. */
function withHandlers(worker: Worker): Worker {
  return worker
    .task("thumbnail", async (input: { image: string; width?: number }) => {
      const width = input.width ?? 128;
      return { thumbnail: input.image.replace(/(\.\w+)?$/, `-${width}w$1`), width };
    })
    .task("flaky", async (input: unknown, ctx: TaskContext) => {
      // Fails its first attempt, like a busy upstream; the queue retries it after a backoff.
      if (ctx.attempt === 1) throw new Error("upstream busy, try again later");
      return { input, attempt: ctx.attempt };
    });
}

/** Only the string variables: the rest of `env` are bindings. */
function variables(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === "string") out[k] = v;
  return out;
}

/** Set after the first successful versioning check of this isolate: later requests skip it. */
let checked = false;

async function open(env: Env): Promise<Queue> {
  const common = {
    ...(env.OQ_PREFIX ? { prefix: env.OQ_PREFIX } : {}),
    skipVersioningCheck: checked,
  };
  const queue =
    env.QUEUE_R2 !== undefined
      ? await connect({
          ...common,
          storage: new R2Storage({ bucket: env.QUEUE_R2, name: "r2:QUEUE_R2" }),
          // R2 bindings keep no object versions; say so explicitly.
          allowNoVersioning: true,
        })
      : await connect({ ...common, env: variables(env) });
  checked = true;
  return queue;
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (request.method === "POST" && url.pathname === "/tasks") {
        const body = (await request.json()) as {
          type?: unknown;
          input?: unknown;
          options?: SubmitOptions;
        };
        if (typeof body.type !== "string") return json({ error: "type must be a string" }, 400);
        const queue = await open(env);
        const task = await queue.submit(body.type, body.input ?? null, body.options ?? {});
        return json({ id: task.id, status: task.status }, 201);
      }
      const match = /^\/tasks\/([^/]+)$/.exec(url.pathname);
      if (request.method === "GET" && match !== null) {
        const queue = await open(env);
        const task = await queue.read(match[1]!);
        return task === undefined ? json({ error: "no such task" }, 404) : json(task.task);
      }
      return json({ error: "not found" }, 404);
    } catch (error) {
      const e = error as { name?: string; message?: string; code?: string };
      const status = e.code === "VALIDATION" ? 400 : 500;
      return json({ error: e.message ?? String(error), code: e.code ?? e.name }, status);
    }
  },

  /** Cron trigger: run due tasks for up to 25 s (a cron invocation may run for minutes). */
  async scheduled(_controller: unknown, env: Env, ctx: Context): Promise<void> {
    const queue = await open(env);
    const worker = withHandlers(new Worker(queue, { concurrency: 4, leaseSeconds: 60 }));
    const run = worker.drain({ budgetMs: 25_000 }).then((started) => {
      console.log(`oq: drained ${started} task(s); ${JSON.stringify(worker.stats)}`);
    });
    ctx.waitUntil(run);
    await run;
  },
};
