/**
 * doctor: passes on backends that honour conditional writes (memory, file, MinIO when
 * OQ_TEST_S3_* is set), and reports deliberately broken storages as unsafe, with evidence.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type BackendProvider,
  type DoctorReport,
  detectProvider,
  doctorPrefix,
  PROVIDER_NAMES,
  readVerdict,
  requireSafeBackend,
  runDoctor,
  verdictKey,
} from "../src/doctor/mod.ts";
import {
  AccessDeniedError,
  AmbiguousWriteError,
  StorageError,
  UnavailableError,
  UnsafeBackendError,
} from "../src/errors.ts";
import { Queue } from "../src/queue/queue.ts";
import { FileStorage } from "../src/runtime/file/storage.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { S3Storage } from "../src/storage/s3/driver.ts";
import type {
  ListOptions,
  ListResult,
  PutOptions,
  PutResult,
  Storage,
  StorageLocation,
} from "../src/storage/storage.ts";
import { s3Config, testS3Storage } from "./helpers/targets.ts";

const unique = () => `doctor-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/`;

/** Delete every version under a prefix (or every object when versions cannot be deleted). */
async function wipe(storage: Storage, prefix: string): Promise<void> {
  for (;;) {
    const page = await storage.listVersions({ prefix });
    if (page.versions.length === 0) return;
    await Promise.all(
      page.versions.map((v) =>
        storage.deleteVersion ? storage.deleteVersion(v.key, v.versionId) : storage.delete(v.key),
      ),
    );
    if (!storage.deleteVersion) return;
  }
}

interface Backend {
  name: string;
  open(): { storage: Storage; prefix: string; cleanup(): Promise<void> };
}

const backends: Backend[] = [
  {
    name: "memory",
    open: () => ({ storage: new MemoryStorage(), prefix: "", cleanup: async () => {} }),
  },
  {
    name: "file",
    open: () => {
      const root = mkdtempSync(join(tmpdir(), "oq-doctor-"));
      return {
        storage: new FileStorage({ root }),
        prefix: "jobs/",
        cleanup: async () => rmSync(root, { recursive: true, force: true }),
      };
    },
  },
  ...(s3Config === undefined
    ? []
    : [
        {
          name: "s3 (MinIO)",
          open: () => {
            const storage = testS3Storage();
            const prefix = unique();
            return { storage, prefix, cleanup: () => wipe(storage, prefix) };
          },
        },
      ]),
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

function check(report: DoctorReport, id: string) {
  const found = report.checks.find((c) => c.id === id);
  if (found === undefined) throw new Error(`no check ${id} in ${JSON.stringify(report)}`);
  return found;
}

for (const backend of backends) {
  describe(`doctor on ${backend.name}`, () => {
    it("passes every check, leaves no scratch versions behind, and caches the verdict", async () => {
      const env = backend.open();
      cleanups.push(env.cleanup);
      const queue = new Queue({ storage: env.storage, prefix: env.prefix });
      const seen: string[] = [];
      const report = await runDoctor(queue, { onCheck: (c) => seen.push(c.id) });
      const failed = report.checks.filter((c) => c.status === "failed");
      expect(failed, JSON.stringify(failed, null, 1)).toEqual([]);
      expect(report.verdict).toBe("safe");
      expect(seen).toEqual(report.checks.map((c) => c.id));
      expect(seen).toEqual([
        "config",
        "access",
        "versioning",
        // Only storages with bucket lifecycle rules (S3) have the lifecycle check.
        ...(env.storage.getLifecycle === undefined ? [] : ["lifecycle"]),
        "create-if-absent",
        "compare-and-swap",
        "create-race",
        "cas-race",
        "list-after-write",
        "cleanup",
      ]);
      // Evidence says what was sent and what came back.
      expect(check(report, "create-if-absent").evidence.join("\n")).toMatch(
        /If-None-Match: \* -> 412/,
      );
      expect(check(report, "compare-and-swap").evidence.join("\n")).toMatch(
        /If-Match: \S+ -> 412 PreconditionFailed \(stale ETag/,
      );
      expect(check(report, "create-race").evidence.join("\n")).toMatch(/winners: 1/);
      expect(report.scratch.startsWith(`${env.prefix}_doctor/`)).toBe(true);
      // The scratch prefix is gone, versions included.
      const left = await env.storage.listVersions({ prefix: report.scratch });
      expect(left.versions).toEqual([]);
      const cached = await readVerdict(queue);
      expect(cached).toMatchObject({ verdict: "safe", checkedAt: report.checkedAt, failed: [] });
      expect(verdictKey(queue)).toMatch(/_doctor\/verdict-[0-9a-f]{16}\.json$/);
      expect(verdictKey(queue).startsWith(doctorPrefix(queue))).toBe(true);
      // A fresh verdict means no new probe; memory and file storages need none at all.
      const again = await requireSafeBackend(queue);
      expect(again).toMatchObject(
        env.storage.location?.local === true
          ? { verdict: "safe", local: true, cached: false }
          : { verdict: "safe", cached: true },
      );
    });
  });
}

// ---- deliberately broken storages -------------------------------------------------------------

/** A storage that forwards to MemoryStorage, with `put`/`list` overridable. */
class Wrapped implements Storage {
  readonly inner: MemoryStorage;
  readonly name: string;
  constructor(name: string, inner = new MemoryStorage()) {
    this.name = name;
    this.inner = inner;
  }
  get: Storage["get"] = (k, o) => this.inner.get(k, o);
  head: Storage["head"] = (k) => this.inner.head(k);
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult> {
    return this.inner.put(key, body, options);
  }
  delete: Storage["delete"] = (k) => this.inner.delete(k);
  deleteVersion = (k: string, v: string) => this.inner.deleteVersion(k, v);
  list(options?: ListOptions): Promise<ListResult> {
    return this.inner.list(options);
  }
  listVersions: Storage["listVersions"] = (o) => this.inner.listVersions(o);
  versioning: Storage["versioning"] = () => this.inner.versioning();
  serverTime: Storage["serverTime"] = () => this.inner.serverTime();
}

/** Accepts If-None-Match and ignores it (as Garage does). */
class IgnoresIfNoneMatch extends Wrapped {
  override put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
    const { ifNoneMatch: _ignored, ...rest } = options;
    return this.inner.put(key, body, rest);
  }
}

/** Accepts If-Match and ignores it. */
class IgnoresIfMatch extends Wrapped {
  override put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
    const { ifMatch: _ignored, ...rest } = options;
    return this.inner.put(key, body, rest);
  }
}

