/**
 * A private erasure-coded MinIO for tests that break the store itself: started, its drives taken
 * away and given back, and the server killed and restarted, all through `scripts/minio.sh` (the
 * one place that knows how MinIO is built, started and laid out), with a state dir and port of
 * its own, so the shared test server is never touched.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type S3Config, s3ConfigFrom } from "./targets.ts";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../scripts/minio.sh", import.meta.url));

/** Why an erasure-coded MinIO cannot be had here, or undefined when its binary is built. */
export async function minioMissing(): Promise<string | undefined> {
  const { stdout } = await run("bash", [SCRIPT, "bin"]);
  const bin = stdout.trim();
  return existsSync(bin)
    ? undefined
    : `the MinIO binary is not built (${bin}); run bash scripts/minio.sh install (needs Go)`;
}

/** A running MinIO over `drives` drives in one erasure set. */
export class ErasureMinio {
  /** How to reach it. */
  readonly config: S3Config;
  /** Its number of drives. */
  readonly drives: number;
  readonly #stateDir: string;

  private constructor(stateDir: string, config: S3Config, drives: number) {
    this.#stateDir = stateDir;
    this.config = config;
    this.drives = drives;
  }

  /** Start one (builds nothing: see {@link minioMissing}). */
  static async start(drives = 4): Promise<ErasureMinio> {
    const stateDir = mkdtempSync(join(tmpdir(), "oq-minio-erasure-"));
    try {
      await run("bash", [SCRIPT, "start"], {
        env: { ...process.env, OQ_MINIO_STATE_DIR: stateDir, OQ_MINIO_DRIVES: String(drives) },
      });
    } catch (error) {
      rmSync(stateDir, { recursive: true, force: true });
      throw error;
    }
    const vars: Record<string, string> = {};
    for (const m of readFileSync(join(stateDir, "env"), "utf8").matchAll(/^export (\w+)='(.*)'$/gm))
      vars[m[1]!] = m[2]!;
    const config = s3ConfigFrom(vars);
    if (config === undefined) throw new Error(`minio.sh wrote no usable env in ${stateDir}`);
    return new ErasureMinio(stateDir, config, drives);
  }

  async #script(...args: string[]): Promise<void> {
    await run("bash", [SCRIPT, ...args], {
      env: { ...process.env, OQ_MINIO_STATE_DIR: this.#stateDir },
    });
  }

  /** Take drive `k` (1-based) away until {@link driveIn}. */
  driveOut(k: number): Promise<void> {
    return this.#script("drive-out", String(k));
  }

  /** Give drive `k` back as it was when it left (stale: MinIO heals it). */
  driveIn(k: number): Promise<void> {
    return this.#script("drive-in", String(k));
  }

  /** SIGKILL the server and start it again; resolves once it has write quorum again. */
  restart(): Promise<void> {
    return this.#script("restart");
  }

  /** True when MinIO says the erasure set has write quorum (`/minio/health/cluster`). */
  async writable(): Promise<boolean> {
    try {
      const res = await fetch(`${this.config.endpoint}/minio/health/cluster`, {
        signal: AbortSignal.timeout(2000),
      });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  /** Wait until {@link writable}, at most `timeoutMs`; returns how long it took, ms. */
  async untilWritable(timeoutMs = 60_000): Promise<number> {
    const started = Date.now();
    while (!(await this.writable())) {
      if (Date.now() - started > timeoutMs)
        throw new Error(`MinIO had no write quorum ${timeoutMs} ms after its drives came back`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return Date.now() - started;
  }

  /** Stop it and delete its data and state. */
  async stop(): Promise<void> {
    try {
      await this.#script("stop");
    } finally {
      rmSync(this.#stateDir, { recursive: true, force: true });
    }
  }
}
