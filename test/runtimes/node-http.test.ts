/**
 * The `node:http` adapter (src/runtime/node-http.ts): a web-standard handler served on a real
 * socket, requests and responses converted both ways, bodies bounded on the way in and streamed
 * on the way out.
 */
import { request as httpRequest } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import {
  type FetchHandler,
  type NodeHttpServer,
  serveNodeHttp,
} from "../../src/runtime/node-http.ts";

const servers: NodeHttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(handler: FetchHandler, options: Parameters<typeof serveNodeHttp>[1] = {}) {
  const server = await serveNodeHttp(handler, options);
  servers.push(server);
  return server;
}

/** A raw request, for what `fetch` will not send (a chosen Host header, an odd target). */
function raw(
  server: NodeHttpServer,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: server.port, path, headers, method: "GET" },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => {
          body += d.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("serveNodeHttp", () => {
  it("hands the handler the method, URL, headers and form body, and writes status, headers and body back", async () => {
    let seen: { method: string; url: string; header: string | null; form: string } | undefined;
    const server = await serve(async (request) => {
      const form = request.method === "POST" ? await request.formData() : undefined;
      seen = {
        method: request.method,
        url: request.url,
        header: request.headers.get("x-test"),
        form: String(form?.get("name") ?? ""),
      };
      const headers = new Headers({ "content-type": "text/html; charset=utf-8" });
      headers.append("set-cookie", "a=1; Path=/");
      headers.append("set-cookie", "b=2; Path=/");
      return new Response("<p>ok</p>", { status: 201, headers });
    });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    const response = await fetch(new URL("/tasks?status=failed", server.url), {
      method: "POST",
      headers: { "x-test": "yes", "content-type": "application/x-www-form-urlencoded" },
      body: "name=ada+l",
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"]);
    expect(await response.text()).toBe("<p>ok</p>");
    expect(seen).toEqual({
      method: "POST",
      url: `http://127.0.0.1:${server.port}/tasks?status=failed`,
      header: "yes",
      form: "ada l",
    });
  });

  it("takes the URL's host from the Host header, and keeps a target of //other.host as a path", async () => {
    const urls: string[] = [];
    const server = await serve((request) => {
      urls.push(request.url);
      return new Response("ok");
    });
    expect((await raw(server, "/x", { host: "dash.example:8080" })).status).toBe(200);
    expect((await raw(server, "//evil.example/y")).status).toBe(200);
    expect(urls).toEqual([
      "http://dash.example:8080/x",
      `http://127.0.0.1:${server.port}//evil.example/y`,
    ]);
    // A Host header that is not a host (userinfo, a path) is refused before the handler.
    expect((await raw(server, "/z", { host: "user@evil.example" })).status).toBe(400);
    expect(urls).toHaveLength(2);
  });

  it("answers 413 to a body over maxBodyBytes without calling the handler", async () => {
    let calls = 0;
    const server = await serve(
      () => {
        calls++;
        return new Response("ok");
      },
      { maxBodyBytes: 10 },
    );
    const small = await fetch(server.url, { method: "POST", body: "0123456789" });
    expect(small.status).toBe(200);
    const big = await fetch(server.url, { method: "POST", body: "0123456789x" });
    expect(big.status).toBe(413);
    // Sent in chunks without a Content-Length, so only counting the bytes can catch it.
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode("abcd"));
        controller.close();
      },
    });
    const streamed = await fetch(server.url, {
      method: "POST",
      body: chunks,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(calls).toBe(1);
  });

  it("streams the response body: the client reads the first chunk before the handler writes the second", async () => {
    let firstRead: () => void = () => {};
    const clientHasFirst = new Promise<void>((resolve) => {
      firstRead = resolve;
    });
    const server = await serve(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            async start(controller) {
              controller.enqueue(new TextEncoder().encode("first;"));
              // Buffering the whole body before sending would wait here for ever.
              await clientHasFirst;
              controller.enqueue(new TextEncoder().encode("second"));
              controller.close();
            },
          }),
        ),
    );
    const response = await fetch(server.url);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const first = await reader.read();
    expect(decoder.decode(first.value)).toBe("first;");
    firstRead();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += decoder.decode(value);
    }
    expect(rest).toBe("second");
  });

  it("answers 500 when the handler throws, and reports the error", async () => {
    const errors: unknown[] = [];
    const server = await serve(
      () => {
        throw new Error("boom");
      },
      { onError: (error) => errors.push(error) },
    );
    const response = await fetch(server.url);
    expect(response.status).toBe(500);
    expect(await response.text()).toBe("Internal Server Error\n");
    expect(errors).toEqual([expect.objectContaining({ message: "boom" })]);
  });

  it("aborts the request's signal when the client goes away", async () => {
    let aborted: () => void = () => {};
    const abortedSeen = new Promise<void>((resolve) => {
      aborted = resolve;
    });
    const server = await serve(
      (request) =>
        new Promise<Response>(() => {
          request.signal.addEventListener("abort", () => aborted());
        }),
    );
    const client = new AbortController();
    const pending = fetch(server.url, { signal: client.signal }).catch(() => "gone");
    await new Promise((r) => setTimeout(r, 100));
    client.abort();
    expect(await pending).toBe("gone");
    await abortedSeen;
  });

  it("sends no body to HEAD, and close() stops it listening", async () => {
    const server = await serve(() => new Response("body", { headers: { "x-a": "1" } }));
    const head = await fetch(server.url, { method: "HEAD" });
    expect(head.headers.get("x-a")).toBe("1");
    expect(await head.text()).toBe("");
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    await expect(fetch(server.url)).rejects.toThrow();
  });
});