/** A listing that shows objects only a while after they were written (eventual consistency). */
class LaggingList extends Wrapped {
  readonly #writtenAt = new Map<string, number>();
  override async put(key: string, body: Uint8Array | string, options?: PutOptions) {
    const r = await this.inner.put(key, body, options);
    this.#writtenAt.set(key, Date.now());
    return r;
  }
  override async list(options?: ListOptions) {
    const page = await this.inner.list(options);
    const fresh = (k: string) => Date.now() - (this.#writtenAt.get(k) ?? 0) < 5_000;
    return { ...page, objects: page.objects.filter((o) => !fresh(o.key)) };
  }
}

/** Evaluates conditions correctly, but answers 412 to a won write (a client retrying a committed write). */
class ReportsWonWritesAsLost extends Wrapped {
  override async put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
    const r = await this.inner.put(key, body, options);
    if (options.ifNoneMatch !== undefined && key.includes("create-race")) {
      const { PreconditionFailedError } = await import("../src/errors.ts");
      throw new PreconditionFailedError(`PUT ${key}: 412 PreconditionFailed`, { status: 412 });
    }
    return r;
  }
}

describe("doctor on broken backends", () => {
  it("reports a backend that ignores If-None-Match as unsafe, with evidence", async () => {
    const queue = new Queue({ storage: new IgnoresIfNoneMatch("broken:inm") });
    const report = await runDoctor(queue);
    expect(report.verdict).toBe("unsafe");
    const c = check(report, "create-if-absent");
    expect(c).toMatchObject({ status: "failed", unsafe: true });
    expect(c.evidence.join("\n")).toMatch(/If-None-Match: \* -> 200 .*\(expected 412\)/);
    expect(c.evidence.join("\n")).toMatch(/ignores create-if-absent/);
    expect(c.fix).toMatch(/If-None-Match/);
    const race = check(report, "create-race");
    expect(race).toMatchObject({ status: "failed", unsafe: true });
    expect(race.evidence.join("\n")).toMatch(/16 of 16 concurrent conditional writers/);
    // If-Match still works on this backend.
    expect(check(report, "compare-and-swap").status).toBe("ok");
    await expect(requireSafeBackend(queue)).rejects.toThrow(UnsafeBackendError);
  });

  it("reports a backend that ignores If-Match as unsafe, with evidence", async () => {
    const queue = new Queue({ storage: new IgnoresIfMatch("broken:im") });
    const report = await runDoctor(queue);
    expect(report.verdict).toBe("unsafe");
    const c = check(report, "compare-and-swap");
    expect(c).toMatchObject({ status: "failed", unsafe: true });
    expect(c.evidence.join("\n")).toMatch(/stale ETag: expected 412/);
    expect(c.evidence.join("\n")).toMatch(/ignores compare-and-swap/);
    expect(check(report, "cas-race")).toMatchObject({ status: "failed", unsafe: true });
    expect(check(report, "create-if-absent").status).toBe("ok");
  });

  it("reports If-Match on a missing key that creates it", async () => {
    class CreatesOnMissingIfMatch extends Wrapped {
      override async put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
        if (options.ifMatch !== undefined) {
          try {
            await this.inner.head(key);
          } catch {
            const { ifMatch: _i, ...rest } = options;
            return this.inner.put(key, body, rest);
          }
        }
        return this.inner.put(key, body, options);
      }
    }
    const report = await runDoctor(new Queue({ storage: new CreatesOnMissingIfMatch("b") }));
    const c = check(report, "compare-and-swap");
    expect(c).toMatchObject({ status: "failed", unsafe: true });
    expect(c.evidence.join("\n")).toMatch(/missing key created it/);
  });

  it("reports a listing that lags behind writes as unsafe", async () => {
    const report = await runDoctor(new Queue({ storage: new LaggingList("broken:list") }));
    expect(report.verdict).toBe("unsafe");
    const c = check(report, "list-after-write");
    expect(c).toMatchObject({ status: "failed", unsafe: true });
    expect(c.evidence.join("\n")).toMatch(/LIST prefix=\S+ -> absent/);
    expect(c.evidence.join("\n")).toMatch(/missing from the listing/);
  });

  it("reports a won write answered with 412", async () => {
    const report = await runDoctor(new Queue({ storage: new ReportsWonWritesAsLost("b") }));
    const c = check(report, "create-race");
    expect(c).toMatchObject({ status: "failed", unsafe: true });
    expect(c.evidence.join("\n")).toMatch(/won write was reported as 412/);
  });

  it("caches an unsafe verdict: requireSafeBackend refuses without probing again", async () => {
    const storage = new IgnoresIfMatch("broken:im");
    const queue = new Queue({ storage });
    await expect(requireSafeBackend(queue)).rejects.toThrow(
      /not safe for oq .*Compare-and-swap.*oq doctor/,
    );
    const cached = await readVerdict(queue);
    expect(cached?.verdict).toBe("unsafe");
    expect(cached?.failed.map((f) => f.id)).toContain("compare-and-swap");
    let puts = 0;
    const put = storage.put.bind(storage);
    storage.put = (k, b, o) => {
      puts++;
      return put(k, b, o);
    };
    await expect(requireSafeBackend(queue)).rejects.toThrow(UnsafeBackendError);
    expect(puts).toBe(0);
  });
});

