/**
 * `nodeFetch`, the S3 driver's client over `node:http` on Node: what the driver relies on from
 * `fetch` (bodies of bytes, redirects not followed, an abort covering the body, errors the
 * driver's mapping knows) against a local server that misbehaves on purpose.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import { createServer as createSecureServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { AmbiguousWriteError, UnavailableError } from "../../src/errors.ts";
import { nodeFetch } from "../../src/runtime/node-fetch.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import { bundled } from "../helpers/bundle.ts";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** Serve `handle` on 127.0.0.1; count connections. */
async function serve(
  handle: (body: Buffer, res: ServerResponse, url: string) => void,
): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(Buffer.concat(chunks), res, req.url ?? ""));
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, connections: () => connections };
}

describe("nodeFetch", () => {
  it("sends the body with its length, reads headers case-insensitively, reuses one connection", async () => {
    const seen: string[] = [];
    const { url, connections } = await serve((body, res) => {
      seen.push(body.toString());
      res.setHeader("ETag", '"e1"');
      res.setHeader("X-Many", ["a", "b"]);
      res.end(`got ${body.length}`);
    });
    const fetch = nodeFetch();
    for (const text of ["héllo", ""]) {
      const res = await fetch(`${url}/k`, {
        method: "PUT",
        headers: { "x-test": "1" },
        body: new TextEncoder().encode(text),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("etag")).toBe('"e1"');
      expect(res.headers.get("X-MANY")).toBe("a, b");
      expect(res.headers.get("absent")).toBeNull();
      expect(await res.text()).toBe(`got ${new TextEncoder().encode(text).length}`);
    }
    expect(seen).toEqual(["héllo", ""]);
    expect(connections()).toBe(1);
  });

  it("returns a redirect as it is, without following it", async () => {
    const { url } = await serve((_b, res, path) => {
      if (path === "/elsewhere") res.end("followed");
      else res.writeHead(301, { Location: "/elsewhere" }).end("moved");
    });
    const res = await nodeFetch()(`${url}/k`, { method: "GET", redirect: "manual" });
    expect(res.status).toBe(301);
    expect(res.headers.get("location")).toBe("/elsewhere");
    expect(await res.text()).toBe("moved");
  });

  it("a connection dropped mid-body rejects the body read with ECONNRESET", async () => {
    const { url } = await serve((_b, res) => {
      res.writeHead(200, { "Content-Length": "100" });
      res.write("partial");
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const res = await nodeFetch()(`${url}/k`, { method: "GET" });
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toMatchObject({ code: "ECONNRESET" });
  });

  it("the abort signal covers a body that never ends, rejecting with its reason", async () => {
    const { url } = await serve((_b, res) => {
      res.writeHead(200, { "Content-Length": "100" });
      res.write("slow");
    });
    const res = await nodeFetch()(`${url}/k`, {
      method: "GET",
      signal: AbortSignal.timeout(100),
    });
    await expect(res.arrayBuffer()).rejects.toMatchObject({ name: "TimeoutError" });
  });

  it("speaks HTTPS, trusting a private CA only when given it", async () => {
    // A self-signed certificate for 127.0.0.1, made here (openssl ships with Debian and CI).
    const dir = mkdtempSync(join(tmpdir(), "oq-tls-"));
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-keyout",
          join(dir, "key.pem"),
          "-out",
          join(dir, "cert.pem"),
        ],
        { stdio: "ignore" },
      );
      const cert = readFileSync(join(dir, "cert.pem"), "utf8");
      const secure = createSecureServer(
        { key: readFileSync(join(dir, "key.pem")), cert },
        (_req, res) => res.end("over tls"),
      );
      server = secure;
      await new Promise<void>((resolve) => secure.listen(0, "127.0.0.1", resolve));
      const url = `https://127.0.0.1:${(secure.address() as AddressInfo).port}/k`;
      const res = await nodeFetch({ ca: cert })(url, { method: "GET" });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("over tls");
      await expect(nodeFetch()(url, { method: "GET" })).rejects.toMatchObject({
        code: "DEPTH_ZERO_SELF_SIGNED_CERT",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("through the S3 driver: a refused connection is Unavailable, a CAS cut mid-answer ambiguous", async () => {
    const { url } = await serve((_b, res) => {
      res.socket?.destroy();
    });
    const storage = new S3Storage({
      endpoint: url,
      bucket: "b",
      accessKeyId: "k",
      secretAccessKey: "s",
      fetch: nodeFetch(),
      retries: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
    });
    await expect(storage.get("x")).rejects.toBeInstanceOf(UnavailableError);
    await expect(storage.put("x", "v", { ifMatch: '"e"' })).rejects.toBeInstanceOf(
      AmbiguousWriteError,
    );
    server?.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
    const refused = await storage.get("x").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UnavailableError);
    expect((refused as Error).message).toContain("connection refused");
  });

  it("reads bodies, bounded ones too, without loading Node's web streams (6 ms of every start)", async () => {
    const { url } = await serve((_b, res) => {
      res.setHeader("etag", '"e"');
      res.end("x".repeat(200_000));
    });
    const dir = mkdtempSync(join(tmpdir(), "oq-node-fetch-"));
    try {
      const entry = join(dir, "get.ts");
      const driver = join(import.meta.dirname, "../../src/storage/s3/driver.ts");
      const client = join(import.meta.dirname, "../../src/runtime/node-fetch.ts");
      writeFileSync(
        entry,
        [
          `import { S3Storage } from ${JSON.stringify(driver)};`,
          `import { nodeFetch } from ${JSON.stringify(client)};`,
          `const storage = new S3Storage({ endpoint: ${JSON.stringify(url)}, bucket: "b", accessKeyId: "k", secretAccessKey: "s", fetch: nodeFetch() });`,
          'const whole = await storage.get("k");',
          'const bounded = await storage.get("k", { maxBytes: 300_000 });',
          'const refused = await storage.get("k", { maxBytes: 1000 }).catch((e) => e.code);',
          "const streams = process.moduleLoadList.filter((m) => m.includes('webstreams/readablestream'));",
          "console.log(JSON.stringify({ whole: whole.body.length, bounded: bounded.body.length, refused, streams }));",
        ].join("\n"),
      );
      const run = promisify(execFile);
      const { stdout } = await run(process.execPath, [bundled(entry)]);
      expect(JSON.parse(stdout)).toEqual({
        whole: 200_000,
        bounded: 200_000,
        refused: "MALFORMED",
        streams: [],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
