/**
 * Unit tests of the S3 driver against a scripted fake transport: URLs and signing inputs, the
 * XML reader, error mapping, the retry policy and credential hygiene. The real-server behaviour
 * is covered by `s3.conformance.test.ts` against MinIO.
 */
import { inspect } from "node:util";
import { AwsV4Signer } from "aws4fetch";
import { describe, expect, it } from "vitest";
import {
  AccessDeniedError,
  AmbiguousWriteError,
  ConfigError,
  ConflictError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
  ThrottledError,
  UnavailableError,
  ValidationError,
} from "../../src/errors.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import type { S3Fetch, S3StorageOptions } from "../../src/storage/s3/options.ts";
import { encodeKey } from "../../src/storage/s3/url.ts";
import { decodeEntities, parseXml } from "../../src/storage/s3/xml.ts";
import { rejection } from "../helpers/rejection.ts";

const ACCESS = "AKIAOQUNITTESTKEY01";
const SECRET = "oqUnitSecret/With+Chars=xyz";
const TOKEN = "oqUnitSessionTokenABC123";
const NOW = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const ENDPOINT = "http://127.0.0.1:9000";

interface Call {
  url: string;
  method: string;
  headers: Headers;
  body: Uint8Array | undefined;
  signal: AbortSignal | undefined;
  redirect: RequestRedirect | undefined;
}

type Reply = Response | Error | ((call: Call) => Response | Promise<Response>);

/** A storage wired to a fake fetch that answers with `replies` in order. */
function harness(replies: Reply[] = [], options: Partial<S3StorageOptions> = {}) {
  const calls: Call[] = [];
  const sleeps: number[] = [];
  const fetch: S3Fetch = async (url, init) => {
    const call: Call = {
      url,
      method: init.method ?? "GET",
      headers: new Headers(init.headers),
      body: init.body as Uint8Array | undefined,
      signal: init.signal ?? undefined,
      redirect: init.redirect,
    };
    calls.push(call);
    const reply = replies.shift();
    if (reply === undefined) throw new Error(`unexpected request ${call.method} ${url}`);
    if (reply instanceof Error) throw reply;
    if (typeof reply === "function") return reply(call);
    return reply;
  };
  const storage = new S3Storage({
    endpoint: ENDPOINT,
    bucket: "jobs",
    accessKeyId: ACCESS,
    secretAccessKey: SECRET,
    fetch,
    retries: {
      random: () => 0.5,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    },
    now: () => NOW,
    ...options,
  });
  return { storage, calls, sleeps };
}

function ok(headers: Record<string, string> = {}, body: string | null = null, status = 200) {
  return new Response(body, {
    status,
    headers: { date: "Fri, 02 Jan 2026 03:04:00 GMT", ...headers },
  });
}

function xml(body: string, status = 200, headers: Record<string, string> = {}) {
  return new Response(body, {
    status,
    headers: { "content-type": "application/xml", ...headers },
  });
}

