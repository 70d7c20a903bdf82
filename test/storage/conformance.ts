/**
 * The storage conformance suite: the behaviour of S3 that the queue relies on, checked the same
 * way against every driver. A driver's test file calls {@link describeConformance} once.
 *
 * The suite writes only under one random prefix (`conf-<random>/`), gives every case its own
 * sub-prefix, and erases every version it wrote afterwards (with `deleteVersion` when the driver
 * has it). Cases are sized to take seconds against a real server.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccessDeniedError,
  ConflictError,
  MalformedObjectError,
  NotFoundError,
  type OqError,
  type OqErrorCode,
  type OqErrorDetails,
  PreconditionFailedError,
  ValidationError,
} from "../../src/errors.ts";
import {
  compareKeys,
  type ListOptions,
  type PutResult,
  type Storage,
  sameEtag,
  type VersionInfo,
} from "../../src/storage/storage.ts";

/** What {@link describeConformance} needs to know about a driver. */
export interface ConformanceTarget {
  /** Fresh storage for the suite; the suite only writes keys under unique prefixes it chooses (e.g. `conf-<random>/`) and deletes all their versions afterwards. */
  storage: () => Promise<Storage> | Storage;
  /** The versioning status this target is expected to report. */
  expectedVersioning: "Enabled" | "Suspended" | "Disabled";
  /** Optional: a storage with wrong credentials, to check 403 mapping (only S3 can provide one). */
  deniedStorage?: () => Storage;
  /** Optional: a storage pointing at a bucket that does not exist (404 mapping of the bucket). */
  missingBucketStorage?: () => Storage;
  /** Called after the suite. */
  cleanup?: () => Promise<void>;
  /**
   * True when a delimiter listing still rolls up a prefix whose keys all have a delete marker as
   * their current version: MinIO on a versioned bucket does; AWS S3 and Ceph RGW do not.
   */
  listsDeletedPrefixes?: boolean;
  /**
   * True when, with a delimiter other than `/`, a page that ends on a rolled-up prefix carries a
   * token whose next page returns that prefix again (forever): MinIO does; AWS S3 does not.
   */
  repeatsPrefixesOfOtherDelimiters?: boolean;
}

/** How many writers race in each round of the concurrency cases. */
const RACERS = 16;
/** How many rounds each concurrency case runs. */
const ROUNDS = 50;
/** Requests in flight at once when writing many keys. */
const PARALLEL = 16;

const text = new TextDecoder();
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * Register the conformance cases for one driver as a vitest `describe` block. Cases that need
 * something the target does not provide (a denied storage, a versioned bucket) are not registered
 * at all, rather than skipped.
 */