describe("requireSafeBackend", () => {
  it("probes when there is no verdict, when it is stale, and when forced", async () => {
    let now = Date.parse("2026-06-01T00:00:00Z");
    const clock = () => now;
    const storage = new Wrapped("s3://clocked", new MemoryStorage({ now: clock }));
    const queue = new Queue({ storage, now: clock });
    const first = await requireSafeBackend(queue);
    expect(first).toMatchObject({ verdict: "safe", cached: false });
    expect(first.report?.verdict).toBe("safe");
    now += 60_000;
    expect(await requireSafeBackend(queue)).toMatchObject({ cached: true });
    expect(await requireSafeBackend(queue, { force: true })).toMatchObject({ cached: false });
    now += 25 * 3600_000; // older than the default day
    expect(await requireSafeBackend(queue)).toMatchObject({ cached: false });
    now += 10_000;
    expect(await requireSafeBackend(queue, { maxAgeMs: 5_000 })).toMatchObject({
      cached: false,
    });
  });

  it("re-probes a backend cached as unsafe once it is fixed and doctor is run again", async () => {
    const broken = new IgnoresIfNoneMatch("flaky");
    const queue = new Queue({ storage: broken });
    await expect(requireSafeBackend(queue)).rejects.toThrow(UnsafeBackendError);
    // "Fixing" the backend: honour the header again.
    broken.put = (k, b, o) => broken.inner.put(k, b, o);
    const report = await runDoctor(queue);
    expect(report.verdict).toBe("safe");
    expect(await requireSafeBackend(queue)).toMatchObject({ verdict: "safe", cached: true });
  });

  it("throws the underlying typed error when the storage cannot be reached, and caches nothing", async () => {
    class Down extends Wrapped {
      override async list(): Promise<ListResult> {
        throw new UnavailableError("connect ECONNREFUSED 127.0.0.1:9");
      }
    }
    const storage = new Down("s3://down");
    const queue = new Queue({ storage });
    const report = await runDoctor(queue);
    expect(report.verdict).toBe("error");
    const access = check(report, "access");
    expect(access.status).toBe("failed");
    expect(access.unsafe).toBe(false);
    expect(access.fix).toMatch(/OQ_ENDPOINT/);
    expect(check(report, "create-if-absent").status).toBe("skipped");
    await expect(requireSafeBackend(queue)).rejects.toThrow(UnavailableError);
    expect(await storage.inner.list({ prefix: "_doctor/" })).toMatchObject({ objects: [] });
  });

  it("a store below write quorum (every write 503 SlowDownWrite) is an error, never cached as unsafe (issue 16)", async () => {
    // MinIO with 2 of 4 drives lost: unconditional writes fail after the driver's retries, and
    // a conditional write's 503 reaches oq as an ambiguous write that did not land.
    class BelowWriteQuorum extends Wrapped {
      override async put(
        key: string,
        _body: Uint8Array | string,
        options: PutOptions = {},
      ): Promise<PutResult> {
        const details = { status: 503, s3Code: "SlowDownWrite", key };
        if (options.ifMatch !== undefined || options.ifNoneMatch !== undefined)
          throw new AmbiguousWriteError(`PUT ${key}: 503 SlowDownWrite`, details);
        throw new StorageError(`PUT ${key}: server error (503 SlowDownWrite)`, details);
      }
    }
    const storage = new BelowWriteQuorum("s3://quorum-lost");
    const queue = new Queue({ storage });
    const report = await runDoctor(queue);
    expect(report.checks.filter((c) => c.unsafe).map((c) => c.id)).toEqual([]);
    expect(report.verdict).toBe("error");
    expect(check(report, "create-race").evidence.join("\n")).not.toMatch(/refused with 412/);
    await expect(requireSafeBackend(queue)).rejects.toThrow(AmbiguousWriteError);
    expect(await readVerdict(queue)).toBeUndefined();
  });

  it("says what to do about refused credentials", async () => {
    class Denied extends Wrapped {
      override async list(): Promise<ListResult> {
        throw new AccessDeniedError("LIST: 403 InvalidAccessKeyId", {
          status: 403,
          s3Code: "InvalidAccessKeyId",
        });
      }
    }
    const report = await runDoctor(new Queue({ storage: new Denied("s3://x") }));
    const access = check(report, "access");
    expect(access.evidence.join("\n")).toMatch(/-> 403 InvalidAccessKeyId/);
    expect(access.fix).toMatch(/AWS_ACCESS_KEY_ID/);
    await expect(requireSafeBackend(new Queue({ storage: new Denied("s3://x") }))).rejects.toThrow(
      AccessDeniedError,
    );
  });

  it("warns, without failing, when versioning is off", async () => {
    const report = await runDoctor(
      new Queue({ storage: new MemoryStorage({ versioning: "Disabled" }) }),
    );
    expect(report.verdict).toBe("safe");
    const v = check(report, "versioning");
    expect(v.status).toBe("warn");
    expect(v.fix).toMatch(/put-bucket-versioning/);
  });
});

