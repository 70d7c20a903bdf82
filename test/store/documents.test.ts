/**
 * The document store: create-once and If-Match races with exactly one winner, ambiguous writes
 * settled by reading back (landed, not landed, landed and overwritten), the read-back's retries,
 * and the update loop's round limit — on memory, file and MinIO (when OQ_TEST_S3_* is set).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AccessDeniedError,
  AmbiguousWriteError,
  ConflictError,
  MalformedObjectError,
  NotFoundError,
  PreconditionFailedError,
  UnavailableError,
  ValidationError,
} from "../../src/errors.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";
import {
  type GetResult,
  type PutOptions,
  type Storage,
  sameEtag,
} from "../../src/storage/storage.ts";
import {
  DocumentStore,
  MAX_CAS_ROUNDS,
  type VersionedDocument,
  type WriteResult,
} from "../../src/store/documents.ts";
import { type TargetInstance, targets } from "../helpers/targets.ts";
import { ignoringGetOptions } from "../support/careless-storage.ts";
import { ERROR_FAULT_KINDS, type ErrorFaultKind, FaultyStorage } from "../support/faulty.ts";

/** A small document: every version unique through `writer` and `version`. */
interface Doc {
  writer: string;
  version: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function docStore(storage: Storage): DocumentStore<Doc> {
  return new DocumentStore<Doc>(storage, {
    parse(body, key) {
      const value = JSON.parse(decoder.decode(body)) as Doc;
      if (typeof value.writer !== "string") throw new ValidationError(`${key} is not a Doc`);
      return value;
    },
    encode: (value) => encoder.encode(`${JSON.stringify(value)}\n`),
    // Read-back retries wait for nothing in tests.
    readBack: { attempts: 6, baseDelayMs: 200, maxDelayMs: 3200, sleep: async () => {} },
  });
}

/** A storage whose conditional PUTs always fail with exactly `kind`; everything else passes. */
function alwaysOnConditionalPut(inner: Storage, kind: ErrorFaultKind): FaultyStorage {
  const mix = { [kind]: 1 } as Partial<Record<ErrorFaultKind, number>>;
  // Every kind the injector knows gets a weight: one left out would weigh 1 by default.
  return new FaultyStorage(inner, {
    faultRate: 1,
    mix: Object.fromEntries(ERROR_FAULT_KINDS.map((k) => [k, mix[k] ?? 0])),
    timeoutMs: 0,
    filter: (call) => call.op === "put" && call.conditional,
    sleep: async () => {},
  });
}

/** Wraps a storage: a test decides what each `put` and `get` does around the real call. */
class Hooked implements Storage {
  onPut?: (run: () => Promise<{ etag: string; versionId: string | null }>) => Promise<{
    etag: string;
    versionId: string | null;
  }>;
  onGet?: (run: () => Promise<GetResult>) => Promise<GetResult>;
  readonly inner: Storage;
  constructor(inner: Storage) {
    this.inner = inner;
  }
  get name() {
    return `hooked(${this.inner.name})`;
  }
  get(key: string) {
    const run = () => this.inner.get(key);
    return this.onGet ? this.onGet(run) : run();
  }
  head(key: string) {
    return this.inner.head(key);
  }
  put(key: string, body: Uint8Array | string, options?: PutOptions) {
    const run = () => this.inner.put(key, body, options);
    return this.onPut ? this.onPut(run) : run();
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list(options?: Parameters<Storage["list"]>[0]) {
    return this.inner.list(options);
  }
  listVersions(options: Parameters<Storage["listVersions"]>[0]) {
    return this.inner.listVersions(options);
  }
  versioning() {
    return this.inner.versioning();
  }
  serverTime() {
    return this.inner.serverTime();
  }
}

const won = <T>(r: WriteResult<T>): VersionedDocument<T> => {
  if (!r.won) throw new Error(`expected the write to land, it lost: ${r.error.message}`);
  return { value: r.value, etag: r.etag };
};

for (const target of targets) {
  describe(`DocumentStore on ${target.name}`, () => {
    let env: TargetInstance;
    let key: string;
    beforeEach(async () => {
      env = await target.create();
      key = `${env.prefix}docs/a.json`;
    });
    afterEach(async () => {
      await env.cleanup();
    });

    it("reads undefined for a missing key, and a written document with its ETag", async () => {
      const store = docStore(env.storage);
      expect(await store.read(key)).toBeUndefined();
      const written = won(await store.write(key, null, { writer: "a", version: 1 }));
      const read = await store.read(key);
      expect(read?.value).toEqual({ writer: "a", version: 1 });
      expect(sameEtag(read?.etag, written.etag)).toBe(true);
    });

    it("create-once race: of 16 concurrent creators exactly one wins", async () => {
      const store = docStore(env.storage);
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          store.write(key, null, { writer: `w${i}`, version: 1 }),
        ),
      );
      const winners = results.filter((r) => r.won);
      expect(winners).toHaveLength(1);
      for (const r of results) {
        if (!r.won)
          expect(r.error).toSatisfy(
            (e) => e instanceof PreconditionFailedError || e instanceof ConflictError,
          );
      }
      const stored = await store.read(key);
      expect(stored?.value).toEqual(winners[0]!.value);
      expect(sameEtag(stored?.etag, winners[0]!.etag)).toBe(true);
    });

    it("If-Match race: of 16 writers on the same version exactly one wins", async () => {
      const store = docStore(env.storage);
      const first = won(await store.write(key, null, { writer: "creator", version: 1 }));
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          store.write(key, first.etag, { writer: `w${i}`, version: 2 }),
        ),
      );
      const winners = results.filter((r) => r.won);
      expect(winners).toHaveLength(1);
      expect((await store.read(key))?.value).toEqual(winners[0]!.value);
      // The old ETag stays stale for good.
      const late = await store.write(key, first.etag, { writer: "late", version: 3 });
      expect(late.won).toBe(false);
    });

