/**
 * The embedding check shared by the Bun and Deno tests: an example HTTP server with a worker
 * inside (examples/bun/server.ts, examples/deno/server.ts) submits a task per request, runs
 * them, and on SIGTERM shuts down gracefully: a task that finishes within the grace period
 * completes, one that does not is handed back as pending with its attempt uncounted, the
 * heartbeat is removed and the process exits 0.
 */
import { expect } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import type { Storage } from "../../src/storage/storage.ts";
import type { TaskRecord } from "../../src/task/record.ts";
import { type Started, show } from "./helpers.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Where the server's queue lives, as the test sees it. */
export interface EmbedTarget {
  storage: Storage;
  prefix: string;
  /** Variables that point the example at the same queue. */
  env: Record<string, string>;
}

/**
 * Drive a started example server (it must print `listening on http://localhost:<port>`).
 * `startServer` gets the variables to add to its environment.
 */
export async function checkEmbeddedServer(
  startServer: (env: Record<string, string>) => Started,
  target: EmbedTarget,
): Promise<void> {
  const server = startServer({ ...target.env, PORT: "0", OQ_GRACE_MS: "3000" });
  try {
    const [, port] = await server.waitFor(/listening on http:\/\/localhost:(\d+)/, 30_000);
    const base = `http://127.0.0.1:${port}`;
    const submit = async (input: Record<string, unknown>) => {
      const res = await fetch(`${base}/resize`, { method: "POST", body: JSON.stringify(input) });
      expect(res.status).toBe(202);
      return ((await res.json()) as { id: string }).id;
    };
    const get = async (id: string) => {
      const res = await fetch(`${base}/tasks/${id}`);
      expect(res.status).toBe(200);
      return (await res.json()) as TaskRecord;
    };
    const until = async (id: string, status: string) => {
      for (let i = 0; i < 300; i++) {
        const t = await get(id);
        if (t.status === status) return t;
        await sleep(50);
      }
      throw new Error(`task ${id} never became ${status}: ${JSON.stringify(await get(id))}`);
    };

    const quick = await Promise.all(
      ["a.png", "b.png", "c.png"].map((image) => submit({ image, width: 64, ms: 50 })),
    );
    for (const id of quick) {
      const t = await until(id, "completed");
      expect(t.output).toMatchObject({ width: 64 });
    }
    const finishes = await submit({ image: "finishes.png", width: 32, ms: 1500 });
    const tooLong = await submit({ image: "too-long.png", width: 32, ms: 120_000 });
    await until(finishes, "running");
    await until(tooLong, "running");

    server.child.kill("SIGTERM");
    const result = await server.done;
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toMatch(/SIGTERM: stopping/);
    expect(result.stdout).toMatch(/stopped: /);
    // Graceful: well within the grace period plus start-up slack, not killed by our timeout.
    expect(result.ms).toBeLessThan(30_000);

    const queue = new Queue({ storage: target.storage, prefix: target.prefix });
    expect((await queue.get(finishes)).status).toBe("completed");
    const handedBack = await queue.get(tooLong);
    expect(handedBack.status).toBe("pending");
    expect(handedBack.attempt).toBe(0);
    expect(handedBack.lease).toBeNull();
    // Its heartbeat is deleted; its finished counts stay under workers/stopped/ (rolled up).
    const heartbeats = await target.storage.list({ prefix: queue.keys.workers, delimiter: "/" });
    expect(heartbeats.objects).toEqual([]);
  } finally {
    server.child.kill("SIGKILL");
    await server.done;
  }
}
