/**
 * Request accounting: a wrapper that reports every storage call by kind. {@link countRequests}
 * keeps the counts (tests, benchmarks, `oq demo`); the metrics recorder (`../metrics/`) feeds
 * them to its `oq.storage.requests` counter.
 *
 * @module
 */
import type { RequestKind, Storage, VersionTarget } from "./storage.ts";

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
 * (`GET ?versioning`), `list` and `listVersions` as LIST, `deleteMany` and `deleteVersions` as POST
 * (billed like a PUT). Failed calls count too: they are billed.
 */
export function countRequests(inner: Storage): CountedStorage {
  const counts: RequestCounts = { GET: 0, HEAD: 0, PUT: 0, POST: 0, LIST: 0, DELETE: 0 };
  // Object.assign keeps the wrapper's `name` and `location` getters live.
  return Object.assign(
    observeRequests(inner, (kind) => counts[kind]++),
    {
      counts,
      total: () => Object.values(counts).reduce((a, b) => a + b, 0),
      reset() {
        for (const k of Object.keys(counts) as RequestKind[]) counts[k] = 0;
      },
    },
  );
}

/**
 * Wrap a storage so that `onRequest` hears of every call, by request kind, as it is made (the
 * kinds as in {@link countRequests}). `onRequest` must not throw.
 */
export function observeRequests(inner: Storage, onRequest: (kind: RequestKind) => void): Storage {
  return {
    get name() {
      return inner.name;
    },
    get location() {
      return inner.location;
    },
    get(key, options) {
      onRequest("GET");
      return inner.get(key, options);
    },
    head(key) {
      onRequest("HEAD");
      return inner.head(key);
    },
    put(key, body, options) {
      onRequest("PUT");
      return inner.put(key, body, options);
    },
    delete(key) {
      onRequest("DELETE");
      return inner.delete(key);
    },
    ...observedOptionalCalls(inner, onRequest),
    list(options) {
      onRequest("LIST");
      return inner.list(options);
    },
    listVersions(options) {
      onRequest("LIST");
      return inner.listVersions(options);
    },
    versioning() {
      onRequest("GET");
      return inner.versioning();
    },
    serverTime: () => inner.serverTime(),
  };
}

/**
 * The optional calls of `inner`, observed, present only where `inner` has them (a wrapper must
 * not take a capability away: `oq lifecycle` on a counted S3 storage still works).
 */
function observedOptionalCalls(
  inner: Storage,
  onRequest: (kind: RequestKind) => void,
): Pick<
  Storage,
  "deleteVersion" | "deleteMany" | "deleteVersions" | "getLifecycle" | "putLifecycle"
> {
  return {
    ...(inner.deleteVersion === undefined
      ? {}
      : {
          deleteVersion(key: string, versionId: string) {
            onRequest("DELETE");
            return inner.deleteVersion!(key, versionId);
          },
        }),
    ...(inner.deleteMany === undefined
      ? {}
      : {
          deleteMany(keys: readonly string[]) {
            onRequest("POST");
            return inner.deleteMany!(keys);
          },
        }),
    ...(inner.deleteVersions === undefined
      ? {}
      : {
          deleteVersions(targets: readonly VersionTarget[]) {
            onRequest("POST");
            return inner.deleteVersions!(targets);
          },
        }),
    ...(inner.getLifecycle === undefined
      ? {}
      : {
          getLifecycle() {
            onRequest("GET");
            return inner.getLifecycle!();
          },
        }),
    ...(inner.putLifecycle === undefined
      ? {}
      : {
          putLifecycle(xml: string) {
            onRequest("PUT");
            return inner.putLifecycle!(xml);
          },
        }),
  };
}
