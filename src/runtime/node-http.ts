/**
 * Serving a web-standard handler (`(request: Request) => Promise<Response>`, as the dashboard and
 * a metrics endpoint are written, so that Bun, Deno and Workers serve them as they are) on
 * `node:http`, for the CLI and anyone embedding oq in a Node process.
 *
 * The request body is read into memory up to a limit before the handler sees it (413 beyond): the
 * handlers served here take small forms, and a bounded read is what keeps a client that sends a
 * gigabyte from costing one. The response body is streamed with backpressure, and the request's
 * `signal` aborts when the client goes away.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { joinChunks } from "../util/bytes.ts";

/** A web-standard request handler. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Options of {@link serveNodeHttp}. */
export interface ServeOptions {
  /** Address to bind (default `127.0.0.1`: this machine only). */
  host?: string;
  /** Port to bind (default 0: any free port; {@link NodeHttpServer.url} says which). */
  port?: number;
  /** Largest request body accepted, bytes (default 1 MiB); a larger one gets 413. */
  maxBodyBytes?: number;
  /** Called with what a handler threw (the client gets a plain 500); default `console.error`. */
  onError?: (error: unknown) => void;
}

/** A running server started by {@link serveNodeHttp}. */
export interface NodeHttpServer {
  /** The base URL it answers on, ending in `/` (`http://127.0.0.1:4000/`). */
  readonly url: string;
  /** The port it is bound to. */
  readonly port: number;
  /** The underlying `node:http` server. */
  readonly server: Server;
  /** Stop accepting connections, close idle and open ones, and resolve once closed. */
  close(): Promise<void>;
}

/** Default {@link ServeOptions.maxBodyBytes}: 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** A request body larger than the limit: answered 413 without calling the handler. */
class BodyTooLarge extends Error {}

/**
 * Serve `handler` on `node:http` at `host`:`port` and resolve once it listens. Every request is
 * converted to a `Request` (URL from the `Host` header, so it is the origin the client used),
 * passed to the handler, and its `Response` is written back.
 */
export async function serveNodeHttp(
  handler: FetchHandler,
  options: ServeOptions = {},
): Promise<NodeHttpServer> {
  const host = options.host ?? "127.0.0.1";
  const onError = options.onError ?? ((error: unknown) => console.error(error));
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const server = createServer((req, res) => {
    handleNodeRequest(handler, req, res, { maxBodyBytes, onError });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}/`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}

/**
 * Answer one `node:http` request with `handler`: the piece to use when a `node:http` server
 * already exists. Never rejects; handler failures become a 500 and reach `onError`.
 */
export function handleNodeRequest(
  handler: FetchHandler,
  req: IncomingMessage,
  res: ServerResponse,
  options: { maxBodyBytes?: number; onError?: (error: unknown) => void } = {},
): void {
  const onError = options.onError ?? ((error: unknown) => console.error(error));
  const aborted = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) aborted.abort();
  });
  void (async () => {
    let request: Request;
    try {
      request = await toRequest(req, {
        maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        signal: aborted.signal,
      });
    } catch (error) {
      const tooLarge = error instanceof BodyTooLarge;
      return plain(res, tooLarge ? 413 : 400, tooLarge ? "Request body too large" : "Bad request");
    }
    let response: Response;
    try {
      response = await handler(request);
    } catch (error) {
      onError(error);
      return plain(res, 500, "Internal Server Error");
    }
    try {
      await writeResponse(res, response, req.method === "HEAD");
    } catch (error) {
      // The client went away mid-body, or the body's stream failed: nothing left to answer.
      if (!aborted.signal.aborted) onError(error);
      res.destroy();
    }
  })();
}

/**
 * A `Request` for a `node:http` request: its method, URL (scheme `http`, host from the `Host`
 * header), headers and body (read up to `maxBodyBytes`; beyond it rejects with a 413 error).
 */
export async function toRequest(
  req: IncomingMessage,
  options: { maxBodyBytes: number; signal?: AbortSignal },
): Promise<Request> {
  const host = req.headers.host ?? "localhost";
  // Only a host name or address and a port: anything else would change what the URL means.
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(host)) {
    throw new Error("bad Host header");
  }
  // Concatenated, not resolved against a base: a target of `//other.host/x` stays a path.
  const target = req.url ?? "/";
  if (!target.startsWith("/")) throw new Error("request target is not a path");
  const url = new URL(`http://${host}${target}`);
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (!name.startsWith(":")) headers.append(name, req.rawHeaders[i + 1]!);
  }
  const method = req.method ?? "GET";
  const init: RequestInit = { method, headers };
  if (options.signal !== undefined) init.signal = options.signal;
  if (method !== "GET" && method !== "HEAD") init.body = await readBody(req, options.maxBodyBytes);
  return new Request(url, init);
}

/** The whole body of `req`, or a {@link BodyTooLarge} rejection past `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw new BodyTooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return joinChunks(chunks, size);
}

/**
 * Write `response` to `res`: status, headers (each `Set-Cookie` on its own line) and the body
 * streamed chunk by chunk, waiting for `drain` when the socket's buffer is full. `headOnly`
 * (a HEAD request) sends the headers and cancels the body.
 */
export async function writeResponse(
  res: ServerResponse,
  response: Response,
  headOnly = false,
): Promise<void> {
  res.statusCode = response.status;
  if (response.statusText !== "") res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") res.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (response.body === null || headOnly) {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const gone = () => void reader.cancel().catch(() => {});
  res.once("close", gone);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.destroyed) return;
      if (!res.write(value)) await drained(res);
    }
    await new Promise<void>((resolve) => res.end(resolve));
  } finally {
    res.off("close", gone);
  }
}

/** Resolves when `res` can take more data (or is closed). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** A short plain-text answer, unless the response has begun. */
function plain(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", connection: "close" });
  res.end(`${text}\n`);
}
