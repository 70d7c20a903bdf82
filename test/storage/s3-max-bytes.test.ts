/**
 * `GetOptions.maxBytes` in the S3 driver: an object over the bound is refused without reading
 * its body past the bound. Proven with an injected `fetch` whose body stream counts the bytes
 * pulled from it (an honest, a missing and an understated `Content-Length`), and with a real
 * HTTP server that counts the bytes it managed to send, through both HTTP clients the driver runs
 * on (the global `fetch` and `node:http`).
 */
import { createServer, type Server } from "node:http";
import { describe, expect, it } from "vitest";
import { MalformedObjectError } from "../../src/errors.ts";
import { nodeFetch } from "../../src/runtime/node-fetch.ts";
import { MAX_ERROR_BODY_BYTES } from "../../src/storage/s3/body.ts";
import { S3Storage } from "../../src/storage/s3/driver.ts";
import type { S3Fetch, S3Response } from "../../src/storage/s3/options.ts";
import { rejection } from "../helpers/rejection.ts";

const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;

/** A body of `total` bytes in 64 KiB chunks, made as they are pulled, counting them. */
function countedBody(total: number) {
  const seen = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const n = Math.min(CHUNK, total - seen.pulled);
        if (n <= 0) {
          controller.close();
          return;
        }
        seen.pulled += n;
        controller.enqueue(new Uint8Array(n).fill(32));
      },
      cancel() {
        seen.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

/** A driver whose every request is answered by `reply`; `calls` counts the requests. */
function driver(reply: () => S3Response) {
  const calls = { n: 0 };
  const fetch: S3Fetch = async () => {
    calls.n++;
    return reply();
  };
  const storage = new S3Storage({
    endpoint: "http://127.0.0.1:9",
    bucket: "jobs",
    accessKeyId: "oq-test-key",
    secretAccessKey: "oq-test-secret-value",
    fetch,
    retries: { attempts: 3, sleep: async () => {} },
  });
  return { storage, calls };
}

const headers = (extra: Record<string, string> = {}) => ({ etag: '"e1"', ...extra });

describe("s3 driver, error answers, with an injected fetch", () => {
  it("reads at most the first 64 KiB of an error answer's body, on every try", async () => {
    const bodies: ReturnType<typeof countedBody>[] = [];
    const { storage, calls } = driver(() => {
      const body = countedBody(40 * MiB);
      bodies.push(body);
      return new Response(body.stream, {
        status: 502,
        headers: { "content-type": "text/html", "content-length": String(40 * MiB) },
      });
    });
    const e = await rejection(storage.get("tasks/a.json"));
    expect(e.code).toBe("STORAGE");
    expect(e.message).toContain("502");
    expect(calls.n).toBe(3); // retried, as any 5xx
    for (const body of bodies) {
      expect(body.seen.pulled).toBeLessThanOrEqual(MAX_ERROR_BODY_BYTES + CHUNK);
      expect(body.seen.cancelled).toBe(true);
    }
  });

  it("still reads a small error answer whole", async () => {
    const xml =
      '<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>';
    const { storage } = driver(() => new Response(xml, { status: 403 }));
    const e = await rejection(storage.get("tasks/a.json"));
    expect(e.message).toContain("AccessDenied");
  });
});

describe("s3 driver, maxBytes, with an injected fetch", () => {
  it("refuses an object whose Content-Length is over the bound before pulling its body", async () => {
    const body = countedBody(40 * MiB);
    const { storage, calls } = driver(
      () =>
        new Response(body.stream, {
          headers: headers({ "content-length": String(40 * MiB) }),
        }),
    );
    const e = await rejection(storage.get("tasks/big.json", { maxBytes: MiB }));
    expect(e).toBeInstanceOf(MalformedObjectError);
    expect(e.code).toBe("MALFORMED");
    expect(e.key).toBe("tasks/big.json");
    expect(e.message).toContain(`${40 * MiB} bytes`);
    expect(e.message).toContain(`${MiB}-byte bound`);
    expect(body.seen.pulled).toBeLessThanOrEqual(CHUNK);
    expect(body.seen.cancelled).toBe(true);
    // Never retried: the same object would be refused again.
    expect(calls.n).toBe(1);
  });

  for (const [what, length] of [
    ["no Content-Length", undefined],
    ["an understated Content-Length", "10"],
  ] as const) {
    it(`counts the body of a response with ${what} and cancels it past the bound`, async () => {
      const body = countedBody(40 * MiB);
      const { storage, calls } = driver(
        () =>
          new Response(body.stream, {
            headers: headers(length === undefined ? {} : { "content-length": length }),
          }),
      );
      const e = await rejection(storage.get("k", { maxBytes: MiB }));
      expect(e).toBeInstanceOf(MalformedObjectError);
      expect(e.key).toBe("k");
      expect(e.message).toContain(`more than ${MiB} bytes`);
      expect(body.seen.pulled).toBeLessThanOrEqual(MiB + 2 * CHUNK);
      expect(body.seen.cancelled).toBe(true);
      expect(calls.n).toBe(1);
    });
  }

  it("reads a body under and at the bound whole, with or without Content-Length", async () => {
    for (const length of [undefined, String(3 * CHUNK)]) {
      for (const maxBytes of [3 * CHUNK, 3 * CHUNK + 1]) {
        const body = countedBody(3 * CHUNK);
        const { storage } = driver(
          () =>
            new Response(body.stream, {
              headers: headers(length === undefined ? {} : { "content-length": length }),
            }),
        );
        const got = await storage.get("k", { maxBytes });
        expect(got.body.length).toBe(3 * CHUNK);
        expect(got.etag).toBe('"e1"');
      }
    }
  });

  it("with a client of its own that has no body stream: refuses by Content-Length unread, else after reading", async () => {
    let read = 0;
    const answer = (length: string | null, size: number): S3Response => ({
      status: 200,
      headers: { get: (name) => ({ etag: '"e1"', "content-length": length })[name] ?? null },
      arrayBuffer: async () => {
        read++;
        return new ArrayBuffer(size);
      },
      text: async () => "",
    });
    const honest = driver(() => answer(String(5 * MiB), 5 * MiB));
    expect(await rejection(honest.storage.get("k", { maxBytes: MiB }))).toBeInstanceOf(
      MalformedObjectError,
    );
    expect(read).toBe(0);
    const silent = driver(() => answer(null, 2 * MiB));
    const e = await rejection(silent.storage.get("k", { maxBytes: MiB }));
    expect(e).toBeInstanceOf(MalformedObjectError);
    expect(e.message).toContain(`${2 * MiB} bytes`);
    expect((await silent.storage.get("k", { maxBytes: 2 * MiB })).body.length).toBe(2 * MiB);
  });
});

/**
 * A server answering every request with a 200 and a body of `total` bytes, written as fast as the
 * socket takes it and stopped when the client goes away; `sent` is what it managed to write.
 */
async function bigServer(total: number, withLength: boolean) {
  const state = { sent: 0, closed: Promise.resolve() };
  const server: Server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, {
      etag: '"e1"',
      ...(withLength ? { "content-length": String(total) } : {}),
    });
    const chunk = Buffer.alloc(CHUNK, 32);
    let gone = false;
    state.closed = new Promise((resolve) => res.on("close", () => resolve()));
    res.on("close", () => {
      gone = true;
    });
    const write = () => {
      while (!gone && state.sent < total) {
        state.sent += CHUNK;
        if (!res.write(chunk)) {
          res.once("drain", write);
          return;
        }
      }
      if (!gone) res.end();
    };
    write();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  const close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return { state, port, close };
}