function s3Error(status: number, code: string, message = "msg", requestId = "REQ123") {
  return xml(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>/jobs/k</Resource><RequestId>${requestId}</RequestId></Error>`,
    status,
  );
}

function html(status: number) {
  return new Response("<!DOCTYPE html><html><body><h1>Bad Gateway</h1></body></html>", {
    status,
    headers: { "content-type": "text/html" },
  });
}

function netError(code: string): Error {
  return new TypeError("fetch failed", { cause: Object.assign(new Error(code), { code }) });
}

describe("URLs and key encoding", () => {
  it("builds path-style URLs when an endpoint is given", async () => {
    const { storage, calls } = harness([ok({ etag: '"e"' })]);
    await storage.put("tasks/0/abc.json", "{}");
    expect(calls[0]!.url).toBe("http://127.0.0.1:9000/jobs/tasks/0/abc.json");
    expect(storage.forcePathStyle).toBe(true);
  });

  it("builds virtual-hosted AWS URLs by default", async () => {
    const { storage, calls } = harness([ok({ etag: '"e"' })], {
      endpoint: undefined,
      region: "eu-west-1",
    });
    await storage.put("k", "{}");
    expect(calls[0]!.url).toBe("https://jobs.s3.eu-west-1.amazonaws.com/k");
    expect(storage.endpoint).toBe("https://s3.eu-west-1.amazonaws.com");
    expect(storage.forcePathStyle).toBe(false);
  });

  it("honours forcePathStyle both ways", async () => {
    const virt = harness([ok({ etag: '"e"' }), xml("<ListBucketResult/>")], {
      endpoint: "http://localhost:9000",
      forcePathStyle: false,
    });
    await virt.storage.put("a/b", "x");
    await virt.storage.list();
    expect(virt.calls[0]!.url).toBe("http://jobs.localhost:9000/a/b");
    expect(virt.calls[1]!.url).toBe("http://jobs.localhost:9000/?list-type=2");

    const path = harness([xml("<ListBucketResult/>")], {
      endpoint: undefined,
      forcePathStyle: true,
    });
    await path.storage.list();
    expect(path.calls[0]!.url).toBe("https://s3.us-east-1.amazonaws.com/jobs?list-type=2");
  });

  it("keeps a base path of the endpoint", async () => {
    const { storage, calls } = harness([ok({ etag: '"e"' })], {
      endpoint: "https://gateway.example/s3/",
    });
    await storage.put("k", "x");
    expect(calls[0]!.url).toBe("https://gateway.example/s3/jobs/k");
    expect(storage.endpoint).toBe("https://gateway.example/s3");
  });

  it.each([
    ["a b", "a%20b"],
    ["a+b", "a%2Bb"],
    ["100%", "100%25"],
    ["a#b", "a%23b"],
    ["a?b=c&d", "a%3Fb%3Dc%26d"],
    ["é/日本/😀", "%C3%A9/%E6%97%A5%E6%9C%AC/%F0%9F%98%80"],
    ["!'()*", "%21%27%28%29%2A"],
    ["a//b/", "a//b/"],
    ["a~b-c_d.e", "a~b-c_d.e"],
    ["%2F", "%252F"],
  ])("encodes key %j segment by segment as %j", async (key, encoded) => {
    expect(encodeKey(key)).toBe(encoded);
    const { storage, calls } = harness([ok({ etag: '"e"' })]);
    await storage.put(key, "x");
    const url = calls[0]!.url;
    expect(url).toBe(`${ENDPOINT}/jobs/${encoded}`);
    // The server recomputes the canonical path from the path it receives: it must equal what
    // aws4fetch signed, or every request with such a key fails with SignatureDoesNotMatch.
    const signer = new AwsV4Signer({
      url,
      method: "PUT",
      accessKeyId: ACCESS,
      secretAccessKey: SECRET,
      service: "s3",
      region: "us-east-1",
    });
    expect(signer.encodedPath).toBe(new URL(url).pathname);
  });

  it("refuses keys a URL cannot address", async () => {
    const { storage, calls } = harness();
    for (const key of ["", ".", "..", "a/../b", "a/./b", "./a"]) {
      expect(await rejection(storage.get(key))).toBeInstanceOf(ValidationError);
    }
    expect(calls).toHaveLength(0);
    // Dots inside a segment are ordinary characters.
    const ok2 = harness([ok({ etag: '"e"' })]);
    await ok2.storage.put("a/..b/c.", "x");
    expect(ok2.calls[0]!.url).toBe(`${ENDPOINT}/jobs/a/..b/c.`);
  });

  it("builds ListObjectsV2 queries with %20 (never +) for spaces", async () => {
    const { storage, calls } = harness([xml("<ListBucketResult/>")]);
    await storage.list({
      prefix: "ready/a b+",
      startAfter: "ready/é",
      continuationToken: "tok/=+",
      maxKeys: 5,
    });
    expect(calls[0]!.url).toBe(
      `${ENDPOINT}/jobs?list-type=2&prefix=ready%2Fa%20b%2B&start-after=ready%2F%C3%A9&continuation-token=tok%2F%3D%2B&max-keys=5`,
    );
    expect(calls[0]!.method).toBe("GET");
  });

  it("builds ListObjectVersions, versioning and versionId queries", async () => {
    const { storage, calls } = harness([
      xml("<ListVersionsResult/>"),
      xml("<ListVersionsResult/>"),
      xml("<VersioningConfiguration/>"),
      ok({ etag: '"e"' }, "x"),
      ok({}, null, 204),
    ]);
    await storage.listVersions({ prefix: "tasks/0/t1.json" });
    await storage.listVersions({
      prefix: "p",
      keyMarker: "k m",
      versionIdMarker: "v+1",
      maxKeys: 2,
    });
    await storage.versioning();
    await storage.get("k", { versionId: "3/L4kqtJl+" });
    await storage.deleteVersion("k", "v1");
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      `GET ${ENDPOINT}/jobs?versions&prefix=tasks%2F0%2Ft1.json`,
      `GET ${ENDPOINT}/jobs?versions&prefix=p&key-marker=k%20m&version-id-marker=v%2B1&max-keys=2`,
      `GET ${ENDPOINT}/jobs?versioning`,
      `GET ${ENDPOINT}/jobs/k?versionId=3%2FL4kqtJl%2B`,
      `DELETE ${ENDPOINT}/jobs/k?versionId=v1`,
    ]);
  });

  it("signs with service s3, the region, the injected clock and no payload hash", async () => {
    const { storage, calls } = harness([ok({ etag: '"e"' })], {
      region: "auto",
      sessionToken: TOKEN,
    });
    await storage.put("k", "body");
    const h = calls[0]!.headers;
    expect(h.get("authorization")).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAOQUNITTESTKEY01\/20260102\/auto\/s3\/aws4_request, SignedHeaders=/,
    );
    expect(h.get("x-amz-date")).toBe("20260102T030405Z");
    expect(h.get("x-amz-content-sha256")).toBe("UNSIGNED-PAYLOAD");
    expect(h.get("x-amz-security-token")).toBe(TOKEN);
  });

  it("sends content type, body bytes and conditional headers exactly", async () => {
    const { storage, calls } = harness([
      ok({ etag: '"e1"' }),
      ok({ etag: '"e2"' }),
      ok({ etag: '"e3"' }),
    ]);
    await storage.put("a", "héllo", { contentType: "application/json" });
    await storage.put("a", new Uint8Array([1, 2, 3]), { ifMatch: 'W/"e1"' });
    await storage.put("b", "x", { ifNoneMatch: "*" });
    expect(calls[0]!.method).toBe("PUT");
    expect(calls[0]!.headers.get("content-type")).toBe("application/json");
    expect(new TextDecoder().decode(calls[0]!.body)).toBe("héllo");
    expect(calls[0]!.headers.get("if-match")).toBeNull();
    expect(calls[1]!.headers.get("content-type")).toBe("application/octet-stream");
    expect(calls[1]!.headers.get("if-match")).toBe('W/"e1"');
    expect([...calls[1]!.body!]).toEqual([1, 2, 3]);
    expect(calls[2]!.headers.get("if-none-match")).toBe("*");
    // Conditional headers must be signed, or a proxy could strip them undetected.
    expect(calls[1]!.headers.get("authorization")).toContain("if-match");
    expect(calls[2]!.headers.get("authorization")).toContain("if-none-match");
  });

  it("rejects contradictory put options before sending", async () => {
    const { storage, calls } = harness();
    const e = await rejection(storage.put("k", "x", { ifMatch: '"a"', ifNoneMatch: "*" }));
    expect(e).toBeInstanceOf(ValidationError);
    expect(calls).toHaveLength(0);
  });
});

describe("parseXml", () => {
  it("reads nested elements, text and the declaration", () => {
    const root = parseXml(
      '<?xml version="1.0" encoding="UTF-8"?>\n<A xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><B>one</B><C><D>two</D></C><B>three</B></A>',
    );
    expect(root.name).toBe("A");
    expect(root.children.map((c) => c.name)).toEqual(["B", "C", "B"]);
    expect(root.children[0]!.text).toBe("one");
    expect(root.children[1]!.children[0]!.text).toBe("two");
  });

  it("decodes the five entities and numeric references", () => {
    const root = parseXml(
      "<K>&lt;a&gt; &amp; &quot;b&quot; &apos;c&apos; &#34;q&#34; &#x41;&#x6a; &#233;&#x1F600;&amp;lt;</K>",
    );
    expect(root.text).toBe('<a> & "b" \'c\' "q" Aj é😀&lt;');
  });

  it("keeps surrounding whitespace and line breaks byte-exact", () => {
    expect(parseXml("<K>  a b \n</K>").text).toBe("  a b \n");
    expect(parseXml("<K>&#13;&#10;</K>").text).toBe("\r\n");
  });

  it("handles empty and self-closing elements", () => {
    expect(parseXml("<A/>")).toEqual({ name: "A", children: [], text: "" });
    expect(parseXml('<A x="1" />').children).toEqual([]);
    const root = parseXml("<A><B/><C></C><D>x</D></A>");
    expect(root.children.map((c) => [c.name, c.text])).toEqual([
      ["B", ""],
      ["C", ""],
      ["D", "x"],
    ]);
  });

  it("skips attributes, even with > and quotes inside values", () => {
    const root = parseXml(`<A a="x>y" b='"q"' c = "1"><B k='>'>t</B></A>`);
    expect(root.children[0]!.text).toBe("t");
  });

  it("reads CDATA raw and skips comments", () => {
    const root = parseXml("<A><!-- a <B> comment --><B><![CDATA[<x> & y]]>z</B></A>");
    expect(root.children).toHaveLength(1);
    expect(root.children[0]!.text).toBe("<x> & yz");
  });

  it("strips namespace prefixes from names", () => {
    expect(parseXml("<s3:A><s3:B>x</s3:B></s3:A>").children[0]!.name).toBe("B");
  });

  it("tolerates a byte order mark and trailing whitespace", () => {
    expect(parseXml("\uFEFF<A>x</A>\n").text).toBe("x");
  });

  it.each([
    ["", "no root"],
    ["   ", "no root"],
    ["<A>", "unclosed"],
    ["<A></B>", "unexpected"],
    ["<A><B></A></B>", "unexpected"],
    ["text", "outside"],
    ["<A/><B/>", "more than one root"],
    ["<A></A><B></B>", "more than one root"],
    ["<!DOCTYPE html><html></html>", "DTD"],
    ["<A>a & b</A>", "bare"],
    ["<A>&nbsp;</A>", "unknown entity"],
    ["<A>&#0;</A>", "unknown entity"],
    ["<A>&#xD800;</A>", "unknown entity"],
    ["<A>&#x110000;</A>", "unknown entity"],
    ['<A b="1>', "unterminated"],
    ["<A><!-- x</A>", "unterminated comment"],
    ["<1A/>", "bad start tag"],
  ])("refuses malformed input %j", (source, why) => {
    expect(() => parseXml(source)).toThrow(why);
  });

  it("decodeEntities leaves plain text alone", () => {
    expect(decodeEntities("plain text; no entities")).toBe("plain text; no entities");
  });

  it("decodeEntities decodes every reference between and around plain text", () => {
    expect(decodeEntities("&#34;a&lt;b&#x22;c&amp;&apos;d&quot;&gt;")).toBe(`"a<b"c&'d">`);
    expect(decodeEntities("&#128512; &#x1F600;")).toBe("\u{1F600} \u{1F600}");
    expect(() => decodeEntities("&abcdefghijklm;")).toThrow("bare");
    expect(() => decodeEntities("ok &amp; then &lt")).toThrow("bare");
  });
});

