import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { connect as connectLocal, FileStorage as FileStorageExport } from "../file.ts";
import { connect, resolveStorage } from "../src/connect.ts";
import { ConfigError } from "../src/errors.ts";
import { FileStorage } from "../src/runtime/file/storage.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { S3Storage } from "../src/storage/s3/driver.ts";

const creds = {
  AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
  AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

describe("connect", () => {
  it("reads an s3:// URL: bucket, prefix, endpoint and region", () => {
    const r = resolveStorage({
      url: "s3://jobs/team-a/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1",
      env: creds,
    });
    expect(r.storage).toBeInstanceOf(S3Storage);
    expect(r.storage.name).toContain("jobs");
    expect(r.prefix).toBe("team-a/");
  });

  it("reads OQ_* variables, with explicit options winning", () => {
    const env = {
      ...creds,
      OQ_BUCKET: "from-env",
      OQ_ENDPOINT: "http://127.0.0.1:9000",
      OQ_PREFIX: "p/",
    };
    expect(resolveStorage({ env }).storage.name).toContain("from-env");
    expect(resolveStorage({ env, bucket: "explicit" }).storage.name).toContain("explicit");
    expect(resolveStorage({ env, prefix: "q/" }).prefix).toBe("q/");
    expect(resolveStorage({ env: { OQ_URL: "memory:" } }).storage).toBeInstanceOf(MemoryStorage);
  });

  it("uses the file store for file: URLs and, with no bucket, ./.oq when a filesystem is available", () => {
    const opened: string[] = [];
    const openFile = (root: string) => {
      opened.push(root);
      return new MemoryStorage();
    };
    resolveStorage({ url: "file:./data", openFile });
    resolveStorage({ env: {}, openFile });
    expect(opened).toEqual(["./data", "./.oq"]);
  });

  it("says what to set when nothing is configured or the URL is bad", () => {
    expect(() => resolveStorage({ env: {} })).toThrow(ConfigError);
    expect(() => resolveStorage({ env: {} })).toThrow(/set OQ_BUCKET/);
    expect(() => resolveStorage({ url: "file:./x" })).toThrow(/oq\/file/);
    expect(() => resolveStorage({ url: "ftp://x" })).toThrow(/Unknown queue URL/);
    expect(() => resolveStorage({ url: "s3://bucket", env: {} })).toThrow(/AWS_ACCESS_KEY_ID/);
    // A URL without its bucket names the URL as what to fix (OQ_BUCKET does not fill it in).
    for (const url of ["s3://", "s3:///jobs", "s3://?endpoint=http://127.0.0.1:9000"])
      expect(() => resolveStorage({ url, env: { ...creds, OQ_BUCKET: "b" } })).toThrow(
        /names no bucket: use s3:\/\/bucket\/prefix/,
      );
    expect(() => resolveStorage({ url: "s3://b?endpoint=not a url", env: creds })).toThrow(
      ConfigError,
    );
    try {
      resolveStorage({ url: "s3://b?endpoint=::bad", env: creds });
    } catch (error) {
      expect(String(error)).not.toContain(creds.AWS_SECRET_ACCESS_KEY);
    }
  });

  it("reads every S3 variable: session token sent, OQ_FORCE_PATH_STYLE=false addresses the bucket by host", async () => {
    const calls: string[] = [];
    const { storage } = resolveStorage({
      env: {
        ...creds,
        OQ_BUCKET: "b1",
        OQ_ENDPOINT: "http://minio.local:9000",
        OQ_REGION: "eu-central-1",
        AWS_SESSION_TOKEN: "session-token-1",
        OQ_FORCE_PATH_STYLE: "false",
      },
      fetch: async (url, init) => {
        calls.push(url, new Headers(init.headers).get("x-amz-security-token") ?? "");
        return new Response(null, { status: 200, headers: { etag: '"e"' } });
      },
    });
    expect((storage as S3Storage).toJSON()).toEqual({
      name: "s3://b1",
      endpoint: "http://minio.local:9000",
      bucket: "b1",
      region: "eu-central-1",
      forcePathStyle: false,
    });
    await storage.put("k", "x");
    expect(calls).toEqual(["http://b1.minio.local:9000/k", "session-token-1"]);
  });

  it("reads OQ_FORCE_PATH_STYLE and AWS_SESSION_TOKEN beside an s3:// URL too", async () => {
    const calls: string[] = [];
    const { storage } = resolveStorage({
      url: "s3://b2/p?endpoint=http://minio.local:9000",
      env: { ...creds, AWS_SESSION_TOKEN: "session-token-2", OQ_FORCE_PATH_STYLE: "false" },
      fetch: async (url, init) => {
        calls.push(url, new Headers(init.headers).get("x-amz-security-token") ?? "");
        return new Response(null, { status: 200, headers: { etag: '"e"' } });
      },
    });
    expect((storage as S3Storage).forcePathStyle).toBe(false);
    await storage.put("k", "x");
    expect(calls).toEqual(["http://b2.minio.local:9000/k", "session-token-2"]);
  });

  it("defaults the S3 variables to AWS, treats empty values as unset and falls back to AWS_REGION", () => {
    const empty = { ...creds, OQ_ENDPOINT: "", OQ_REGION: "", AWS_SESSION_TOKEN: "" };
    const storage = resolveStorage({ env: { ...empty, OQ_BUCKET: "b" } }).storage as S3Storage;
    expect(storage.endpoint).toBe("https://s3.us-east-1.amazonaws.com");
    expect(storage.forcePathStyle).toBe(false);
    expect(storage.region).toBe("us-east-1");
    const regional = resolveStorage({ env: { ...empty, OQ_BUCKET: "b", AWS_REGION: "eu-west-3" } });
    expect((regional.storage as S3Storage).region).toBe("eu-west-3");
    const pathStyle = resolveStorage({
      env: { ...creds, OQ_BUCKET: "b", OQ_FORCE_PATH_STYLE: "1" },
    });
    expect((pathStyle.storage as S3Storage).forcePathStyle).toBe(true);
  });

  it.each([
    [{ OQ_BUCKET: "b" }, "AWS_ACCESS_KEY_ID"],
    [{ OQ_BUCKET: "b", AWS_ACCESS_KEY_ID: creds.AWS_ACCESS_KEY_ID }, "AWS_SECRET_ACCESS_KEY"],
    [{ ...creds, OQ_BUCKET: "b", OQ_ENDPOINT: "::" }, "OQ_ENDPOINT"],
  ])("S3 variables %j: a ConfigError naming %s", (env, name) => {
    expect(() => resolveStorage({ env })).toThrow(ConfigError);
    expect(() => resolveStorage({ env })).toThrow(name);
  });

  it("opens a working queue on a file store by URL", async () => {
    const root = mkdtempSync(join(tmpdir(), "oq-connect-"));
    try {
      const queue = await connect({
        url: `file:${root}`,
        openFile: (r) => new FileStorage({ root: r }),
      });
      const t = await queue.submit("x", 1);
      expect((await queue.get(t.id)).input).toBe(1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("oq/file's connect reads the environment and opens file: URLs without further setup", async () => {
    const root = mkdtempSync(join(tmpdir(), "oq-connect-"));
    const saved = process.env.OQ_URL;
    process.env.OQ_URL = `file:${root}`;
    try {
      const queue = await connectLocal();
      expect(queue.storage).toBeInstanceOf(FileStorageExport);
      const t = await queue.submit("x", 2);
      const again = await connectLocal(`file:${root}`);
      expect((await again.get(t.id)).input).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.OQ_URL;
      else process.env.OQ_URL = saved;
      rmSync(root, { recursive: true, force: true });
    }
  });
});

/** The message `fn` throws, or "" when it does not throw. */
function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return String(error);
  }
  return "";
}

describe("connect refuses what it would misread (bad-input probe)", () => {
  it("never echoes the user info of a queue URL it refuses", async () => {
    for (const url of [
      "https://AKIAXXX:TOPSECRET@example.com/bucket",
      "s3://AKIAXXX:TOPSECRET@/p",
      "s3://AKIAXXX:TOP/SECRET@bucket/p",
      "s3://AKIAXXX:TOP@SECRET@bucket/p",
      "s3://AKIAXXX:TOPSECRET@bucket/p",
      "file://AKIAXXX:TOPSECRET@host/x",
    ]) {
      const message = thrown(() => resolveStorage({ url, env: creds, openFile: memoryFile }));
      expect(message, url).toMatch(/ConfigError/);
      expect(message, url).not.toMatch(/AKIAXXX|TOP/);
    }
    const refused = await connect({ url: "s3://AKIAXXX:TOPSECRET@/p", env: creds }).catch(String);
    expect(refused).toMatch(/ConfigError: Malformed queue URL s3:\/\/\[redacted\]@\/p/);
    expect(refused).not.toMatch(/AKIAXXX|TOP/);
  });

  it("refuses credentials in an s3:// URL, saying where they go", () => {
    const message = thrown(() => resolveStorage({ url: "s3://KEY:SECRET@bucket/p", env: creds }));
    expect(message).toMatch(/holds credentials.*AWS_ACCESS_KEY_ID/);
    expect(message).not.toMatch(/KEY:|SECRET@/);
  });

  it("refuses unknown query parameters of an s3:// URL, naming the known ones and no value", () => {
    for (const query of ["regoin=eu-west-1", "secretAccessKey=TOPSECRET"]) {
      const message = thrown(() =>
        resolveStorage({ url: `s3://b/p?endpoint=http://127.0.0.1:9000&${query}`, env: creds }),
      );
      expect(message).toMatch(/Unknown parameter .*use endpoint, region, pathStyle/);
      expect(message).not.toMatch(/TOPSECRET|eu-west-1/);
    }
    expect(() =>
      resolveStorage({ url: "s3://b/p?endpoint=http://h:9000&region=r&pathStyle=1", env: creds }),
    ).not.toThrow();
  });

  it("refuses a file URL with a host instead of using its path from the root", () => {
    const opened: string[] = [];
    const openFile = (root: string) => {
      opened.push(root);
      return new MemoryStorage();
    };
    for (const url of ["file://./rel", "file://somehost/tmp/x"])
      expect(() => resolveStorage({ url, openFile })).toThrow(/names a host.*file:\.\/dir/);
    resolveStorage({ url: "file:///abs/dir", openFile });
    resolveStorage({ url: "file://localhost/abs/dir", openFile });
    expect(opened).toEqual(["/abs/dir", "/abs/dir"]);
  });

  it("refuses non-boolean options and unknown words in yes/no variables", async () => {
    for (const options of [
      { allowNoVersioning: "false" },
      { forcePathStyle: "no" },
      { skipVersioningCheck: 1 },
    ])
      expect(() =>
        resolveStorage({ ...(options as object), env: { ...creds, OQ_BUCKET: "b" } }),
      ).toThrow(/use true or false/);
    expect(() =>
      resolveStorage({ env: { ...creds, OQ_BUCKET: "b", OQ_FORCE_PATH_STYLE: "maybe" } }),
    ).toThrow(/OQ_FORCE_PATH_STYLE "maybe": use 1, true, yes or 0, false, no/);
    expect(() =>
      resolveStorage({ url: "s3://b?endpoint=http://h:9000&pathStyle=maybe", env: creds }),
    ).toThrow(/pathStyle "maybe"/);
    await expect(
      connect({ url: "memory:", env: { OQ_ALLOW_NO_VERSIONING: "maybe" } }),
    ).rejects.toThrow(/OQ_ALLOW_NO_VERSIONING "maybe"/);
    const noPathStyle = resolveStorage({
      env: { ...creds, OQ_BUCKET: "b", OQ_ENDPOINT: "http://h:9000", OQ_FORCE_PATH_STYLE: "No" },
    });
    expect((noPathStyle.storage as S3Storage).forcePathStyle).toBe(false);
  });

  it("refuses location options beside a URL that settles them", () => {
    const openFile = () => new MemoryStorage();
    expect(() => resolveStorage({ url: "memory:", bucket: "foo" })).toThrow(
      /url and bucket .*drop one/,
    );
    expect(() => resolveStorage({ url: "file:./x", bucket: "foo", openFile })).toThrow(
      /url and bucket/,
    );
    expect(() => resolveStorage({ url: "memory:", endpoint: "http://h:9000" })).toThrow(
      /url and endpoint/,
    );
    expect(() => resolveStorage({ url: "s3://a/p", bucket: "b", env: creds })).toThrow(
      /url and bucket .*its bucket is the host/,
    );
    // An s3:// URL leaves the endpoint and region to options.
    expect(() =>
      resolveStorage({ url: "s3://a/p", endpoint: "http://h:9000", region: "r", env: creds }),
    ).not.toThrow();
  });
});

/** A file store opener for URLs that must be refused before it is called. */
function memoryFile(): MemoryStorage {
  return new MemoryStorage();
}