    it("If-Match on a deleted key loses (404 on AWS, 412 elsewhere) instead of throwing", async () => {
      const store = docStore(env.storage);
      const first = won(await store.write(key, null, { writer: "a", version: 1 }));
      await env.storage.delete(key);
      const result = await store.write(key, first.etag, { writer: "a", version: 2 });
      expect(result.won).toBe(false);
      expect(await store.read(key)).toBeUndefined();
    });

    it("an ambiguous write that landed is recognised as ours", async () => {
      const first = won(await docStore(env.storage).write(key, null, { writer: "a", version: 1 }));
      const faulty = alwaysOnConditionalPut(env.storage, "dropped-after-commit");
      const store = docStore(faulty);
      const changed = won(await store.write(key, first.etag, { writer: "a", version: 2 }));
      const created = won(await store.write(`${key}.new`, null, { writer: "b", version: 1 }));
      expect(faulty.faults["dropped-after-commit"]).toBe(2);
      const head = await env.storage.head(key);
      expect(sameEtag(changed.etag, head.etag)).toBe(true);
      expect((await store.read(key))?.value).toEqual({ writer: "a", version: 2 });
      expect((await store.read(`${key}.new`))?.etag).toSatisfy((e) =>
        sameEtag(e as string, created.etag),
      );
    });

    it("an ambiguous write that did not land loses, with what the read-back found", async () => {
      const first = won(await docStore(env.storage).write(key, null, { writer: "a", version: 1 }));
      const faulty = alwaysOnConditionalPut(env.storage, "timeout");
      const store = docStore(faulty);
      const changed = await store.write(key, first.etag, { writer: "a", version: 2 });
      expect(changed.won).toBe(false);
      if (changed.won) return;
      expect(changed.error).toBeInstanceOf(AmbiguousWriteError);
      expect(changed.readBack?.value).toEqual({ writer: "a", version: 1 });
      const created = await store.write(`${key}.new`, null, { writer: "b", version: 1 });
      expect(created).toMatchObject({ won: false, readBack: null });
      expect(await store.read(`${key}.new`)).toBeUndefined();
    });

    it("an ambiguous write that landed and was overwritten before the read-back loses", async () => {
      // The honest worst case: our write committed, its answer was lost, and another writer
      // built on it before we looked. It is no longer ours to report; the caller re-reads.
      const store0 = docStore(env.storage);
      won(await store0.write(key, null, { writer: "a", version: 1 }));
      const hooked = new Hooked(env.storage);
      const store = docStore(hooked);
      const current = (await store.read(key))!;
      hooked.onPut = async (run) => {
        hooked.onPut = undefined;
        const landed = await run();
        won(await store0.write(key, landed.etag, { writer: "b", version: 3 }));
        throw new AmbiguousWriteError("connection reset after commit");
      };
      const result = await store.write(key, current.etag, { writer: "a", version: 2 });
      expect(result).toMatchObject({
        won: false,
        readBack: { value: { writer: "b", version: 3 } },
      });
    });