const clients: { name: string; fetch?: S3Fetch }[] = [
  { name: "fetch" },
  { name: "node:http", fetch: nodeFetch() },
];

for (const client of clients) {
  describe(`s3 driver, maxBytes, against a real HTTP server through ${client.name}`, () => {
    for (const withLength of [true, false]) {
      it(`drops a 256 MiB body ${withLength ? "with" : "without"} Content-Length after little of it`, async () => {
        const total = 256 * MiB;
        const server = await bigServer(total, withLength);
        try {
          const storage = new S3Storage({
            endpoint: `http://127.0.0.1:${server.port}`,
            bucket: "jobs",
            accessKeyId: "oq-test-key",
            secretAccessKey: "oq-test-secret-value",
            ...(client.fetch === undefined ? {} : { fetch: client.fetch }),
          });
          const before = process.memoryUsage();
          const e = await rejection(storage.get("tasks/huge.json", { maxBytes: MiB }));
          expect(e).toBeInstanceOf(MalformedObjectError);
          expect(e.key).toBe("tasks/huge.json");
          await server.state.closed;
          // Socket buffers on both sides hold a few MB at most: nowhere near the whole body.
          expect(server.state.sent).toBeLessThan(32 * MiB);
          const after = process.memoryUsage();
          expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * MiB);
        } finally {
          await server.close();
        }
      });
    }
  });
}
