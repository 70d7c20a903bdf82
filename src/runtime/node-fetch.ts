/**
 * The S3 driver's requests over `node:http` and `node:https` instead of the global `fetch`, for
 * Node only (Bun and Deno keep their own `fetch`).
 *
 * Why: on Node 20 the first `fetch` (or `Headers`) loads and starts undici, which costs a
 * starting worker 25-100 ms before its first request and about 10 MB of RSS for as long as it
 * runs (issue 15); `node:http` is already in the process. It does only what the driver needs:
 * a body of bytes, no redirects followed (a 3xx comes back as it is, like `redirect: "manual"`),
 * the whole answer read into memory, an `AbortSignal` that also covers reading the body, and
 * connections kept alive for 4 s of idleness (undici's default), so a reused connection is
 * rarely one the server is closing.
 *
 * Errors keep the shapes the driver's error mapping reads: a socket error carries its `code`
 * (`ECONNREFUSED`, `ECONNRESET`, ...), an abort rejects with the signal's reason (a
 * `TimeoutError` for `AbortSignal.timeout`).
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import process from "node:process";
import type { S3Fetch, S3Response } from "../storage/s3/options.ts";

/** How long an idle kept-alive connection is kept, ms (undici's default keep-alive timeout). */
const IDLE_SOCKET_MS = 4000;

/** Options of {@link nodeFetch}. */
export interface NodeFetchOptions {
  /** Most connections per host at once. Defaults to no limit (as Node's `fetch`). */
  maxSockets?: number;
}

/** Response headers as `Headers.get` reads them: case-insensitive, repeated values joined. */
class ResponseHeaders {
  readonly #raw: http.IncomingHttpHeaders;
  constructor(raw: http.IncomingHttpHeaders) {
    this.#raw = raw;
  }
  get(name: string): string | null {
    const value = this.#raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(", ") : value;
  }
}

/**
 * An {@link S3Fetch} over `node:http`/`node:https` with keep-alive agents of its own (one pair
 * per call of this function).
 */
export function nodeFetch(options: NodeFetchOptions = {}): S3Fetch {
  const agentOptions = {
    keepAlive: true,
    timeout: IDLE_SOCKET_MS,
    maxSockets: options.maxSockets ?? Number.POSITIVE_INFINITY,
  };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  return (url, init) => request(new URL(url), init, agents);
}

function request(
  url: URL,
  init: RequestInit,
  agents: { http: http.Agent; https: https.Agent },
): Promise<S3Response> {
  const signal = init.signal ?? undefined;
  const body = bodyBytes(init.body);
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-length"))
    headers["content-length"] = String(body.byteLength);
  const secure = url.protocol === "https:";
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const req = (secure ? https : http).request(url, {
      method: init.method ?? "GET",
      headers,
      agent: secure ? agents.https : agents.http,
    });
    const onAbort = () => req.destroy(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    req.on("error", (error) => {
      done();
      reject(signal?.aborted ? signal.reason : error);
    });
    req.on("response", (res) => resolve(answer(res, signal, done)));
    req.end(body);
  });
}

/**
 * The answer of `res`. Its body is read at once (so the socket goes back to the pool); the
 * outcome is kept for `arrayBuffer()`/`text()`, which a caller may never call. `done` runs when
 * the body ended or failed.
 */
function answer(
  res: http.IncomingMessage,
  signal: AbortSignal | undefined,
  done: () => void,
): S3Response {
  const chunks: Buffer[] = [];
  const failure = (error: unknown) => (signal?.aborted ? signal.reason : error);
  const read = new Promise<Uint8Array>((ok, fail) => {
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.on("end", () => {
      done();
      ok(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    res.on("error", (error) => {
      done();
      fail(failure(error));
    });
    res.on("close", () => {
      done();
      if (!res.complete) fail(failure(Object.assign(new Error("aborted"), { code: "ECONNRESET" })));
    });
  });
  read.catch(() => {}); // seen by whoever reads the body; unread, it is not an error
  return {
    status: res.statusCode ?? 0,
    headers: new ResponseHeaders(res.headers),
    arrayBuffer: async () => {
      const all = await read;
      return all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
    },
    text: async () => new TextDecoder().decode(await read),
  };
}

/** The request body as bytes: the driver sends a `Uint8Array` or nothing. */
function bodyBytes(body: RequestInit["body"]): Uint8Array | undefined {
  if (body === undefined || body === null) return undefined;
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return new TextEncoder().encode(body);
  throw new TypeError("nodeFetch sends a Uint8Array or string body only");
}

let shared: S3Fetch | undefined;

/**
 * The S3 fetch for the Node-specific entry points (`oq/file`, the CLI): one shared
 * {@link nodeFetch} on Node; undefined (the global `fetch`) on Bun and Deno, which also run them.
 */
export function runtimeFetch(): S3Fetch | undefined {
  if (process.versions.bun !== undefined || process.versions.deno !== undefined) return undefined;
  shared ??= nodeFetch();
  return shared;
}