describe("responses", () => {
  it("get returns body, the ETag exactly, version id, dates and content type", async () => {
    const { storage } = harness([
      ok(
        {
          etag: '"9b2cf535f27731c974343645a3985328"',
          "x-amz-version-id": "v-123",
          "last-modified": "Fri, 02 Jan 2026 03:00:00 GMT",
          "content-type": "application/json",
        },
        '{"a":1}',
      ),
    ]);
    const got = await storage.get("k");
    expect(new TextDecoder().decode(got.body)).toBe('{"a":1}');
    expect(got.etag).toBe('"9b2cf535f27731c974343645a3985328"');
    expect(got.versionId).toBe("v-123");
    expect(got.lastModified.toISOString()).toBe("2026-01-02T03:00:00.000Z");
    expect(got.contentType).toBe("application/json");
  });

  it("get on an unversioned bucket has versionId null; weak ETags pass through", async () => {
    const { storage } = harness([ok({ etag: 'W/"abc"' }, "x")]);
    const got = await storage.get("k");
    expect(got.versionId).toBeNull();
    expect(got.etag).toBe('W/"abc"');
  });

  it("head returns size, ETag and version", async () => {
    const { storage, calls } = harness([
      new Response(null, {
        status: 200,
        headers: {
          etag: '"e"',
          "content-length": "42",
          "x-amz-version-id": "v9",
          "last-modified": "Fri, 02 Jan 2026 03:00:00 GMT",
        },
      }),
    ]);
    expect(await storage.head("k")).toEqual({
      etag: '"e"',
      size: 42,
      versionId: "v9",
      lastModified: new Date("2026-01-02T03:00:00Z"),
    });
    expect(calls[0]!.method).toBe("HEAD");
  });

  it("put returns the new ETag and version id", async () => {
    const { storage } = harness([ok({ etag: '"new"', "x-amz-version-id": "v2" })]);
    expect(await storage.put("k", "x")).toEqual({ etag: '"new"', versionId: "v2" });
  });

  it("parses a ListObjectsV2 page as MinIO writes it", async () => {
    const { storage } = harness([
      xml(
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>jobs</Name><Prefix>r/</Prefix><NextContinuationToken>dG9r/ZW4=</NextContinuationToken><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>' +
          "<Contents><Key>r/a &amp; b &lt;c&gt;</Key><LastModified>2026-01-02T03:04:05.678Z</LastModified><ETag>&#34;e1&#34;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>" +
          "<Contents><Key> r/sp </Key><LastModified>2026-01-02T03:04:06.000Z</LastModified><ETag>&quot;e2-3&quot;</ETag><Size>0</Size><Owner><ID>x</ID><DisplayName>Key</DisplayName></Owner></Contents></ListBucketResult>",
      ),
    ]);
    const page = await storage.list({ prefix: "r/", maxKeys: 2 });
    expect(page).toEqual({
      objects: [
        {
          key: "r/a & b <c>",
          etag: '"e1"',
          size: 12,
          lastModified: new Date("2026-01-02T03:04:05.678Z"),
        },
        { key: " r/sp ", etag: '"e2-3"', size: 0, lastModified: new Date("2026-01-02T03:04:06Z") },
      ],
      isTruncated: true,
      nextContinuationToken: "dG9r/ZW4=",
    });
  });

  it("parses an empty listing", async () => {
    const { storage } = harness([
      xml(
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>jobs</Name><Prefix>none</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
      ),
    ]);
    expect(await storage.list({ prefix: "none" })).toEqual({ objects: [], isTruncated: false });
  });

  it("parses versions and delete markers in document order with their markers", async () => {
    const { storage } = harness([
      xml(
        '<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>jobs</Name><Prefix>t/</Prefix><KeyMarker></KeyMarker><NextKeyMarker>t/a[minio_cache:v2,return:]</NextKeyMarker><NextVersionIdMarker>v1</NextVersionIdMarker><VersionIdMarker></VersionIdMarker><MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>' +
          "<Version><Key>t/a</Key><LastModified>2026-01-02T03:00:03.000Z</LastModified><ETag>&#34;e3&#34;</ETag><Size>5</Size><Owner><ID>o</ID></Owner><StorageClass>STANDARD</StorageClass><IsLatest>true</IsLatest><VersionId>v3</VersionId></Version>" +
          "<DeleteMarker><Key>t/a</Key><LastModified>2026-01-02T03:00:02.000Z</LastModified><ETag></ETag><Size>0</Size><IsLatest>false</IsLatest><VersionId>v2</VersionId></DeleteMarker>" +
          "<Version><Key>t/a</Key><LastModified>2026-01-02T03:00:01.000Z</LastModified><ETag>&#34;e1&#34;</ETag><Size>4</Size><IsLatest>false</IsLatest><VersionId>v1</VersionId></Version>" +
          "</ListVersionsResult>",
      ),
    ]);
    const page = await storage.listVersions({ prefix: "t/", maxKeys: 3 });
    expect(page.versions).toEqual([
      {
        key: "t/a",
        versionId: "v3",
        isLatest: true,
        isDeleteMarker: false,
        lastModified: new Date("2026-01-02T03:00:03Z"),
        etag: '"e3"',
        size: 5,
      },
      {
        key: "t/a",
        versionId: "v2",
        isLatest: false,
        isDeleteMarker: true,
        lastModified: new Date("2026-01-02T03:00:02Z"),
        size: 0,
      },
      {
        key: "t/a",
        versionId: "v1",
        isLatest: false,
        isDeleteMarker: false,
        lastModified: new Date("2026-01-02T03:00:01Z"),
        etag: '"e1"',
        size: 4,
      },
    ]);
    expect(page.isTruncated).toBe(true);
    // Opaque: MinIO appends cache hints to the key marker; they must round-trip untouched.
    expect(page.nextKeyMarker).toBe("t/a[minio_cache:v2,return:]");
    expect(page.nextVersionIdMarker).toBe("v1");
  });

  it("parses a last version page without markers", async () => {
    const { storage } = harness([
      xml(
        '<ListVersionsResult><IsTruncated>false</IsTruncated><Version><Key>k</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>2026-01-02T03:00:03Z</LastModified><ETag>"e"</ETag><Size>1</Size></Version></ListVersionsResult>',
      ),
    ]);
    const page = await storage.listVersions({ prefix: "k" });
    expect(page.isTruncated).toBe(false);
    expect(page.nextKeyMarker).toBeUndefined();
    expect(page.nextVersionIdMarker).toBeUndefined();
    expect(page.versions[0]!.versionId).toBe("null");
  });

  it.each([
    [
      '<VersioningConfiguration xmlns="x"><Status>Enabled</Status></VersioningConfiguration>',
      "Enabled",
    ],
    ["<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>", "Suspended"],
    ['<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>', "Disabled"],
    ["<VersioningConfiguration></VersioningConfiguration>", "Disabled"],
  ])("reads versioning %s as %s", async (body, expected) => {
    const { storage } = harness([xml(body)]);
    expect(await storage.versioning()).toBe(expected);
  });

  it("reports a 200 that is not S3 XML as not S3", async () => {
    const { storage } = harness([
      new Response("<html><body>welcome</body></html>", {
        status: 200,
        headers: { "content-type": "text/html" },
      }),
      xml("<SomethingElse/>"),
    ]);
    const e1 = await rejection(storage.list());
    expect(e1).toBeInstanceOf(StorageError);
    expect(e1.message).toContain("is OQ_ENDPOINT pointing at an S3 API?");
    expect(e1.message).toContain("HTML");
    const e2 = await rejection(storage.versioning());
    expect(e2.message).toContain("<VersioningConfiguration>");
  });

  it("reports a missing ETag instead of returning an empty one", async () => {
    const { storage } = harness([ok({}, "x"), ok({}), ok({})]);
    expect(await rejection(storage.get("k"))).toBeInstanceOf(StorageError);
    expect(await rejection(storage.put("k", "x"))).toBeInstanceOf(StorageError);
    expect(await rejection(storage.put("k", "x", { ifNoneMatch: "*" }))).toBeInstanceOf(
      AmbiguousWriteError,
    );
  });
});