    it("the read-back retries transient failures and gives up on others", async () => {
      const hooked = new Hooked(env.storage);
      const store = docStore(hooked);
      let failures = 2;
      hooked.onPut = async (run) => {
        await run();
        throw new AmbiguousWriteError("connection reset after commit");
      };
      hooked.onGet = async (run) => {
        if (failures-- > 0) throw new UnavailableError("connection refused");
        return run();
      };
      const created = await store.write(key, null, { writer: "a", version: 1 });
      expect(created.won).toBe(true);
      expect(failures).toBe(-1);
      hooked.onGet = async () => {
        throw new AccessDeniedError("403 AccessDenied");
      };
      await expect(
        store.write(key, created.won ? created.etag : "", { writer: "a", version: 2 }),
      ).rejects.toBeInstanceOf(AccessDeniedError);
    });

    it("update applies a change, skips a no-op, and answers undefined for a missing key", async () => {
      const store = docStore(env.storage);
      expect(await store.update(key, (c) => ({ ...c.value, version: 2 }))).toBeUndefined();
      won(await store.write(key, null, { writer: "a", version: 1 }));
      const next = await store.update(key, (c) => ({ ...c.value, version: c.value.version + 1 }));
      expect(next?.value).toEqual({ writer: "a", version: 2 });
      const same = await store.update(key, () => undefined);
      expect(same?.etag).toBe(next?.etag);
    });

    it("update re-reads after every lost race: 16 concurrent increments all land", async () => {
      const store = docStore(env.storage);
      won(await store.write(key, null, { writer: "start", version: 0 }));
      await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          store.update(key, (c) => ({ writer: `w${i}`, version: c.value.version + 1 })),
        ),
      );
      expect((await store.read(key))?.value.version).toBe(16);
    });

    it(`update gives up with ConflictError after ${MAX_CAS_ROUNDS} lost rounds`, async () => {
      const store = docStore(env.storage);
      won(await store.write(key, null, { writer: "a", version: 0 }));
      let rounds = 0;
      let other = 1000;
      const error = await store
        .update(
          key,
          async (c) => {
            rounds++;
            // Another writer changes the document between our read and our write, every time.
            other++;
            await env.storage.put(key, JSON.stringify({ writer: "other", version: other }));
            return { writer: "a", version: c.value.version + 1 };
          },
          { conflictMessage: "doc a kept changing" },
        )
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConflictError);
      expect((error as ConflictError).message).toBe("doc a kept changing");
      expect(rounds).toBe(MAX_CAS_ROUNDS);
      expect((await store.read(key))?.value.writer).toBe("other");
    });

    it("update starts from a known version and uses a custom round write", async () => {
      const store = docStore(env.storage);
      const known = won(await store.write(key, null, { writer: "a", version: 1 }));
      const seen: number[] = [];
      const result = await store.update(
        key,
        (c) => ({ ...c.value, version: c.value.version + 1 }),
        {
          known,
          write: async (current, next) => {
            seen.push(current.value.version);
            return store.write(key, current.etag, next);
          },
        },
      );
      expect(seen).toEqual([1]);
      expect(result?.value.version).toBe(2);
    });

    it("update takes an earlier round's write that landed after its read-back as its own", async () => {
      won(await docStore(env.storage).write(key, null, { writer: "start", version: 1 }));
      const hooked = new Hooked(env.storage);
      const store = docStore(hooked);
      // The first PUT fails on its way and reaches storage right after the next GET (its
      // read-back) has been answered: the read-back still shows version 1.
      let held: (() => Promise<unknown>) | undefined;
      hooked.onPut = async (run) => {
        hooked.onPut = undefined;
        held = run;
        throw new AmbiguousWriteError("connection reset while sending");
      };
      hooked.onGet = async (run) => {
        const got = await run();
        const landing = held;
        held = undefined;
        await landing?.();
        return got;
      };
      let round = 0;
      const landedLate: Doc[] = [];
      const result = await store.update(
        key,
        (c) => ({ writer: `round ${++round}`, version: c.value.version + 1 }),
        { landedLate: async (sent) => void landedLate.push(sent) },
      );
      // Round 2 lost to round 1's landed write (412); round 3 found it stored and stopped there,
      // where it used to write version 3 over it as if another writer had made version 2.
      expect(result?.value).toEqual({ writer: "round 1", version: 2 });
      expect(landedLate).toEqual([{ writer: "round 1", version: 2 }]);
      expect((await store.read(key))?.value).toEqual({ writer: "round 1", version: 2 });
      expect(round).toBe(2);
    });

    it("put creates a missing document and replaces a stored one, never by a blind overwrite", async () => {
      const puts: (PutOptions | undefined)[] = [];
      const recording = new Proxy(env.storage, {
        get(target, name) {
          if (name === "put")
            return (k: string, body: Uint8Array, o?: PutOptions) => {
              puts.push(o);
              return target.put(k, body, o);
            };
          const value = Reflect.get(target, name);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const store = docStore(recording);
      await store.put(key, { writer: "a", version: 1 });
      await store.put(key, { writer: "b", version: 7 });
      // An object the codec cannot read is replaced too (a cache rewritten by hand, say).
      await env.storage.put(`${key}.bad`, new TextEncoder().encode("{not json"));
      await store.put(`${key}.bad`, { writer: "c", version: 1 });
      expect((await store.read(key))?.value).toEqual({ writer: "b", version: 7 });
      expect((await store.read(`${key}.bad`))?.value).toEqual({ writer: "c", version: 1 });
      expect(puts).toHaveLength(3);
      for (const o of puts) expect(o?.ifMatch ?? o?.ifNoneMatch).toBeDefined();
    });
  });
}

