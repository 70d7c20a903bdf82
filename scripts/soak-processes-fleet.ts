/**
 * The process soak's workers (scripts/soak-processes.ts): each a `node --import tsx
 * scripts/soak-worker.ts` process, so the pid read in /proc is the worker's own. Spawns them,
 * kills one with SIGKILL and starts its successor, reads each one's RSS and open sockets from
 * /proc, and hands every line a worker prints to the parent.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile, readlink } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { ProcessSample } from "./soak-processes-checks.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CHILD = fileURLToPath(new URL("./soak-worker.ts", import.meta.url));

/** One worker process from spawn to exit; a restarted worker is a new lifetime. */
export interface Lifetime {
  /** Which of the fleet's workers this is (0-based); successors keep the slot. */
  slot: number;
  pid: number;
  /** Seconds since the stream started, at spawn (negative: before the stream). */
  spawnedS: number;
  /** Seconds since the stream started, at exit. */
  endedS?: number;
  /** How it ended: SIGKILLed by the soak, stopped by SIGTERM at the end, or on its own. */
  end?: "killed" | "stopped" | "exited";
  samples: ProcessSample[];
}

/** RSS (KiB) and open sockets of process `pid`, or undefined when it is gone. */
export async function readProcess(
  pid: number,
): Promise<Omit<ProcessSample, "elapsedS"> | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (rss === null) return undefined;
    let sockets = 0;
    for (const fd of await readdir(`/proc/${pid}/fd`)) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      if (target.startsWith("socket:")) sockets++;
    }
    return { rssKb: Number(rss[1]), sockets };
  } catch {
    return undefined;
  }
}

interface Running {
  child: ChildProcess;
  lifetime: Lifetime;
  exited: Promise<void>;
}

/** The soak's worker processes. */
export class SoakFleet {
  /** Every lifetime, in order of spawn. */
  readonly lifetimes: Lifetime[] = [];
  /** Workers that exited without being told to, with the end of their stderr. */
  readonly crashes: string[] = [];
  readonly #running = new Map<number, Running>();
  readonly #env: Record<string, string | undefined>;
  readonly #startMs: () => number;
  readonly #onLine: (lifetime: Lifetime, tag: string, rest: string) => void;

  /**
   * `env` goes to every worker (with SOAK_WORKER); `startMs` is when the stream started;
   * `onLine` gets every line a worker prints, split at the first space.
   */
  constructor(options: {
    env: Record<string, string | undefined>;
    startMs: () => number;
    onLine: (lifetime: Lifetime, tag: string, rest: string) => void;
  }) {
    this.#env = options.env;
    this.#startMs = options.startMs;
    this.#onLine = options.onLine;
  }

  #elapsedS(): number {
    return Math.round((Date.now() - this.#startMs()) / 1000);
  }

  /** Spawn the worker of `slot` and wait until it says it is ready. */
  async spawn(slot: number): Promise<Lifetime> {
    const child = spawn(process.execPath, ["--import", "tsx", CHILD], {
      cwd: ROOT,
      env: this.#env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lifetime: Lifetime = {
      slot,
      pid: child.pid ?? 0,
      spawnedS: this.#elapsedS(),
      samples: [],
    };
    this.lifetimes.push(lifetime);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    const exited = new Promise<void>((resolve) =>
      child.once("exit", (code, signal) => {
        lifetime.endedS = this.#elapsedS();
        if (lifetime.end === undefined) {
          lifetime.end = "exited";
          this.crashes.push(
            `worker ${slot} (pid ${lifetime.pid}) exited (${code ?? signal}): ${stderr.slice(-800)}`,
          );
        }
        resolve();
      }),
    );
    this.#running.set(slot, { child, lifetime, exited });
    await new Promise<void>((resolve, reject) => {
      let buffer = "";
      child.stdout!.on("data", (d: Buffer) => {
        buffer += d.toString();
        for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          const space = line.indexOf(" ");
          const tag = space < 0 ? line : line.slice(0, space);
          if (tag === "ready") resolve();
          this.#onLine(lifetime, tag, space < 0 ? "" : line.slice(space + 1));
        }
      });
      void exited.then(() =>
        reject(new Error(`worker ${slot} exited before it was ready: ${stderr}`)),
      );
    });
    return lifetime;
  }

  /** SIGKILL the worker of `slot`, wait for its exit, and spawn its successor. */
  async killAndRestart(slot: number): Promise<Lifetime> {
    const running = this.#running.get(slot);
    if (running !== undefined) {
      running.lifetime.end = "killed";
      running.child.kill("SIGKILL");
      await running.exited;
      this.#running.delete(slot);
    }
    return await this.spawn(slot);
  }

  /** Read every running worker's RSS and sockets into its lifetime. */
  async sample(elapsedS: number): Promise<void> {
    for (const { lifetime } of this.#running.values()) {
      const reading = await readProcess(lifetime.pid);
      if (reading !== undefined) lifetime.samples.push({ elapsedS, ...reading });
    }
  }

  /** Stop every worker with SIGTERM (SIGKILL after `graceMs`) and wait for them to exit. */
  async stopAll(graceMs = 30_000): Promise<void> {
    await Promise.all(
      [...this.#running.values()].map(async ({ child, lifetime, exited }) => {
        lifetime.end = "stopped";
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.#running.clear();
  }
}
