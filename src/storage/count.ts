/**
 * Request accounting: a wrapper that counts every storage call by kind, for tests and benchmarks.
 *
 * @module
 */
import type { RequestKind, Storage } from "./storage.ts";

/** Request counts by kind, as kept by {@link countRequests}. */
export type RequestCounts = Record<RequestKind, number>;

/** A storage whose calls are counted. */
export interface CountedStorage extends Storage {
  /** Counts so far, by kind. */
  readonly counts: Readonly<RequestCounts>;
  /** Total of all kinds. */
  total(): number;
  /** Set every count back to zero. */
  reset(): void;
}

/**
 * Wrap a storage so every call is counted by request kind. `versioning()` counts as a GET
 * (`GET ?versioning`), `list` and `listVersions` as LIST, `deleteMany` as POST (billed like a PUT). Failed calls count too: they are billed.
 */
export function countRequests(inner: Storage): CountedStorage {
  const counts: RequestCounts = { GET: 0, HEAD: 0, PUT: 0, POST: 0, LIST: 0, DELETE: 0 };
  return {
    get name() {
      return inner.name;
    },
    get location() {
      return inner.location;
    },
    counts,
    total: () => Object.values(counts).reduce((a, b) => a + b, 0),
    reset() {
      for (const k of Object.keys(counts) as RequestKind[]) counts[k] = 0;
    },
    get(key, options) {
      counts.GET++;
      return inner.get(key, options);
    },
    head(key) {
      counts.HEAD++;
      return inner.head(key);
    },
    put(key, body, options) {
      counts.PUT++;
      return inner.put(key, body, options);
    },
    delete(key) {
      counts.DELETE++;
      return inner.delete(key);
    },
    ...countedOptionalDeletes(inner, counts),
    list(options) {
      counts.LIST++;
      return inner.list(options);
    },
    listVersions(options) {
      counts.LIST++;
      return inner.listVersions(options);
    },
    versioning() {
      counts.GET++;
      return inner.versioning();
    },
    serverTime: () => inner.serverTime(),
  };
}

/** The optional delete calls of `inner`, counted, present only where `inner` has them. */
function countedOptionalDeletes(
  inner: Storage,
  counts: RequestCounts,
): Pick<Storage, "deleteVersion" | "deleteMany"> {
  return {
    ...(inner.deleteVersion === undefined
      ? {}
      : {
          deleteVersion(key: string, versionId: string) {
            counts.DELETE++;
            return inner.deleteVersion!(key, versionId);
          },
        }),
    ...(inner.deleteMany === undefined
      ? {}
      : {
          deleteMany(keys: readonly string[]) {
            counts.POST++;
            return inner.deleteMany!(keys);
          },
        }),
  };
}