describe("serverTime", () => {
  it("is undefined before any response, then tracks the Date header of every response", async () => {
    let local = 1000;
    const { storage } = harness(
      [
        () => {
          local += 250; // the request takes 250 ms on the local clock
          return ok({ etag: '"e"', date: "Fri, 02 Jan 2026 03:04:00 GMT" }, "x");
        },
        new Response(null, { status: 404, headers: { date: "Fri, 02 Jan 2026 03:05:00 GMT" } }),
        ok({ etag: '"e"', date: "not a date" }, "x"),
      ],
      { now: () => local },
    );
    expect(storage.serverTime()).toBeUndefined();
    await storage.get("k");
    // Sent at 1000, arrived at 1250; an HTTP date is good to the second (defect 2).
    expect(storage.serverTime()).toEqual({
      serverMs: Date.UTC(2026, 0, 2, 3, 4),
      resolutionMs: 1000,
      sentMs: 1000,
      localMs: 1250,
    });
    local = 2000;
    await rejection(storage.head("k"));
    expect(storage.serverTime()).toEqual({
      serverMs: Date.UTC(2026, 0, 2, 3, 5),
      resolutionMs: 1000,
      sentMs: 2000,
      localMs: 2000,
    });
    local = 3000;
    await storage.get("k");
    expect(storage.serverTime()!.localMs).toBe(2000);
  });
});