export function describeConformance(name: string, target: ConformanceTarget): void {
  describe(`storage conformance: ${name}`, () => {
    const run = `conf-${randomId()}/`;
    let storage: Storage | undefined;
    let cases = 0;
    const s = (): Storage => {
      if (storage === undefined) throw new Error("conformance: storage() did not run");
      return storage;
    };
    /** A prefix no other case uses, so cases are independent and can be erased together. */
    const area = (label: string): string => `${run}${label}-${cases++}/`;
    const versioned = target.expectedVersioning === "Enabled";

    beforeAll(async () => {
      storage = await target.storage();
    });

    afterAll(async () => {
      try {
        if (storage !== undefined) await erase(storage, run, target.expectedVersioning);
      } finally {
        await target.cleanup?.();
      }
    });

    it("reports the expected versioning status", async () => {
      expect(await s().versioning()).toBe(target.expectedVersioning);
    });

    it("get and head of a missing key throw NotFoundError", async () => {
      const key = `${area("missing")}nothing-here`;
      await expectError(s().get(key), NotFoundError, "NOT_FOUND");
      await expectError(s().head(key), NotFoundError, "NOT_FOUND");
    });

    it("put then get round-trips bytes, strings, empty bodies and content types", async () => {
      const p = area("roundtrip");
      const input = new Uint8Array([0, 1, 2, 254, 255, 10, 13]);
      const put = await s().put(`${p}bin`, input, { contentType: "application/x-test" });
      expect(typeof put.etag).toBe("string");
      expect(put.etag.length).toBeGreaterThan(0);
      if (versioned) expect(put.versionId).toEqual(expect.any(String));
      if (target.expectedVersioning === "Disabled") expect(put.versionId).toBeNull();
      // The driver must not keep (or hand out) the caller's buffer.
      input[0] = 99;
      const got = await s().get(`${p}bin`);
      expect(got.body).toBeInstanceOf(Uint8Array);
      expect([...got.body]).toEqual([0, 1, 2, 254, 255, 10, 13]);
      expect(got.contentType).toBe("application/x-test");
      expect(sameEtag(got.etag, put.etag)).toBe(true);
      expect(got.versionId).toBe(put.versionId);
      expect(got.lastModified).toBeInstanceOf(Date);
      expect(Number.isFinite(got.lastModified.getTime())).toBe(true);
      got.body[1] = 99;
      expect([...(await s().get(`${p}bin`)).body]).toEqual([0, 1, 2, 254, 255, 10, 13]);

      await s().put(`${p}text`, "héllo, wörld 日本 🎉\n");
      const t = await s().get(`${p}text`);
      expect(text.decode(t.body)).toBe("héllo, wörld 日本 🎉\n");
      expect(t.contentType).toBe("application/octet-stream");

      await s().put(`${p}empty`, new Uint8Array(0));
      expect((await s().get(`${p}empty`)).body.length).toBe(0);
      expect((await s().head(`${p}empty`)).size).toBe(0);

      // The queue's compare-and-swap needs a new ETag whenever the content changes.
      const again = await s().put(`${p}text`, "something else");
      expect(sameEtag(again.etag, put.etag)).toBe(false);
    });

    it("get with maxBytes reads an object under or at the bound and refuses one over it, naming the key", async () => {
      const p = area("max-bytes");
      const body = new Uint8Array(1000).map((_, i) => i % 251);
      const put = await s().put(`${p}k`, body);
      for (const maxBytes of [1001, 1000]) {
        const got = await s().get(`${p}k`, { maxBytes });
        expect([...got.body]).toEqual([...body]);
        expect(sameEtag(got.etag, put.etag)).toBe(true);
      }
      const over = await expectError(
        s().get(`${p}k`, { maxBytes: 999 }),
        MalformedObjectError,
        "MALFORMED",
      );
      expect(over.key).toBe(`${p}k`);
      // The message is for the operator: it names the size found and the bound.
      expect(over.message).toContain("1000 bytes");
      expect(over.message).toContain("999-byte bound");
      await s().put(`${p}empty`, new Uint8Array(0));
      expect((await s().get(`${p}empty`, { maxBytes: 0 })).body.length).toBe(0);
      await expectError(s().get(`${p}k`, { maxBytes: 0 }), MalformedObjectError, "MALFORMED");
      // The object is left as it was, and a missing key is still a 404, bound or not.
      expect((await s().get(`${p}k`)).body.length).toBe(1000);
      await expectError(s().get(`${p}gone`, { maxBytes: 10 }), NotFoundError, "NOT_FOUND");
      await expectError(s().get(`${p}k`, { maxBytes: -1 }), ValidationError, "VALIDATION");
      await expectError(s().get(`${p}k`, { maxBytes: 1.5 }), ValidationError, "VALIDATION");
      if (versioned) {
        const old = await expectError(
          s().get(`${p}k`, { versionId: put.versionId!, maxBytes: 10 }),
          MalformedObjectError,
          "MALFORMED",
        );
        expect(old.key).toBe(`${p}k`);
      }
    });

    it("get with maxBytes refuses a 4 MiB object with a small bound, and reads it with a bound above it", async () => {
      const key = `${area("max-bytes-big")}big`;
      const big = new Uint8Array(4 * 1024 * 1024).fill(120);
      await s().put(key, big);
      await expectError(s().get(key, { maxBytes: 64 * 1024 }), MalformedObjectError, "MALFORMED");
      expect((await s().get(key, { maxBytes: big.length })).body.length).toBe(big.length);
    });

    it("head returns the ETag, size, version and time of the current version", async () => {
      const key = `${area("head")}obj`;
      await s().put(key, "first");
      const put = await s().put(key, "second, longer");
      const head = await s().head(key);
      expect(sameEtag(head.etag, put.etag)).toBe(true);
      expect(head.size).toBe(bytes("second, longer").length);
      expect(head.versionId).toBe(put.versionId);
      expect(head.lastModified).toBeInstanceOf(Date);
      expect(Number.isFinite(head.lastModified.getTime())).toBe(true);
    });

    it("ifNoneMatch '*' creates once; a second create gets PreconditionFailedError", async () => {
      const key = `${area("create")}once`;
      const first = await s().put(key, "first", { ifNoneMatch: "*" });
      const error = await expectError(
        s().put(key, "second", { ifNoneMatch: "*" }),
        PreconditionFailedError,
        "PRECONDITION_FAILED",
      );
      expect(error.message.length).toBeGreaterThan(0);
      const got = await s().get(key);
      expect(text.decode(got.body)).toBe("first");
      expect(sameEtag(got.etag, first.etag)).toBe(true);
      // A deleted key is absent again: create-if-absent must succeed on it.
      await s().delete(key);
      await s().put(key, "third", { ifNoneMatch: "*" });
      expect(text.decode((await s().get(key)).body)).toBe("third");
    });

    it("ifMatch with the ETag as returned swaps; a stale ETag gets PreconditionFailedError", async () => {
      const key = `${area("cas")}obj`;
      const v1 = await s().put(key, "v1");
      // Passed back exactly as returned, quotes included.
      const v2 = await s().put(key, "v2", { ifMatch: v1.etag });
      expect(sameEtag(v2.etag, v1.etag)).toBe(false);
      const got = await s().get(key);
      expect(text.decode(got.body)).toBe("v2");
      const v3 = await s().put(key, "v3", { ifMatch: got.etag });
      await expectError(
        s().put(key, "stale", { ifMatch: v1.etag }),
        PreconditionFailedError,
        "PRECONDITION_FAILED",
      );
      await expectError(
        s().put(key, "stale", { ifMatch: v2.etag }),
        PreconditionFailedError,
        "PRECONDITION_FAILED",
      );
      const final = await s().get(key);
      expect(text.decode(final.body)).toBe("v3");
      expect(sameEtag(final.etag, v3.etag)).toBe(true);
    });

    it("ifMatch on a missing key gets NotFoundError (as AWS answers 404)", async () => {
      const key = `${area("cas-missing")}obj`;
      const other = await s().put(`${key}-other`, "x");
      await expectError(s().put(key, "v", { ifMatch: other.etag }), NotFoundError, "NOT_FOUND");
      await expectError(s().get(key), NotFoundError, "NOT_FOUND");
    });

    it(`${RACERS} concurrent ifMatch writers: exactly one wins each of ${ROUNDS} rounds`, async () => {
      const key = `${area("race-cas")}obj`;
      let etag = (await s().put(key, "start")).etag;
      for (let round = 0; round < ROUNDS; round++) {
        const bodies = Array.from({ length: RACERS }, (_, i) => `round ${round} writer ${i}`);
        const results = await Promise.allSettled(
          bodies.map((body) => s().put(key, body, { ifMatch: etag })),
        );
        const winner = checkOneWinner(results, round);
        etag = winner.value.etag;
        const got = await s().get(key);
        expect(text.decode(got.body), `round ${round}`).toBe(bodies[winner.index]);
        expect(sameEtag(got.etag, etag), `round ${round}`).toBe(true);
      }
    });

    it(`${RACERS} concurrent ifNoneMatch creators: exactly one wins each of ${ROUNDS} rounds`, async () => {
      const p = area("race-create");
      for (let round = 0; round < ROUNDS; round++) {
        const key = `${p}obj-${round}`;
        const bodies = Array.from({ length: RACERS }, (_, i) => `round ${round} creator ${i}`);
        const results = await Promise.allSettled(
          bodies.map((body) => s().put(key, body, { ifNoneMatch: "*" })),
        );
        const winner = checkOneWinner(results, round);
        const got = await s().get(key);
        expect(text.decode(got.body), `round ${round}`).toBe(bodies[winner.index]);
        expect(sameEtag(got.etag, winner.value.etag), `round ${round}`).toBe(true);
      }
    });

    it("keys with spaces, + % # ? & = and non-ASCII round-trip through put/get/head/list/delete", async () => {
      const p = area("keys");
      const names = [
        "with space",
        "plus+sign",
        "percent%20literal",
        "100%",
        "hash#fragment",
        "question?mark=1&and=2",
        "semi;colon:at@comma,dollar$",
        "tilde~star*quote'paren(bang)!",
        "café é",
        "日本/語のキー",
        "emoji 🎉🚀",
        "mixed Case/UPPER",
      ];
      const keys = names.map((n) => p + n);
      for (const key of keys) {
        const put = await s().put(key, `body of ${key}`);
        const got = await s().get(key);
        expect(text.decode(got.body), key).toBe(`body of ${key}`);
        expect(sameEtag((await s().head(key)).etag, put.etag), key).toBe(true);
      }
      const listed = await listAll(s(), p);
      expect(listed).toEqual([...keys].sort(compareKeys));
      for (const key of keys) {
        await s().delete(key);
        await expectError(s().get(key), NotFoundError, "NOT_FOUND");
      }
      expect(await listAll(s(), p)).toEqual([]);
    });

    it("lists keys in UTF-8 byte order, not UTF-16 order", async () => {
      const p = area("order");
      // "😀" (U+1F600) sorts after U+FFFD in UTF-8 but before it in UTF-16; "/" sorts between
      // "-" and "0", which a store that mirrors segments as directories can easily get wrong.
      const expected = ["Z", "_", "a-b", "a/x", "a/y/z", "a0", "b", "~", "é", "\uFFFD", "😀"].map(
        (k) => p + k,
      );
      await mapLimit([...expected].reverse(), PARALLEL, (key) => s().put(key, "x"));
      expect(await listAll(s(), p)).toEqual(expected);
      expect(await listAll(s(), p, 2)).toEqual(expected);
    });

    it("paginates listings past 1,000 keys with continuation tokens, each key exactly once", async () => {
      const p = area("many");
      const keys = Array.from({ length: 1050 }, (_, i) => `${p}k${String(i).padStart(4, "0")}`);
      await mapLimit(keys, PARALLEL, (key) => s().put(key, ""));

      const first = await s().list({ prefix: p });
      expect(first.objects.length).toBe(1000);
      expect(first.isTruncated).toBe(true);
      expect(first.nextContinuationToken).toEqual(expect.any(String));
      const second = await s().list({ prefix: p, continuationToken: first.nextContinuationToken! });
      expect(second.objects.length).toBe(50);
      expect(second.isTruncated).toBe(false);
      expect([...first.objects, ...second.objects].map((o) => o.key)).toEqual(keys);
      expect(first.objects[0]!.size).toBe(0);
      expect(first.objects[0]!.etag.length).toBeGreaterThan(0);
      expect(first.objects[0]!.lastModified).toBeInstanceOf(Date);

      let pages = 0;
      const seen: string[] = [];
      let token: string | undefined;
      do {
        const page = await s().list({ prefix: p, maxKeys: 100, continuationToken: token });
        pages++;
        expect(page.objects.length).toBeLessThanOrEqual(100);
        seen.push(...page.objects.map((o) => o.key));
        token = page.isTruncated ? page.nextContinuationToken : undefined;
        if (page.isTruncated) expect(token).toEqual(expect.any(String));
      } while (token !== undefined && pages < 50);
      expect(pages).toBe(11);
      expect(seen).toEqual(keys);
    });

    it("startAfter returns only keys after it, with or without a prefix", async () => {
      const p = area("start-after");
      const keys = ["a", "b", "b0", "c/1", "c/2", "d"].map((k) => p + k);
      await mapLimit(keys, PARALLEL, (key) => s().put(key, "x"));
      const listAfter = async (startAfter: string, prefix = p) =>
        (await s().list({ prefix, startAfter })).objects.map((o) => o.key);
      expect(await listAfter(`${p}b`)).toEqual(keys.slice(2));
      expect(await listAfter(`${p}bz`)).toEqual(keys.slice(3));
      expect(await listAfter(`${p}c/1`)).toEqual(keys.slice(4));
      expect(await listAfter(`${p}c/`)).toEqual(keys.slice(3));
      expect(await listAfter(`${p}d`)).toEqual([]);
      expect(await listAfter(p)).toEqual(keys);
      expect(await listAfter(run.slice(0, -1))).toEqual(keys);
      expect(await listAfter(`${p}c/1`, `${p}c/`)).toEqual([`${p}c/2`]);
      const page = await s().list({ prefix: p, startAfter: `${p}a`, maxKeys: 2 });
      expect(page.objects.map((o) => o.key)).toEqual(keys.slice(1, 3));
      expect(page.isTruncated).toBe(true);
      const rest = await s().list({
        prefix: p,
        startAfter: `${p}a`,
        continuationToken: page.nextContinuationToken!,
      });
      expect(rest.objects.map((o) => o.key)).toEqual(keys.slice(3));
    });

    it("prefix filtering matches whole and partial segments only", async () => {
      const p = area("prefix");
      // No key is also the parent "directory" of another: MinIO refuses that (ParentIsObject).
      const keys = ["p/a/deep", "p/ab", "p/b", "pa", "q/a"].map((k) => p + k);
      await mapLimit(keys, PARALLEL, (key) => s().put(key, "x"));
      const list = async (prefix: string) => listAll(s(), p + prefix);
      expect(await list("p/")).toEqual(keys.slice(0, 3));
      expect(await list("p")).toEqual(keys.slice(0, 4));
      expect(await list("p/a")).toEqual(keys.slice(0, 2));
      expect(await list("p/a/")).toEqual([`${p}p/a/deep`]);
      expect(await list("q")).toEqual([`${p}q/a`]);
      expect(await list("r")).toEqual([]);
      expect(await list("p/a/deep")).toEqual([`${p}p/a/deep`]);
      const none = await s().list({ prefix: `${p}nothing/` });
      expect(none).toMatchObject({ objects: [], isTruncated: false });
    });

    describe("delimiter listings (S3 CommonPrefixes)", () => {
      // Entries in S3's order: a, b/, b0, c/, d, e/ ("/" sorts before "0"). No key is also the
      // parent "directory" of another (MinIO refuses that).
      const keys = ["a", "b/1", "b/2", "b/3", "b0", "c/x/1", "c/y", "d", "e/1"];
      let p = "";
      /** Every page of a delimiter listing, keys shown relative to `base`, following tokens. */
      const pages = async (options: ListOptions, base = p): Promise<DelimitedPage[]> => {
        const seen: DelimitedPage[] = [];
        let token: string | undefined;
        for (;;) {
          const page = await s().list({ ...options, continuationToken: token });
          seen.push({
            objects: page.objects.map((o) => o.key.slice(base.length)),
            prefixes: (page.prefixes ?? expect.fail("a delimiter listing carries prefixes")).map(
              (x) => x.slice(base.length),
            ),
            isTruncated: page.isTruncated,
          });
          if (!page.isTruncated || seen.length === 20) return seen;
          token = page.nextContinuationToken ?? expect.fail("a truncated page carries a token");
        }
      };
      const page = (objects: string[], prefixes: string[], isTruncated = true) => ({
        objects,
        prefixes,
        isTruncated,
      });

      beforeAll(async () => {
        p = area("delimiter");
        await mapLimit(keys, PARALLEL, (key) => s().put(p + key, "x"));
      });

      it("rolls keys up into prefixes and still lists the objects at the same level", async () => {
        expect(await pages({ prefix: p, delimiter: "/" })).toEqual([
          page(["a", "b0", "d"], ["b/", "c/", "e/"], false),
        ]);
        // One level down, the next delimiter after the prefix is the one that counts.
        expect(await pages({ prefix: `${p}c/`, delimiter: "/" })).toEqual([
          page(["c/y"], ["c/x/"], false),
        ]);
        // A prefix that is not a whole segment rolls up from where it ends.
        expect(await pages({ prefix: `${p}b`, delimiter: "/" })).toEqual([
          page(["b0"], ["b/"], false),
        ]);
        // Without a delimiter nothing is rolled up, and no prefixes are reported.
        const flat = await s().list({ prefix: p });
        expect(flat.objects.map((o) => o.key)).toEqual(keys.map((k) => p + k));
        expect(flat.prefixes).toBeUndefined();
      });

      it("pages count prefixes like objects, give each prefix once and nothing under it", async () => {
        expect(await pages({ prefix: p, delimiter: "/", maxKeys: 1 })).toEqual([
          page(["a"], []),
          page([], ["b/"]),
          page(["b0"], []),
          page([], ["c/"]),
          page(["d"], []),
          page([], ["e/"], false),
        ]);
        expect(await pages({ prefix: p, delimiter: "/", maxKeys: 2 })).toEqual([
          page(["a"], ["b/"]),
          page(["b0"], ["c/"]),
          page(["d"], ["e/"], false),
        ]);
        expect(await pages({ prefix: p, delimiter: "/", maxKeys: 4 })).toEqual([
          page(["a", "b0"], ["b/", "c/"]),
          page(["d"], ["e/"], false),
        ]);
      });

      it("an empty result has an empty prefixes array", async () => {
        expect(await pages({ prefix: `${p}nothing/`, delimiter: "/" })).toEqual([
          page([], [], false),
        ]);
        expect(await pages({ prefix: `${p}c/x/`, delimiter: "/" })).toEqual([
          page(["c/x/1"], [], false),
        ]);
      });

      it("a prefix whose keys are all deleted is not listed, as on AWS (MinIO versioned: it is)", async () => {
        const q = area("delimiter-deleted");
        await mapLimit(["gone/1", "gone/2", "kept/1", "kept/2"], PARALLEL, (k) =>
          s().put(q + k, "x"),
        );
        await mapLimit(["gone/1", "gone/2", "kept/1"], PARALLEL, (k) => s().delete(q + k));
        const listed = await s().list({ prefix: q, delimiter: "/" });
        expect(listed.objects).toEqual([]);
        expect(listed.prefixes).toEqual(
          target.listsDeletedPrefixes ? [`${q}gone/`, `${q}kept/`] : [`${q}kept/`],
        );
      });

      it("any delimiter rolls up the same way, across / and within a segment", async () => {
        const q = area("delimiter-dash");
        const dash = ["k-1", "k-2/a", "k/a-b", "k/c", "m"];
        await mapLimit(dash, PARALLEL, (k) => s().put(q + k, "x"));
        const listed = (delimiter: string, maxKeys?: number) =>
          pages({ prefix: q, delimiter, maxKeys }, q);
        expect(await listed("-")).toEqual([page(["k/c", "m"], ["k-", "k/a-"], false)]);
        if (target.repeatsPrefixesOfOtherDelimiters) {
          // The quirk pinned, so a server upgrade that fixes it shows up here.
          const first = await s().list({ prefix: q, delimiter: "-", maxKeys: 1 });
          const again = await s().list({
            prefix: q,
            delimiter: "-",
            maxKeys: 1,
            continuationToken: first.nextContinuationToken!,
          });
          expect([first.prefixes, again.prefixes]).toEqual([[`${q}k-`], [`${q}k-`]]);
        } else {
          expect(await listed("-", 1)).toEqual([
            page([], ["k-"]),
            page([], ["k/a-"]),
            page(["k/c"], []),
            page(["m"], [], false),
          ]);
        }
        expect(await listed("/a")).toEqual([page(["k-1", "k/c", "m"], ["k-2/a", "k/a"], false)]);
      });

      it("startAfter lists the entries after it: a prefix it falls inside is done with", async () => {
        const listAfter = (startAfter: string, maxKeys?: number) =>
          pages({ prefix: p, delimiter: "/", startAfter: p + startAfter, maxKeys });
        expect(await listAfter("b")).toEqual([page(["b0", "d"], ["b/", "c/", "e/"], false)]);
        expect(await listAfter("b0")).toEqual([page(["d"], ["c/", "e/"], false)]);
        expect(await listAfter("b/2")).toEqual([page(["b0", "d"], ["c/", "e/"], false)]);
        expect(await listAfter("c/")).toEqual([page(["d"], ["e/"], false)]);
        expect(await listAfter("e/1")).toEqual([page([], [], false)]);
        expect(await listAfter("a", 1)).toEqual([
          page([], ["b/"]),
          page(["b0"], []),
          page([], ["c/"]),
          page(["d"], []),
          page([], ["e/"], false),
        ]);
      });
    });

    it("delete removes the key; get then fails, and deleting again succeeds", async () => {
      const p = area("delete");
      const key = `${p}obj`;
      await s().put(key, "x");
      await s().put(`${p}keep`, "y");
      await s().delete(key);
      await expectError(s().get(key), NotFoundError, "NOT_FOUND");
      await expectError(s().head(key), NotFoundError, "NOT_FOUND");
      expect(await listAll(s(), p)).toEqual([`${p}keep`]);
      await s().delete(key);
      await s().delete(`${p}never-existed`);
      expect(text.decode((await s().get(`${p}keep`)).body)).toBe("y");
    });

    if (versioned) {
      it("lists one key's versions newest first across pages, then its delete marker", async () => {
        const key = `${area("versions")}obj`;
        const puts: PutResult[] = [];
        for (let i = 0; i < 7; i++) puts.push(await s().put(key, `version ${i}`));
        const newestFirst = [...puts].reverse();

        const { versions, pages } = await listAllVersions(s(), key, 3);
        expect(pages).toBe(3);
        expect(versions.map((v) => v.versionId)).toEqual(newestFirst.map((v) => v.versionId));
        expect(versions.map((v) => v.isLatest)).toEqual([
          true,
          false,
          false,
          false,
          false,
          false,
          false,
        ]);
        expect(versions.every((v) => v.key === key && !v.isDeleteMarker)).toBe(true);
        versions.forEach((v, i) => {
          expect(sameEtag(v.etag, newestFirst[i]!.etag)).toBe(true);
          expect(v.size).toBe(bytes(`version ${6 - i}`).length);
          expect(v.lastModified).toBeInstanceOf(Date);
        });

        await s().delete(key);
        const after = await listAllVersions(s(), key, 3);
        expect(after.versions.length).toBe(8);
        const marker = after.versions[0]!;
        expect(marker).toMatchObject({ key, isLatest: true, isDeleteMarker: true });
        expect(after.versions.slice(1).map((v) => v.versionId)).toEqual(
          newestFirst.map((v) => v.versionId),
        );
        expect(after.versions.slice(1).some((v) => v.isLatest || v.isDeleteMarker)).toBe(false);
      });

      it("pages versions of several keys with keyMarker and versionIdMarker", async () => {
        const p = area("versions-multi");
        const expected: [string, string][] = [];
        for (const [name, count] of [
          ["k1", 3],
          ["k2", 3],
          ["k3", 1],
        ] as const) {
          const ids: string[] = [];
          for (let i = 0; i < count; i++) ids.push((await s().put(p + name, `${i}`)).versionId!);
          for (const id of ids.reverse()) expected.push([p + name, id]);
        }
        for (const size of [1, 2, 3, 1000]) {
          const { versions } = await listAllVersions(s(), p, size);
          expect(
            versions.map((v) => [v.key, v.versionId]),
            `maxKeys ${size}`,
          ).toEqual(expected);
          expect(versions.filter((v) => v.isLatest).map((v) => v.key)).toEqual(
            ["k1", "k2", "k3"].map((n) => p + n),
          );
        }
      });

      it("get with a versionId reads that version, even after a delete", async () => {
        const key = `${area("get-version")}obj`;
        const v1 = await s().put(key, "one");
        const v2 = await s().put(key, "two");
        const old = await s().get(key, { versionId: v1.versionId! });
        expect(text.decode(old.body)).toBe("one");
        expect(old.versionId).toBe(v1.versionId);
        expect(sameEtag(old.etag, v1.etag)).toBe(true);
        expect(text.decode((await s().get(key, { versionId: v2.versionId! })).body)).toBe("two");
        await s().delete(key);
        expect(text.decode((await s().get(key, { versionId: v1.versionId! })).body)).toBe("one");
        await expectError(s().get(key), NotFoundError, "NOT_FOUND");
      });
    } else {
      it("keeps a single 'null' version when versioning is not enabled", async () => {
        const key = `${area("versions-null")}obj`;
        for (let i = 0; i < 7; i++) await s().put(key, `version ${i}`);
        const { versions } = await listAllVersions(s(), key, 3);
        expect(versions).toHaveLength(1);
        expect(versions[0]).toMatchObject({
          key,
          versionId: "null",
          isLatest: true,
          isDeleteMarker: false,
        });
        expect(text.decode((await s().get(key)).body)).toBe("version 6");
        await s().delete(key);
        const after = await listAllVersions(s(), key, 3);
        if (target.expectedVersioning === "Disabled") {
          expect(after.versions).toEqual([]);
        } else {
          // Suspended: the delete marker replaces the null version.
          expect(after.versions).toHaveLength(1);
          expect(after.versions[0]).toMatchObject({ versionId: "null", isDeleteMarker: true });
        }
      });
    }

    it("reports the server clock after a response", async () => {
      await s().versioning();
      const t = s().serverTime();
      expect(t).toBeDefined();
      expect(Number.isFinite(t!.serverMs)).toBe(true);
      expect(Number.isFinite(t!.localMs)).toBe(true);
      // The response arrived after its request was sent, and the server says how coarse it is.
      expect(t!.sentMs).toBeLessThanOrEqual(t!.localMs);
      expect(t!.resolutionMs).toBeGreaterThan(0);
    });

    const denied = target.deniedStorage;
    if (denied !== undefined) {
      it("wrong credentials give AccessDeniedError", async () => {
        const d = denied();
        const key = `${area("denied")}obj`;
        await expectError(d.get(key), AccessDeniedError, "ACCESS_DENIED");
        await expectError(d.put(key, "x"), AccessDeniedError, "ACCESS_DENIED");
        await expectError(d.list({ prefix: run }), AccessDeniedError, "ACCESS_DENIED");
        await expectError(s().get(key), NotFoundError, "NOT_FOUND");
      });
    }

    const missing = target.missingBucketStorage;
    if (missing !== undefined) {
      it("a missing bucket gives NotFoundError", async () => {
        const m = missing();
        const key = `${area("no-bucket")}obj`;
        await expectError(m.get(key), NotFoundError, "NOT_FOUND");
        await expectError(m.put(key, "x"), NotFoundError, "NOT_FOUND");
        await expectError(m.list({ prefix: run }), NotFoundError, "NOT_FOUND");
      });
    }
  });
}