// ---- the verdict proves one path ----------------------------------------------------------------

/** Another way to the same bucket: its own endpoint, and maybe a gateway that drops If-Match. */
class Via extends Wrapped {
  readonly location: StorageLocation;
  readonly #dropsIfMatch: boolean;
  constructor(inner: MemoryStorage, endpoint: string, options: { dropsIfMatch?: boolean } = {}) {
    super(`s3://jobs via ${endpoint}`, inner);
    this.location = { driver: "s3", endpoint, bucket: "jobs", region: "us-east-1" };
    this.#dropsIfMatch = options.dropsIfMatch ?? false;
  }
  override put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
    if (!this.#dropsIfMatch) return this.inner.put(key, body, options);
    const { ifMatch: _dropped, ...rest } = options;
    return this.inner.put(key, body, rest);
  }
}

describe("the cached verdict is keyed by the path it proved", () => {
  it("a client on another path does not trust a verdict proven over a different one (defect 10)", async () => {
    const bucket = new MemoryStorage();
    const direct = new Queue({ storage: new Via(bucket, "https://s3.example/jobs"), prefix: "q/" });
    expect(await requireSafeBackend(direct)).toMatchObject({ verdict: "safe", cached: false });
    // Same bucket and prefix, through a gateway that drops conditional headers.
    const viaGateway = new Via(bucket, "https://gateway.example/jobs", { dropsIfMatch: true });
    const gateway = new Queue({ storage: viaGateway, prefix: "q/" });
    expect(await readVerdict(gateway)).toBeUndefined();
    await expect(requireSafeBackend(gateway)).rejects.toThrow(UnsafeBackendError);
    // Each path keeps its own verdict: neither overwrites the other.
    expect(verdictKey(gateway)).not.toBe(verdictKey(direct));
    expect(await requireSafeBackend(direct)).toMatchObject({ verdict: "safe", cached: true });
    expect(await readVerdict(gateway)).toMatchObject({
      verdict: "unsafe",
      path: { endpoint: "https://gateway.example/jobs", prefix: "q/" },
    });
    // Another region or driver to the same endpoint is another path too.
    const otherRegion = new Via(bucket, "https://s3.example/jobs");
    otherRegion.location.region = "eu-west-1";
    expect(await readVerdict(new Queue({ storage: otherRegion, prefix: "q/" }))).toBeUndefined();
    const otherDriver = new Via(bucket, "https://s3.example/jobs");
    otherDriver.location.driver = "r2-binding";
    expect(await readVerdict(new Queue({ storage: otherDriver, prefix: "q/" }))).toBeUndefined();
  });

  it("an unreadable verdict is no verdict: the next probe replaces it with a conditional write", async () => {
    const bucket = new MemoryStorage();
    const storage = new Via(bucket, "https://s3.example/jobs");
    const queue = new Queue({ storage, prefix: "q/" });
    await bucket.put(verdictKey(queue), new TextEncoder().encode("{not json"));
    expect(await readVerdict(queue)).toBeUndefined();
    const puts: (PutOptions | undefined)[] = [];
    const put = storage.put.bind(storage);
    storage.put = (key: string, body: Uint8Array | string, options?: PutOptions) => {
      if (key === verdictKey(queue)) puts.push(options);
      return put(key, body, options);
    };
    expect(await requireSafeBackend(queue)).toMatchObject({ verdict: "safe", cached: false });
    expect(await readVerdict(queue)).toMatchObject({ verdict: "safe" });
    expect(puts).toHaveLength(1);
    expect(puts[0]?.ifMatch).toBeDefined();
  });

  it("memory and file storages need no probe: oq evaluates their conditions itself", async () => {
    const storage = new MemoryStorage();
    const result = await requireSafeBackend(new Queue({ storage }));
    expect(result).toMatchObject({ verdict: "safe", local: true, cached: false });
    expect((await storage.list({ prefix: "_doctor/" })).objects).toEqual([]);
  });
});