describe("error mapping", () => {
  it("404 NoSuchKey is NotFoundError with code and request id", async () => {
    const { storage } = harness([s3Error(404, "NoSuchKey", "The specified key does not exist.")]);
    const e = await rejection(storage.get("tasks/x.json"));
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e).toMatchObject({ status: 404, s3Code: "NoSuchKey", requestId: "REQ123" });
    expect(e.key).toBe("tasks/x.json");
  });

  it("404 NoSuchBucket says which bucket is missing where", async () => {
    const { storage } = harness([s3Error(404, "NoSuchBucket")]);
    const e = await rejection(storage.list());
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e.message).toContain(
      "bucket jobs does not exist at http://127.0.0.1:9000; create it or fix OQ_BUCKET",
    );
  });

  it("HEAD 404 uses MinIO's error-code header to tell a missing bucket", async () => {
    const { storage } = harness([
      new Response(null, { status: 404, headers: { "x-minio-error-code": "NoSuchBucket" } }),
      new Response(null, { status: 404, headers: { "x-amz-request-id": "HDR1" } }),
    ]);
    expect((await rejection(storage.head("k"))).message).toContain("bucket jobs does not exist");
    const e = await rejection(storage.head("k"));
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e.requestId).toBe("HDR1");
    // A body-less HEAD error is normal S3 behaviour, not a sign of a foreign endpoint.
    expect(e.message).not.toContain("OQ_ENDPOINT");
  });

  it("If-Match on a missing key (404) stays NotFoundError", async () => {
    const { storage } = harness([s3Error(404, "NoSuchKey")]);
    expect(await rejection(storage.put("k", "x", { ifMatch: '"e"' }))).toBeInstanceOf(
      NotFoundError,
    );
  });

  it("a delete marker version (405) and a malformed version id (400) are NotFoundError", async () => {
    const { storage } = harness([
      new Response(
        "<Error><Code>MethodNotAllowed</Code><Message>The specified method is not allowed against this resource.</Message></Error>",
        { status: 405, headers: { "x-amz-delete-marker": "true" } },
      ),
      s3Error(400, "InvalidArgument", "Invalid version id specified"),
      s3Error(400, "InvalidArgument", "Something else"),
    ]);
    expect(await rejection(storage.get("k", { versionId: "v" }))).toBeInstanceOf(NotFoundError);
    expect(await rejection(storage.get("k", { versionId: "nope" }))).toBeInstanceOf(NotFoundError);
    expect(await rejection(storage.get("k"))).toBeInstanceOf(StorageError);
  });

  it("412 is PreconditionFailedError and says why", async () => {
    const { storage, calls } = harness([
      s3Error(412, "PreconditionFailed"),
      s3Error(412, "PreconditionFailed"),
    ]);
    const e1 = await rejection(storage.put("k", "x", { ifNoneMatch: "*" }));
    expect(e1).toBeInstanceOf(PreconditionFailedError);
    expect(e1.message).toContain("already exists");
    const e2 = await rejection(storage.put("k", "x", { ifMatch: '"e"' }));
    expect(e2.message).toContain("changed");
    expect(calls).toHaveLength(2);
  });

  it.each([["ConditionalRequestConflict"], ["OperationAborted"]])(
    "409 %s is ConflictError and never retried",
    async (code) => {
      const { storage, calls } = harness([s3Error(409, code), s3Error(409, code)]);
      const e = await rejection(storage.put("k", "x", { ifMatch: '"e"' }));
      expect(e).toBeInstanceOf(ConflictError);
      expect(e.s3Code).toBe(code);
      expect(e.message).toContain("re-read");
      const e2 = await rejection(storage.put("k", "x"));
      expect(e2).toBeInstanceOf(ConflictError);
      expect(calls).toHaveLength(2);
    },
  );

  it("429 and 503 SlowDown are ThrottledError once retries run out", async () => {
    const a = harness([429, 429, 429, 429].map((s) => s3Error(s, "TooManyRequests")));
    expect(await rejection(a.storage.get("k"))).toBeInstanceOf(ThrottledError);
    expect(a.calls).toHaveLength(4);
    const b = harness([1, 2, 3, 4].map(() => s3Error(503, "SlowDown", "Please reduce")));
    const e = await rejection(b.storage.list());
    expect(e).toBeInstanceOf(ThrottledError);
    expect(e).toMatchObject({ status: 503, s3Code: "SlowDown" });
  });

  it.each([
    ["InvalidAccessKeyId", "does not know this access key id"],
    ["SignatureDoesNotMatch", "wrong secret access key"],
    ["AccessDenied", ""],
    ["RequestTimeTooSkewed", "clock"],
  ])("403 %s is AccessDeniedError naming the variables to check", async (code, hint) => {
    const { storage } = harness([s3Error(403, code)]);
    const e = await rejection(storage.get("k"));
    expect(e).toBeInstanceOf(AccessDeniedError);
    expect(e.s3Code).toBe(code);
    expect(e.message).toContain(code);
    expect(e.message).toContain(
      "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy",
    );
    expect(e.message).toContain(hint);
  });

  it("an expired session token is AccessDeniedError pointing at AWS_SESSION_TOKEN", async () => {
    const { storage } = harness([s3Error(400, "ExpiredToken")]);
    const e = await rejection(storage.get("k"));
    expect(e).toBeInstanceOf(AccessDeniedError);
    expect(e.message).toContain("AWS_SESSION_TOKEN");
  });

  it("400 is StorageError with status, S3 code and the header request id", async () => {
    const { storage } = harness([
      xml("<Error><Code>InvalidRequest</Code><Message>nope</Message></Error>", 400, {
        "x-amz-request-id": "HDR-REQ",
      }),
    ]);
    const e = await rejection(storage.put("k", "x"));
    expect(e).toBeInstanceOf(StorageError);
    expect(e).toMatchObject({ status: 400, s3Code: "InvalidRequest", requestId: "HDR-REQ" });
    expect(e.message).toContain("nope");
  });

  it("a wrong region names OQ_REGION", async () => {
    const { storage } = harness([
      s3Error(400, "AuthorizationHeaderMalformed", "the region is wrong; expecting 'eu-west-1'"),
      xml("<Error><Code>PermanentRedirect</Code></Error>", 301, {
        "x-amz-bucket-region": "eu-west-1",
      }),
    ]);
    expect((await rejection(storage.get("k"))).message).toContain("OQ_REGION");
    const e = await rejection(storage.get("k"));
    expect(e.message).toContain("region eu-west-1");
    expect(e.message).toContain("OQ_REGION");
  });

  it("asks fetch not to follow redirects with signed headers", async () => {
    const { storage, calls } = harness([ok({ etag: '"e"' }, "x")]);
    await storage.get("k");
    expect(calls[0]!.redirect).toBe("manual");
    expect(calls[0]!.signal).toBeInstanceOf(AbortSignal);
  });

  it.each([
    [404, NotFoundError],
    [403, AccessDeniedError],
    [400, StorageError],
    [412, PreconditionFailedError],
  ])(
    "an HTML %i still gives a typed error that says the endpoint is not S3",
    async (status, type) => {
      const { storage } = harness([html(status)]);
      const e = await rejection(storage.get("k"));
      expect(e).toBeInstanceOf(type);
      expect(e.status).toBe(status);
      expect(e.message).toContain("the endpoint did not answer like S3");
      expect(e.message).toContain("HTML page");
      expect(e.message).toContain("is OQ_ENDPOINT pointing at an S3 API?");
    },
  );

  it("an empty or plain-text error body says the endpoint is not S3", async () => {
    const { storage } = harness([
      new Response("", { status: 404 }),
      new Response("404 page not found", {
        status: 404,
        headers: { "content-type": "text/plain" },
      }),
    ]);
    const e1 = await rejection(storage.get("k"));
    expect(e1).toBeInstanceOf(NotFoundError);
    expect(e1.message).toContain("empty body");
    expect(e1.message).toContain("OQ_ENDPOINT");
    const e2 = await rejection(storage.get("k"));
    expect(e2.message).toContain("text/plain");
  });

  it("deleting a missing or malformed version succeeds", async () => {
    const { storage } = harness([
      s3Error(404, "NoSuchVersion"),
      s3Error(400, "InvalidArgument", "Invalid version id specified"),
      s3Error(400, "InvalidArgument"),
    ]);
    await storage.deleteVersion("k", "00000000-0000-0000-0000-000000000000");
    await storage.deleteVersion("k", "nope");
    expect(await rejection(storage.delete("k"))).toBeInstanceOf(StorageError);
  });

  it("deleting a missing key succeeds, deleting in a missing bucket does not", async () => {
    const { storage } = harness([
      ok({}, null, 204),
      s3Error(404, "NoSuchKey"),
      s3Error(404, "NoSuchBucket"),
    ]);
    await storage.delete("k");
    await storage.delete("k");
    expect(await rejection(storage.delete("k"))).toBeInstanceOf(NotFoundError);
  });

  it("connection refused is UnavailableError naming the host", async () => {
    const { storage } = harness([1, 2, 3, 4].map(() => netError("ECONNREFUSED")));
    const e = await rejection(storage.get("k"));
    expect(e).toBeInstanceOf(UnavailableError);
    expect(e.message).toContain("127.0.0.1:9000");
    expect(e.message).toContain("connection refused");
  });

  it("a DNS failure names the host of the request", async () => {
    const { storage } = harness(
      [1, 2, 3, 4].map(() => netError("ENOTFOUND")),
      { endpoint: undefined, region: "eu-west-1" },
    );
    const e = await rejection(storage.get("k"));
    expect(e).toBeInstanceOf(UnavailableError);
    expect(e.message).toContain("jobs.s3.eu-west-1.amazonaws.com");
    expect(e.message).toContain("DNS");
  });

  it("a request that outlives requestTimeoutMs is aborted and reported", async () => {
    const hang = (call: Call) =>
      new Promise<Response>((_, reject) => {
        call.signal!.addEventListener("abort", () => reject(call.signal!.reason));
      });
    const { storage } = harness([hang, hang], {
      requestTimeoutMs: 20,
      retries: { attempts: 2, sleep: async () => {} },
    });
    const e = await rejection(storage.get("k"));
    expect(e).toBeInstanceOf(UnavailableError);
    expect(e.message).toContain("timed out after 20 ms");
  });

  it("a request's timeout ends with it: its signal never fires afterwards", async () => {
    // AbortSignal.timeout kept a timer (and its signal, ~1 kB) per request for the whole
    // timeout after the answer: 30 s of them at a drain's request rate is tens of megabytes.
    const { storage, calls } = harness([() => ok({ etag: '"e1"' }, "body")], {
      requestTimeoutMs: 30,
    });
    await storage.get("k");
    const signal = calls[0]!.signal!;
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(signal.aborted).toBe(false);
  });
});