describe("DocumentStore.write errors", () => {
  it("If-Match answered 404 (AWS: the key was deleted) loses instead of throwing", async () => {
    const hooked = new Hooked(new MemoryStorage());
    hooked.onPut = async () => {
      throw new NotFoundError("NoSuchKey", { status: 404 });
    };
    const result = await docStore(hooked).write("k", '"etag"', { writer: "a", version: 1 });
    expect(result.won).toBe(false);
    expect(result.won ? undefined : result.error).toBeInstanceOf(NotFoundError);
  });

  it("a create whose bucket is missing throws, rather than losing", async () => {
    const hooked = new Hooked(new MemoryStorage());
    hooked.onPut = async () => {
      throw new NotFoundError("NoSuchBucket", { status: 404 });
    };
    await expect(
      docStore(hooked).write("k", null, { writer: "a", version: 1 }),
    ).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("DocumentStore maxBytes", () => {
  const bounded = (storage: Storage, maxBytes: number) =>
    new DocumentStore<Doc>(storage, {
      parse: (body) => JSON.parse(decoder.decode(body)) as Doc,
      encode: (value) => encoder.encode(JSON.stringify(value)),
      maxBytes,
    });

  it("refuses an object over the bound as MalformedObjectError, reads one at it, and put replaces it", async () => {
    const storage = new MemoryStorage();
    const store = bounded(storage, 64);
    const at = JSON.stringify({ writer: "a", version: 1, pad: "" });
    const fits = JSON.stringify({ writer: "a", version: 1, pad: "p".repeat(64 - at.length) });
    await storage.put("k", fits);
    expect((await store.read("k"))?.value.writer).toBe("a");
    await storage.put("k", JSON.stringify({ writer: "b", version: 1, pad: "p".repeat(100) }));
    const error = await store.read("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedObjectError);
    expect(error).toMatchObject({ code: "MALFORMED", key: "k" });
    // A document replaced whole (a verdict) replaces an oversized object too, on its ETag.
    await store.put("k", { writer: "c", version: 2 });
    expect((await store.read("k"))?.value).toEqual({ writer: "c", version: 2 });
  });

  it("checks the body after the fact when the storage ignores maxBytes", async () => {
    const inner = new MemoryStorage();
    const careless = ignoringGetOptions(inner);
    await inner.put("k", JSON.stringify({ writer: "b", version: 1, pad: "p".repeat(100) }));
    const error = await bounded(careless, 64)
      .read("k")
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "MALFORMED", key: "k" });
  });
});