describe.runIf(s3Config !== undefined)("the verdict's path on MinIO", () => {
  it("two endpoints to one bucket keep separate verdicts; the second path probes (defect 10)", async () => {
    const prefix = unique();
    const a = testS3Storage();
    // The same server under another host name: another path as far as a verdict can tell.
    const other = new URL(s3Config!.endpoint);
    other.hostname = other.hostname === "localhost" ? "127.0.0.1" : "localhost";
    const b = countRequests(
      new S3Storage({
        endpoint: other.origin,
        bucket: s3Config!.bucket,
        region: s3Config!.region,
        accessKeyId: s3Config!.accessKeyId,
        secretAccessKey: s3Config!.secretAccessKey,
      }),
    );
    cleanups.push(() => wipe(a, prefix));
    const viaA = new Queue({ storage: a, prefix });
    const viaB = new Queue({ storage: b, prefix });
    expect(await requireSafeBackend(viaA)).toMatchObject({ verdict: "safe", cached: false });
    expect(await readVerdict(viaB)).toBeUndefined();
    b.reset();
    expect(await requireSafeBackend(viaB)).toMatchObject({ verdict: "safe", cached: false });
    expect(b.counts.PUT).toBeGreaterThan(10); // B ran its own probe
    expect(await requireSafeBackend(viaA)).toMatchObject({ cached: true });
    expect(await requireSafeBackend(viaB)).toMatchObject({ cached: true });
    expect(await readVerdict(viaB)).toMatchObject({ path: { endpoint: b.location?.endpoint } });
    // Another prefix of the same bucket has no verdict yet.
    expect(await readVerdict(new Queue({ storage: a, prefix: `${prefix}other/` }))).toBeUndefined();
  });
});