/** Assert that exactly one racer won and every other one was refused without writing. */
function checkOneWinner(
  results: PromiseSettledResult<PutResult>[],
  round: number,
): { index: number; value: PutResult } {
  const winners = results.flatMap((r, index) =>
    r.status === "fulfilled" ? [{ index, value: r.value }] : [],
  );
  expect(winners.length, `winners in round ${round}`).toBe(1);
  for (const r of results) {
    if (r.status === "rejected") {
      const refused =
        r.reason instanceof PreconditionFailedError || r.reason instanceof ConflictError;
      expect(refused, `round ${round}: ${String(r.reason)}`).toBe(true);
    }
  }
  return winners[0]!;
}

/** Await a rejection and check it is the typed error with the right code; returns it. */
async function expectError<T extends OqError>(
  promise: Promise<unknown>,
  type: new (message: string, details?: OqErrorDetails) => T,
  code: OqErrorCode,
): Promise<T> {
  let error: unknown;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  if (error === undefined) expect.fail(`expected ${type.name} (${code}), but the call succeeded`);
  expect(error, String(error)).toBeInstanceOf(type);
  expect((error as T).code).toBe(code);
  return error as T;
}

/** One page of a delimiter listing, as the delimiter cases compare it. */
interface DelimitedPage {
  objects: string[];
  prefixes: string[];
  isTruncated: boolean;
}