/** A DeleteObjects answer holding `inner` (its `<Error>` entries, if any). */
const deleteResult = (inner = "") =>
  xml(
    `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</DeleteResult>`,
  );

describe("deleteMany", () => {
  it("posts one quiet DeleteObjects with escaped keys and a SHA-256 checksum", async () => {
    const { storage, calls } = harness([deleteResult()]);
    await storage.deleteMany(["a", "b & <c>", "d'\"\r"]);
    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    expect(call.method).toBe("POST");
    expect(call.url).toBe(`${ENDPOINT}/jobs?delete`);
    expect(call.headers.get("content-type")).toBe("application/xml");
    const body = new TextDecoder().decode(call.body);
    expect(body).toContain("<Quiet>true</Quiet>");
    expect(body).toContain(
      "<Object><Key>a</Key></Object><Object><Key>b &#38; &#60;c&#62;</Key></Object><Object><Key>d&#39;&#34;&#13;</Key></Object>",
    );
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", call.body! as Uint8Array<ArrayBuffer>),
    );
    expect(call.headers.get("x-amz-checksum-sha256")).toBe(btoa(String.fromCharCode(...digest)));
    // What we wrote must read back as the same keys.
    const keys = parseXml(body).children.filter((c) => c.name === "Object");
    expect(keys.map((k) => k.children[0]!.text)).toEqual(["a", "b & <c>", "d'\"\r"]);
  });

  it("splits more than 1,000 keys into several requests and sends none for no keys", async () => {
    const { storage, calls } = harness([deleteResult(), deleteResult(), deleteResult()]);
    await storage.deleteMany([]);
    expect(calls).toHaveLength(0);
    await storage.deleteMany(Array.from({ length: 2001 }, (_, i) => `k${i}`));
    const counts = calls.map((c) => new TextDecoder().decode(c.body).split("<Object>").length - 1);
    expect(counts).toEqual([1000, 1000, 1]);
  });

  it("ignores per-key NoSuchKey but throws on any other per-key error", async () => {
    const { storage } = harness([
      deleteResult("<Error><Key>a</Key><Code>NoSuchKey</Code><Message>gone</Message></Error>"),
      deleteResult(
        "<Error><Key>a</Key><Code>NoSuchKey</Code></Error><Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>",
      ),
      deleteResult("<Error><Key>c</Key><Code>InternalError</Code><Message>oops</Message></Error>"),
    ]);
    await storage.deleteMany(["a"]);
    const denied = await rejection(storage.deleteMany(["a", "b"]));
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect(denied.key).toBe("b");
    expect(denied.message).toContain("1 of 2 keys were not deleted");
    const other = await rejection(storage.deleteMany(["c"]));
    expect(other).toBeInstanceOf(StorageError);
    expect(other.s3Code).toBe("InternalError");
  });

  it("is retried on 5xx like any idempotent request", async () => {
    const { storage, calls } = harness([s3Error(500, "InternalError"), deleteResult()]);
    await storage.deleteMany(["a"]);
    expect(calls).toHaveLength(2);
  });

  it("falls back to single DELETEs, for good, when the server refuses the batch call", async () => {
    const { storage, calls } = harness([
      s3Error(400, "MissingContentMD5"),
      ok({}, null, 204),
      ok({}, null, 204),
      ok({}, null, 204),
    ]);
    await storage.deleteMany(["a", "b"]);
    await storage.deleteMany(["c"]);
    expect(calls.map((c) => `${c.method} ${c.url.slice(ENDPOINT.length)}`).sort()).toEqual([
      "DELETE /jobs/a",
      "DELETE /jobs/b",
      "DELETE /jobs/c",
      "POST /jobs?delete",
    ]);
  });

  it("validates every key before sending anything", async () => {
    const { storage, calls } = harness();
    expect(await rejection(storage.deleteMany(["ok", "a/../b"]))).toBeInstanceOf(ValidationError);
    expect(calls).toHaveLength(0);
  });
});

describe("deleteVersions", () => {
  it("posts one quiet DeleteObjects naming each version, escaped", async () => {
    const { storage, calls } = harness([deleteResult()]);
    await storage.deleteVersions([
      { key: "a", versionId: "v1" },
      { key: "b & <c>", versionId: "v<2>" },
    ]);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe(`${ENDPOINT}/jobs?delete`);
    const body = new TextDecoder().decode(calls[0]!.body);
    expect(body).toContain(
      "<Object><Key>a</Key><VersionId>v1</VersionId></Object><Object><Key>b &#38; &#60;c&#62;</Key><VersionId>v&#60;2&#62;</VersionId></Object>",
    );
  });

  it("counts a missing version as deleted, and throws AccessDeniedError on a refused one", async () => {
    const { storage } = harness([
      deleteResult(
        "<Error><Key>a</Key><VersionId>v1</VersionId><Code>NoSuchVersion</Code></Error>",
      ),
      deleteResult(
        "<Error><Key>b</Key><VersionId>v2</VersionId><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>",
      ),
    ]);
    await storage.deleteVersions([{ key: "a", versionId: "v1" }]);
    const denied = await rejection(storage.deleteVersions([{ key: "b", versionId: "v2" }]));
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect(denied.key).toBe("b");
  });

  it("falls back to one DELETE ?versionId= per version when the server refuses the batch call", async () => {
    const { storage, calls } = harness([
      s3Error(400, "MissingContentMD5"),
      ok({}, null, 204),
      ok({}, null, 204),
    ]);
    await storage.deleteVersions([
      { key: "a", versionId: "v1" },
      { key: "b", versionId: "v2" },
    ]);
    expect(calls.map((c) => `${c.method} ${c.url.slice(ENDPOINT.length)}`).sort()).toEqual([
      "DELETE /jobs/a?versionId=v1",
      "DELETE /jobs/b?versionId=v2",
      "POST /jobs?delete",
    ]);
  });
});