// ---- advice fitted to the provider ---------------------------------------------------------------

describe("doctor's advice per provider", () => {
  /** Refuses If-Match with the current ETag, answering 412 with an RGW transaction id. */
  class RgwQuotedEtagBug extends Wrapped {
    override async put(key: string, body: Uint8Array | string, options: PutOptions = {}) {
      if (options.ifMatch !== undefined) {
        const { PreconditionFailedError } = await import("../src/errors.ts");
        throw new PreconditionFailedError(`PUT ${key}: 412 PreconditionFailed`, {
          status: 412,
          requestId: "tx00000a1b2c3d4e5f6a7b8-0065f1a2b3-1e0d-default",
        });
      }
      return this.inner.put(key, body, options);
    }
  }

  it("does not recommend the backend it just found unsafe: a Ceph RGW user is not told to use Ceph RGW (defect 15)", async () => {
    const report = await runDoctor(new Queue({ storage: new RgwQuotedEtagBug("s3://rgw") }));
    expect(report.verdict).toBe("unsafe");
    expect(report.provider).toBe("ceph-rgw");
    const cas = check(report, "compare-and-swap");
    expect(cas.status).toBe("failed");
    expect(cas.alternatives).toEqual(["aws-s3", "cloudflare-r2", "minio", "tigris"]);
    for (const alt of cas.alternatives ?? []) expect(cas.fix).toContain(PROVIDER_NAMES[alt]);
  });

  it("never lists the probed provider among the alternatives, whichever it is (defect 15)", async () => {
    const providers: BackendProvider[] = [
      "aws-s3",
      "cloudflare-r2",
      "minio",
      "ceph-rgw",
      "tigris",
      "garage",
      "gcs",
      "unknown",
    ];
    for (const provider of providers) {
      const queue = new Queue({ storage: new LaggingList(`broken:${provider}`) });
      const report = await runDoctor(queue, { provider, raceWriters: 2, raceRounds: 1 });
      expect(report.provider).toBe(provider);
      const failed = report.checks.filter((c) => c.status === "failed" && c.unsafe);
      expect(failed.length).toBeGreaterThan(0);
      for (const c of failed) {
        expect(c.alternatives, `${provider}: ${c.id}`).not.toContain(provider);
        expect(c.alternatives?.length).toBeGreaterThan(0);
      }
    }
  });

  it("recognises providers from the endpoint and from request ids", () => {
    const at = (endpoint: string, driver = "s3") => ({ driver, endpoint, bucket: "b" });
    expect(detectProvider(at("https://b.s3.eu-west-1.amazonaws.com/"))).toBe("aws-s3");
    expect(detectProvider(at("https://acc.r2.cloudflarestorage.com/b"))).toBe("cloudflare-r2");
    expect(detectProvider(at("r2:binding", "r2-binding"))).toBe("cloudflare-r2");
    expect(detectProvider(at("https://fly.storage.tigris.dev/b"))).toBe("tigris");
    expect(detectProvider(at("https://storage.googleapis.com/b"))).toBe("gcs");
    expect(detectProvider(at("http://10.0.0.5:7480/b"))).toBe("unknown");
    expect(
      detectProvider(at("http://10.0.0.5:7480/b"), [
        "tx0000012ab34cd56ef7890-0065f1a2b3-1e0d-default",
      ]),
    ).toBe("ceph-rgw");
    expect(detectProvider(undefined)).toBe("unknown");
  });
});
