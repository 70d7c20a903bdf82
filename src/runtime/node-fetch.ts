/**
 * The S3 driver's requests over `node:http` and `node:https` instead of the global `fetch`, for
 * Node only (Bun and Deno keep their own `fetch`).
 *
 * Why: on Node 20 the first `fetch` (or `Headers`) loads and starts undici, which costs a
 * starting worker 25-100 ms before its first request and about 10 MB of RSS for as long as it
 * runs (issue 15). It does only what the driver needs:
 * a body of bytes, no redirects followed (a 3xx comes back as it is, like `redirect: "manual"`),
 * the answer's body as a stream read ahead (cancelling it drops the connection), an
 * `AbortSignal` that also covers reading the body, and
 * connections kept alive for 4 s of idleness (undici's default), so a reused connection is
 * rarely one the server is closing.
 *
 * Errors keep the shapes the driver's error mapping reads: a socket error carries its `code`
 * (`ECONNREFUSED`, `ECONNRESET`, ...), an abort rejects with the signal's reason (a
 * `TimeoutError` for `AbortSignal.timeout`).
 *
 * The HTTP modules load on the first request, and plain HTTP comes from `_http_agent` and
 * `_http_client` (Node's own parts of `node:http`, listed in `builtinModules`): from Node 22 on,
 * `node:http` itself loads undici (38 ms and 15 MB on Node 24), which is what this client is for
 * avoiding. Where those parts are missing, `node:http` is used.
 *
 * @module
 */
import type http from "node:http";
import process from "node:process";
import { urlToHttpOptions } from "node:url";
import type { S3Fetch, S3Response } from "../storage/s3/options.ts";
import { NodeBody } from "./node-body.ts";

/** How long an idle kept-alive connection is kept, ms (undici's default keep-alive timeout). */
const IDLE_SOCKET_MS = 4000;

/** Options of {@link nodeFetch}. */
export interface NodeFetchOptions {
  /** Most connections per host at once. Defaults to no limit (as Node's `fetch`). */
  maxSockets?: number;
  /**
   * Certificates (PEM) to trust for HTTPS besides Node's own, for a server with a private CA
   * (a self-signed MinIO). Defaults to none; `NODE_EXTRA_CA_CERTS` works as well.
   */
  ca?: string | string[];
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

/** One scheme's way to send: its keep-alive agent and its `request`. */
interface Client {
  agent: http.Agent;
  request: (url: URL, options: http.RequestOptions) => http.ClientRequest;
}

/** The plain-HTTP client: Node's parts of `node:http` (see the module's note), else `node:http`. */
async function plainClient(agentOptions: http.AgentOptions): Promise<Client> {
  // Names in variables: TypeScript has no types for these modules, and bundlers leave them be.
  const agentModule = "node:_http_agent";
  const clientModule = "node:_http_client";
  try {
    const [{ Agent }, { ClientRequest }] = (await Promise.all([
      import(agentModule),
      import(clientModule),
    ])) as [{ Agent: typeof http.Agent }, { ClientRequest: typeof http.ClientRequest }];
    return {
      agent: new Agent(agentOptions),
      request: (url, options) => new ClientRequest({ ...urlToHttpOptions(url), ...options }),
    };
  } catch {
    const { default: plain } = await import("node:http");
    return { agent: new plain.Agent(agentOptions), request: plain.request };
  }
}

/** The HTTPS client (`node:https` loads no undici). */
async function secureClient(
  agentOptions: http.AgentOptions,
  ca: string | string[] | undefined,
): Promise<Client> {
  const { default: secure } = await import("node:https");
  const { rootCertificates } = await import("node:tls");
  // Given certificates are added to Node's roots, not put in their place.
  const extra = ca === undefined ? {} : { ca: [...rootCertificates, ...[ca].flat()] };
  return { agent: new secure.Agent({ ...agentOptions, ...extra }), request: secure.request };
}

/**
 * An {@link S3Fetch} over `node:http`/`node:https` with keep-alive agents of its own (one per
 * scheme per call of this function, made on its first request of that scheme).
 */
export function nodeFetch(options: NodeFetchOptions = {}): S3Fetch {
  const agentOptions = {
    keepAlive: true,
    timeout: IDLE_SOCKET_MS,
    maxSockets: options.maxSockets ?? Number.POSITIVE_INFINITY,
  };
  let plain: Promise<Client> | undefined;
  let secure: Promise<Client> | undefined;
  return async (url, init) => {
    const target = new URL(url);
    if (target.protocol === "https:") {
      secure ??= secureClient(agentOptions, options.ca);
      return request(target, init, await secure);
    }
    plain ??= plainClient(agentOptions);
    return request(target, init, await plain);
  };
}

function request(url: URL, init: RequestInit, client: Client): Promise<S3Response> {
  const signal = init.signal ?? undefined;
  const body = bodyBytes(init.body);
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-length"))
    headers["content-length"] = String(body.byteLength);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const req = client.request(url, { method: init.method ?? "GET", headers, agent: client.agent });
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
 * The answer of `res`: its body read ahead into a {@link NodeBody} (see there for why not a web
 * stream), whole for `arrayBuffer()`/`text()`, which a caller may never call.
 */
function answer(
  res: http.IncomingMessage,
  signal: AbortSignal | undefined,
  done: () => void,
): S3Response {
  const body = new NodeBody(res, (error) => (signal?.aborted ? signal.reason : error), done);
  return {
    status: res.statusCode ?? 0,
    headers: new ResponseHeaders(res.headers),
    body,
    arrayBuffer: async () => {
      const all = await body.whole();
      return all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
    },
    text: async () => new TextDecoder().decode(await body.whole()),
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

/** {@link runtimeFetch} as a `connect()` option: `{ fetch }` on Node, nothing elsewhere. */
export function runtimeFetchOption(): { fetch?: S3Fetch } {
  const fetch = runtimeFetch();
  return fetch === undefined ? {} : { fetch };
}