describe("clock skew", () => {
  it("re-signs with the server's clock after RequestTimeTooSkewed, and keeps doing so", async () => {
    const { storage, calls, sleeps } = harness([
      xml("<Error><Code>RequestTimeTooSkewed</Code></Error>", 403, {
        date: "Fri, 02 Jan 2026 04:04:05 GMT",
      }),
      ok({ etag: '"e"' }),
      ok({ etag: '"e"' }),
    ]);
    // Local clock (NOW) is one hour behind the server.
    await storage.put("k", "x", { ifMatch: '"e0"' });
    expect(calls.map((c) => c.headers.get("x-amz-date"))).toEqual([
      "20260102T030405Z",
      "20260102T040405Z",
    ]);
    expect(sleeps).toHaveLength(1);
    await storage.put("k", "y");
    expect(calls[2]!.headers.get("x-amz-date")).toBe("20260102T040405Z");
  });

  it("gives up with AccessDeniedError naming the clock when the skew persists", async () => {
    const skewed = () =>
      xml("<Error><Code>RequestTimeTooSkewed</Code></Error>", 403, {
        date: "Fri, 02 Jan 2026 04:04:05 GMT",
      });
    const { storage } = harness([skewed(), skewed(), skewed(), skewed()]);
    const e = await rejection(storage.get("k"));
    expect(e).toBeInstanceOf(AccessDeniedError);
    expect(e.message).toContain("clock");
  });
});

describe("retry policy", () => {
  it("retries safe requests on 5xx with jittered exponential backoff", async () => {
    const { storage, calls, sleeps } = harness([
      s3Error(500, "InternalError"),
      html(502),
      s3Error(503, "ServiceUnavailable"),
      ok({ etag: '"e"' }, "x"),
    ]);
    await storage.get("k");
    expect(calls).toHaveLength(4);
    // random() = 0.5 of 100, 200, 400 ms.
    expect(sleeps).toEqual([50, 100, 200]);
  });

  it("caps the backoff at maxDelayMs and uses full jitter", async () => {
    const sleeps: number[] = [];
    const { storage } = harness(
      [1, 2, 3, 4, 5].map(() => s3Error(500, "InternalError")),
      {
        retries: {
          attempts: 5,
          baseDelayMs: 1000,
          maxDelayMs: 3000,
          random: () => 0.999,
          sleep: async (ms) => void sleeps.push(ms),
        },
      },
    );
    const e = await rejection(storage.head("k"));
    expect(e).toBeInstanceOf(StorageError);
    expect(e.status).toBe(500);
    expect(sleeps.map(Math.round)).toEqual([999, 1998, 2997, 2997]);
  });

  it("waits at least Retry-After (within maxDelayMs)", async () => {
    const sleeps: number[] = [];
    const { storage } = harness(
      [xml("<Error><Code>SlowDown</Code></Error>", 503, { "retry-after": "2" }), ok({}, null, 204)],
      { retries: { random: () => 0, sleep: async (ms) => void sleeps.push(ms) } },
    );
    await storage.delete("k");
    expect(sleeps).toEqual([2000]);
  });

  it("a 503 storm slows the whole client down, not one request at a time (workers hammered a storm at ~15 requests/s each)", async () => {
    // Each throttled answer doubles a pause (100 ms up to maxDelayMs 5 s; random() = 0.5 takes
    // 75% of it) that retries and later requests wait out; the first success ends it. Before,
    // every request started at full speed and spent its tries in 350 ms: 50, 100, 200 each.
    const { storage, calls, sleeps } = harness([
      ...Array.from({ length: 8 }, () => s3Error(503, "SlowDown")),
      ok({ etag: '"e"' }, "x"),
      ok({ etag: '"e"' }, "x"),
    ]);
    expect(await rejection(storage.get("k"))).toBeInstanceOf(ThrottledError);
    expect(sleeps).toEqual([75, 150, 300]);
    expect(await rejection(storage.list())).toBeInstanceOf(ThrottledError);
    expect(sleeps).toEqual([75, 150, 300, 600, 1200, 2400, 3750]);
    await storage.get("k");
    await storage.get("k");
    expect(sleeps).toEqual([75, 150, 300, 600, 1200, 2400, 3750, 3750]);
    expect(calls).toHaveLength(10);
  });

  it("retries list, delete and unconditional put", async () => {
    const { storage, calls } = harness([
      s3Error(500, "InternalError"),
      xml("<ListBucketResult/>"),
      netError("ECONNRESET"),
      ok({}, null, 204),
      s3Error(500, "InternalError"),
      netError("ECONNRESET"),
      ok({ etag: '"e"' }),
    ]);
    await storage.list();
    await storage.delete("k");
    await storage.put("k", "x");
    expect(calls).toHaveLength(7);
  });

  it("gives up with UnavailableError after the last network failure", async () => {
    const { storage, calls } = harness([1, 2, 3, 4].map(() => netError("ECONNRESET")));
    const e = await rejection(storage.get("k"));
    expect(e).toBeInstanceOf(UnavailableError);
    expect(calls).toHaveLength(4);
  });

  it("retries a GET whose body breaks off mid-read", async () => {
    const broken = new Response(
      new ReadableStream({
        start(controller) {
          controller.enqueue(new Uint8Array([1]));
          controller.error(
            Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }),
          );
        },
      }),
      { status: 200, headers: { etag: '"e"' } },
    );
    const { storage, calls } = harness([broken, ok({ etag: '"e"' }, "whole")]);
    const got = await storage.get("k");
    expect(new TextDecoder().decode(got.body)).toBe("whole");
    expect(calls).toHaveLength(2);
  });

  it.each([
    ["ifMatch", { ifMatch: '"e"' }],
    ["ifNoneMatch", { ifNoneMatch: "*" as const }],
  ])("a conditional put (%s) answered 500 is AmbiguousWriteError, not retried", async (_, opts) => {
    const { storage, calls } = harness([s3Error(500, "InternalError"), ok({ etag: '"e2"' })]);
    const e = await rejection(storage.put("k", "x", opts));
    expect(e).toBeInstanceOf(AmbiguousWriteError);
    expect(e).toMatchObject({ status: 500, s3Code: "InternalError", key: "k" });
    expect(e.message).toContain("re-read");
    expect(calls).toHaveLength(1);
  });

  it.each([
    ["HTML 502", () => html(502)],
    ["503 ServiceUnavailable", () => s3Error(503, "ServiceUnavailable")],
    ["504", () => new Response("", { status: 504 })],
  ])("a conditional put answered %s is ambiguous", async (_, reply) => {
    const { storage, calls } = harness([reply()]);
    expect(await rejection(storage.put("k", "x", { ifMatch: '"e"' }))).toBeInstanceOf(
      AmbiguousWriteError,
    );
    expect(calls).toHaveLength(1);
  });

  it("a conditional put is retried on 503 SlowDown and 429: rejected before commit", async () => {
    const { storage, calls } = harness([
      s3Error(503, "SlowDown"),
      s3Error(429, "TooManyRequests"),
      ok({ etag: '"won"', "x-amz-version-id": "v" }),
    ]);
    expect(await storage.put("k", "x", { ifNoneMatch: "*" })).toEqual({
      etag: '"won"',
      versionId: "v",
    });
    expect(calls).toHaveLength(3);
    expect(calls.every((c) => c.headers.get("if-none-match") === "*")).toBe(true);
  });

  it("a conditional put still throttled after every try is ThrottledError (not committed)", async () => {
    const { storage } = harness([1, 2, 3, 4].map(() => s3Error(503, "SlowDown")));
    expect(await rejection(storage.put("k", "x", { ifMatch: '"e"' }))).toBeInstanceOf(
      ThrottledError,
    );
  });

  it("a conditional put whose connection drops or times out is ambiguous", async () => {
    const { storage, calls } = harness([
      netError("ECONNRESET"),
      new DOMException("The operation was aborted due to timeout", "TimeoutError"),
      new TypeError("fetch failed"),
    ]);
    for (let i = 0; i < 3; i++) {
      const e = await rejection(storage.put("k", "x", { ifMatch: '"e"' }));
      expect(e).toBeInstanceOf(AmbiguousWriteError);
      expect(e.message).toContain("127.0.0.1:9000");
    }
    expect(calls).toHaveLength(3);
  });

  it("a conditional put whose connection was refused is retried: nothing was sent", async () => {
    const { storage, calls } = harness([netError("ECONNREFUSED"), ok({ etag: '"e"' })]);
    await storage.put("k", "x", { ifMatch: '"e0"' });
    expect(calls).toHaveLength(2);
  });

  it("400 RequestTimeout is retried: the server never read the whole body", async () => {
    const { storage, calls } = harness([s3Error(400, "RequestTimeout"), ok({ etag: '"e"' })]);
    await storage.put("k", "x", { ifNoneMatch: "*" });
    expect(calls).toHaveLength(2);
  });

  it("does not retry client errors", async () => {
    const { storage, calls } = harness([
      s3Error(400, "InvalidArgument"),
      s3Error(403, "AccessDenied"),
    ]);
    await rejection(storage.get("k"));
    await rejection(storage.get("k"));
    expect(calls).toHaveLength(2);
  });

  it("attempts: 1 disables retries", async () => {
    const { storage, calls } = harness([s3Error(500, "InternalError")], {
      retries: { attempts: 1 },
    });
    expect(await rejection(storage.get("k"))).toBeInstanceOf(StorageError);
    expect(calls).toHaveLength(1);
  });
});