/** Every key under `prefix`, following continuation tokens. */
async function listAll(storage: Storage, prefix: string, maxKeys?: number): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await storage.list({ prefix, continuationToken: token, maxKeys });
    keys.push(...page.objects.map((o) => o.key));
    if (!page.isTruncated) return keys;
    token = page.nextContinuationToken;
    if (token === undefined) expect.fail("a truncated page must carry nextContinuationToken");
  }
  return expect.fail("listing never ended");
}

/** Every version under `prefix`, following key and version markers. */
async function listAllVersions(
  storage: Storage,
  prefix: string,
  maxKeys?: number,
): Promise<{ versions: VersionInfo[]; pages: number }> {
  const versions: VersionInfo[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (let pages = 1; pages < 100_000; pages++) {
    const page = await storage.listVersions({ prefix, keyMarker, versionIdMarker, maxKeys });
    if (maxKeys !== undefined) expect(page.versions.length).toBeLessThanOrEqual(maxKeys);
    versions.push(...page.versions);
    if (!page.isTruncated) return { versions, pages };
    keyMarker = page.nextKeyMarker;
    versionIdMarker = page.nextVersionIdMarker;
    if (keyMarker === undefined) expect.fail("a truncated version page must carry nextKeyMarker");
  }
  return expect.fail("version listing never ended");
}

/** Remove every version under `prefix`, then check nothing is left. */
async function erase(
  storage: Storage,
  prefix: string,
  versioning: ConformanceTarget["expectedVersioning"],
): Promise<void> {
  // Collect first: deleting while paging would move the markers under our feet.
  const { versions } = await listAllVersions(storage, prefix);
  const deleteVersion = storage.deleteVersion?.bind(storage);
  if (deleteVersion !== undefined) {
    await mapLimit(versions, PARALLEL, (v) => deleteVersion(v.key, v.versionId));
  } else {
    const keys = [
      ...new Set(versions.filter((v) => v.isLatest && !v.isDeleteMarker).map((v) => v.key)),
    ];
    await mapLimit(keys, PARALLEL, (key) => storage.delete(key));
  }
  if (deleteVersion !== undefined || versioning === "Disabled") {
    const left = await storage.listVersions({ prefix, maxKeys: 10 });
    if (left.versions.length > 0) {
      throw new Error(
        `conformance cleanup left ${left.versions.length}+ versions under ${prefix}, e.g. ${left.versions[0]!.key}`,
      );
    }
  }
}

async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}
