/**
 * The R2 driver inside workerd (miniflare 4), against miniflare's R2 simulation: the shared
 * storage conformance suite, run through a Worker that exposes the driver as a tiny RPC
 * (fixtures/r2-rpc-worker.ts). Each suite call is one `dispatchFetch` into the Worker, so the
 * driver code, the binding and R2's conditional-write semantics are all the real workerd ones;
 * the 16-writer races are 16 concurrent requests into the same bucket.
 */
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { describe, expect, it } from "vitest";
import {
  AccessDeniedError,
  AmbiguousWriteError,
  ConfigError,
  ConflictError,
  InvalidStateError,
  MalformedObjectError,
  NotFoundError,
  type OqError,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
  ValidationError,
} from "../../src/errors.ts";
import type {
  GetOptions,
  GetResult,
  HeadResult,
  ListOptions,
  ListResult,
  ListVersionsOptions,
  ListVersionsResult,
  PutOptions,
  PutResult,
  ServerTimeSample,
  Storage,
  VersioningStatus,
} from "../../src/storage/storage.ts";
import { describeConformance } from "../storage/conformance.ts";
import { decode, encode, type RpcAnswer } from "./fixtures/rpc-codec.ts";
import { bundleWorker, COMPATIBILITY_DATE, FIXTURES } from "./helpers.ts";

const ERRORS: Record<string, new (message: string, details?: object) => OqError> = {
  AccessDeniedError,
  AmbiguousWriteError,
  ConfigError,
  ConflictError,
  InvalidStateError,
  MalformedObjectError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
  ValidationError,
};

/** A Storage whose every call runs in the miniflare Worker. */
class RpcStorage implements Storage {
  readonly name = "r2 (miniflare)";
  readonly mf: Miniflare;
  #time: ServerTimeSample | undefined;
  constructor(mf: Miniflare) {
    this.mf = mf;
  }

  async #call<T>(method: string, ...args: unknown[]): Promise<T> {
    // JSON turns a missing argument into null, which defeats default parameters.
    while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
    const sentMs = Date.now();
    const res = await this.mf.dispatchFetch("http://rpc/", {
      method: "POST",
      body: encode({ method, args }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`RPC ${method}: HTTP ${res.status}: ${text.slice(0, 500)}`);
    const answer = decode<RpcAnswer>(text);
    const t = answer.serverTime as ServerTimeSample | null;
    // The Worker's clock is the "server"; pair it with ours as a request and response would be.
    if (t !== null)
      this.#time = { serverMs: t.serverMs, resolutionMs: 1, sentMs, localMs: Date.now() };
    if (answer.ok) return answer.value as T;
    const E = ERRORS[answer.error.name];
    if (E === undefined) throw new Error(`${answer.error.name}: ${answer.error.message}`);
    const { status, s3Code, key } = answer.error;
    throw new E(answer.error.message, { status, s3Code, key });
  }

  get(key: string, options?: GetOptions): Promise<GetResult> {
    return this.#call("get", key, options);
  }
  head(key: string): Promise<HeadResult> {
    return this.#call("head", key);
  }
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult> {
    return this.#call("put", key, body, options);
  }
  async delete(key: string): Promise<void> {
    await this.#call("delete", key);
  }
  async deleteVersion(key: string, versionId: string): Promise<void> {
    await this.#call("deleteVersion", key, versionId);
  }
  async deleteMany(keys: readonly string[]): Promise<void> {
    await this.#call("deleteMany", keys);
  }
  list(options?: ListOptions): Promise<ListResult> {
    return this.#call("list", options);
  }
  listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    return this.#call("listVersions", options);
  }
  versioning(): Promise<VersioningStatus> {
    return this.#call("versioning");
  }
  serverTime(): ServerTimeSample | undefined {
    return this.#time;
  }
}

async function startMiniflare(): Promise<Miniflare> {
  const script = await bundleWorker(join(FIXTURES, "r2-rpc-worker.ts"));
  const mf = new Miniflare({
    modules: true,
    script,
    r2Buckets: ["BUCKET"],
    compatibilityDate: COMPATIBILITY_DATE,
  });
  await mf.ready;
  return mf;
}

let shared: Miniflare | undefined;

describeConformance("r2 (workerd via miniflare)", {
  storage: async () => {
    shared = await startMiniflare();
    return new RpcStorage(shared);
  },
  expectedVersioning: "Disabled",
  cleanup: async () => {
    await shared?.dispose();
  },
});

describe("R2Storage specifics (workerd via miniflare)", () => {
  it("maps a failed etagMatches on a missing key to NotFoundError, deletes in batches, and keeps one version", async () => {
    const mf = await startMiniflare();
    try {
      const s = new RpcStorage(mf);
      const a = await s.put("x/a", "1");
      // A quoted ETag (as returned) and a weak one both work as ifMatch.
      const b = await s.put("x/a", "2", { ifMatch: a.etag });
      const c = await s.put("x/a", "3", { ifMatch: `W/${b.etag}` });
      expect(c.versionId).toBeNull();
      await expect(s.put("x/missing", "v", { ifMatch: c.etag })).rejects.toBeInstanceOf(
        NotFoundError,
      );
      await expect(s.get("x/a", { versionId: "some-old-version" })).rejects.toBeInstanceOf(
        NotFoundError,
      );
      expect(new TextDecoder().decode((await s.get("x/a", { versionId: "null" })).body)).toBe("3");
      const keys = Array.from({ length: 1005 }, (_, i) => `y/${String(i).padStart(4, "0")}`);
      for (let i = 0; i < keys.length; i += 100) {
        await Promise.all(keys.slice(i, i + 100).map((k) => s.put(k, "")));
      }
      await s.deleteMany([...keys, "y/never-existed"]);
      expect((await s.list({ prefix: "y/" })).objects).toEqual([]);
      await expect(s.put("", "v")).rejects.toBeInstanceOf(ValidationError);
    } finally {
      await mf.dispose();
    }
  });
});