describe("credentials never leak", () => {
  const all = [ACCESS, SECRET, TOKEN];
  const expectClean = (text: string) => {
    for (const secret of all) expect(text).not.toContain(secret);
  };

  it("not in error messages, toJSON or inspect output, even when the server echoes them", async () => {
    const replies: Reply[] = [
      s3Error(
        403,
        "SignatureDoesNotMatch",
        `key ${ACCESS} secret ${SECRET} token ${TOKEN}`,
        ACCESS,
      ),
      s3Error(400, ACCESS, SECRET),
      s3Error(500, "InternalError", SECRET),
      netError("ECONNREFUSED"),
      html(404),
    ];
    const { storage } = harness(replies, { sessionToken: TOKEN, retries: { attempts: 1 } });
    const errors = [
      await rejection(storage.get("k")),
      await rejection(storage.get("k")),
      await rejection(storage.put("k", "x", { ifMatch: '"e"' })),
      await rejection(storage.get("k")),
      await rejection(storage.get("k")),
    ];
    for (const e of errors) {
      expectClean(e.message);
      expectClean(JSON.stringify(e));
      expectClean(JSON.stringify(e.toJSON()));
      expectClean(String(e.stack));
      expectClean(inspect(e, { depth: 5 }));
    }
    expect(errors[0]!.message).toContain("[redacted]");
    expectClean(JSON.stringify(storage));
    expectClean(inspect(storage, { depth: 5, showHidden: true }));
    expectClean(String(storage.name));
  });

  it("not in configuration errors", () => {
    const base = { bucket: "jobs", accessKeyId: ACCESS, secretAccessKey: SECRET };
    const messages = [
      `http://${ACCESS}:${SECRET}@127.0.0.1:9000`,
      `not a url ${SECRET}`,
      `ftp://${SECRET}`,
    ].map((endpoint) => {
      try {
        new S3Storage({ ...base, endpoint });
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error("expected a ConfigError");
    });
    for (const m of messages) expectClean(m);
  });
});

describe("configuration", () => {
  const base = { bucket: "jobs", accessKeyId: ACCESS, secretAccessKey: SECRET };
  const configError = (options: Partial<S3StorageOptions>): ConfigError => {
    try {
      new S3Storage({ ...base, ...options } as S3StorageOptions);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return e as ConfigError;
    }
    throw new Error("expected a ConfigError");
  };

  it.each([
    [{ bucket: "" }, "OQ_BUCKET"],
    [{ bucket: "a/b" }, "OQ_BUCKET"],
    [{ accessKeyId: "" }, "AWS_ACCESS_KEY_ID"],
    [{ secretAccessKey: " " }, "AWS_SECRET_ACCESS_KEY"],
    [{ endpoint: "localhost:9000:x" }, "OQ_ENDPOINT"],
    [{ endpoint: "not a url" }, "OQ_ENDPOINT"],
    [{ endpoint: "ftp://host" }, "OQ_ENDPOINT"],
    [{ endpoint: "http://u:p@host" }, "OQ_ENDPOINT"],
    [{ endpoint: "http://host/?x=1" }, "OQ_ENDPOINT"],
    [{ region: "eu west" }, "OQ_REGION"],
    [{ retries: { attempts: 0 } }, "attempts"],
    [{ requestTimeoutMs: 0 }, "requestTimeoutMs"],
  ])("%j is a ConfigError naming %s", (options, name) => {
    expect(configError(options as Partial<S3StorageOptions>).message).toContain(name);
  });
});
