/**
 * A faulty network between S3 clients and a real S3 server (MinIO), for tests and
 * `scripts/chaos.ts --scenario network`: an HTTP proxy that forwards every request unchanged
 * (the signed `Host` header included, so signatures still verify) and, by probabilities and a
 * schedule the caller controls, does what real networks and load balancers do:
 *
 * - `reset`: forwards the request, reads the server's whole answer, sends the client only part
 *   of its bytes and then resets the connection (TCP RST).
 * - `lost-write`: the worst case. A write (PUT, POST, DELETE) is forwarded and COMMITS at the
 *   server, and its answer is lost: the connection is reset before a byte of it reaches the
 *   client, which sees an error for a write that happened.
 * - `delay`: the answer (of a request already carried out) reaches the client seconds late.
 * - `hold`: the request is never forwarded and never answered; the connection stays open until
 *   the client gives up (its request timeout).
 * - `slowdown`: during a {@link FaultProxy.storm}, requests are answered `503 SlowDown` with an
 *   S3 XML error body, without reaching the server (a load balancer shedding load).
 *
 * It counts what it did, per fault kind, and when every request arrived, so that a test can tell
 * how many requests per second reached it during a storm and before it.
 *
 * Node-only test support; never shipped.
 *
 * @module
 */
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** What the proxy can do to a request. */
export const NETWORK_FAULT_KINDS = ["reset", "lost-write", "delay", "hold", "slowdown"] as const;
/** A fault of the proxy. */
export type NetworkFaultKind = (typeof NETWORK_FAULT_KINDS)[number];
/** Faults done, by kind. */
export type NetworkFaultCounts = Record<NetworkFaultKind, number>;

/** How often the proxy does what (all probabilities per request, 0 by default). */
export interface NetworkFaultPlan {
  /** Share of answers cut after part of their bytes, then reset. */
  resetRate?: number;
  /** Share of writes (PUT, POST, DELETE) carried out whose whole answer is lost (reset). */
  lostWriteRate?: number;
  /** Share of answers delayed, and by how long (ms, uniform in the range). */
  delayRate?: number;
  /** Delay range, ms. Default 1000-3000. */
  delayMs?: [number, number];
  /** Share of requests held open, never forwarded nor answered. */
  holdRate?: number;
  /** At most this many holds over the proxy's life. Default unlimited. */
  maxHolds?: number;
  /** Share of requests answered 503 SlowDown during a storm. Default 1 (all). */
  stormRate?: number;
}

/** A storm of 503 SlowDown answers: when it ran, and the requests that arrived meanwhile. */
export interface StormRecord {
  /** Epoch ms it started. */
  startMs: number;
  /** Epoch ms it ended (or is planned to end). */
  endMs: number;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: the endpoint clients use instead of the server's. */
  readonly url: string;
  /** Faults done so far, by kind. */
  readonly faults: NetworkFaultCounts;
  /** Requests that arrived, in total. */
  readonly requests: number;
  /** Requests forwarded to the server (their effects happened, whatever the client saw). */
  readonly forwarded: number;
  /** Writes the server carried out (2xx) whose answer the client never got in full. */
  readonly committedWritesLost: number;
  /** Requests answered 503 SlowDown, by what they were (`GET tasks`, `LIST ready`, ...). */
  readonly slowdownsByRequest: Readonly<Record<string, number>>;
  /** Storms so far. */
  readonly storms: readonly StormRecord[];
  /** Replace the fault plan (faults already under way go on). */
  setPlan(plan: NetworkFaultPlan): void;
  /** Answer 503 SlowDown (to `stormRate` of the requests) from now for `ms`; resolves at its end. */
  storm(ms: number): Promise<void>;
  /** Requests that arrived in `[fromMs, toMs)` (epoch ms). */
  requestsBetween(fromMs: number, toMs: number): number;
  /** Requests per second that arrived in `[fromMs, toMs)`. */
  rate(fromMs: number, toMs: number): number;
  /** Close the proxy and every connection through it. */
  close(): Promise<void>;
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** The server's endpoint, e.g. `http://127.0.0.1:9000`. */
  upstream: string;
  /** The initial fault plan. Default: no faults. */
  plan?: NetworkFaultPlan;
  /** Randomness in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Clock, epoch ms. Default `Date.now`. */
  now?: () => number;
}

/** The S3 error body of a 503 SlowDown, as AWS sends it. */
export function slowDownBody(resource: string, requestId: string): string {
  const escaped = resource.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Resource>${escaped}</Resource><RequestId>${requestId}</RequestId></Error>`;
}

/** What an oq request is, roughly: `GET tasks`, `LIST ready`, `PUT workers`, `POST delete`. */
export function describeRequest(method: string, url: string): string {
  const [path = "", query = ""] = url.split("?");
  const area = /\/(tasks|ready|done|workers|schedules|_doctor)\//.exec(path)?.[1];
  const what = area ?? (path.endsWith("/queue.json") ? "manifest" : "bucket");
  if (method === "GET" && /(^|&)list-type=|(^|&)versions(=|&|$)/.test(query)) {
    const listed = /(?:^|&)prefix=([^&]*)/.exec(query)?.[1] ?? "";
    const under = /(tasks|ready|done|workers|schedules)(%2F|\/)/.exec(decodeURIComponent(listed));
    return `LIST ${under?.[1] ?? "bucket"}`;
  }
  if (method === "POST" && /(^|&)delete(=|&|$)/.test(query)) return "POST delete";
  return `${method} ${what}`;
}

interface Answer {
  status: number;
  statusMessage: string;
  rawHeaders: string[];
  body: Buffer;
}

/** Headers that describe one hop's connection or framing, not the answer (we re-frame it). */
const HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "content-length"]);
const WRITES = new Set(["PUT", "POST", "DELETE"]);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Start a fault proxy in front of `options.upstream` on a free local port. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(options.upstream);
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let plan: NetworkFaultPlan = { ...options.plan };
  const faults = Object.fromEntries(NETWORK_FAULT_KINDS.map((k) => [k, 0])) as NetworkFaultCounts;
  const arrivals: number[] = [];
  const storms: StormRecord[] = [];
  const sockets = new Set<Socket>();
  const slowdownsByRequest: Record<string, number> = {};
  let forwarded = 0;
  let committedWritesLost = 0;
  let requestIds = 0;
  const chance = (rate: number | undefined) => rate !== undefined && rate > 0 && random() < rate;
  const storming = (at: number) => storms.some((s) => at >= s.startMs && at < s.endMs);

  /** Forward the request (body already read) and read the whole answer. */
  const forward = (req: IncomingMessage, body: Buffer) =>
    new Promise<Answer>((resolve, reject) => {
      const out = request(
        {
          protocol: upstream.protocol,
          hostname: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          // The client signed the Host it sent (ours): MinIO checks the signature against it.
          headers: { ...req.headers, "content-length": String(body.length) },
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 502,
              statusMessage: res.statusMessage ?? "",
              rawHeaders: res.rawHeaders,
              body: Buffer.concat(chunks),
            }),
          );
          res.on("error", reject);
        },
      );
      out.on("error", reject);
      out.end(body);
    });

  const headersOf = (answer: Answer): [string, string][] => {
    const pairs: [string, string][] = [];
    for (let i = 0; i < answer.rawHeaders.length; i += 2) {
      const name = answer.rawHeaders[i]!;
      if (!HOP_HEADERS.has(name.toLowerCase())) pairs.push([name, answer.rawHeaders[i + 1]!]);
    }
    pairs.push(["Content-Length", String(answer.body.length)]);
    return pairs;
  };

  /** The answer as the bytes a server would send on the wire. */
  const wire = (answer: Answer): Buffer => {
    const head = [
      `HTTP/1.1 ${answer.status} ${answer.statusMessage}`,
      ...headersOf(answer).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ].join("\r\n");
    return Buffer.concat([Buffer.from(head, "latin1"), answer.body]);
  };

  /** Write `bytes` (maybe none) and reset the connection: the client sees a broken answer. */
  const cut = (res: ServerResponse, bytes: Buffer) => {
    const socket = res.socket;
    if (socket === null) return;
    const reset = () => socket.resetAndDestroy();
    if (bytes.length === 0) reset();
    else socket.write(bytes, () => setTimeout(reset, 5));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const at = now();
    arrivals.push(at);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (storming(at) && random() < (plan.stormRate ?? 1)) {
      faults.slowdown++;
      const what = describeRequest(req.method ?? "", req.url ?? "");
      slowdownsByRequest[what] = (slowdownsByRequest[what] ?? 0) + 1;
      const xml = slowDownBody(req.url ?? "/", `oqproxy${(++requestIds).toString(16)}`);
      res.writeHead(503, "Slow Down", {
        "Content-Type": "application/xml",
        "Content-Length": Buffer.byteLength(xml),
      });
      res.end(xml);
      return;
    }
    if (chance(plan.holdRate) && faults.hold < (plan.maxHolds ?? Number.POSITIVE_INFINITY)) {
      // Never forwarded, never answered: the client's timeout is the only way out.
      faults.hold++;
      return;
    }
    let answer: Answer;
    try {
      answer = await forward(req, body);
    } catch {
      res.socket?.destroy();
      return;
    }
    forwarded++;
    const committedWrite = WRITES.has(req.method ?? "") && answer.status < 300;
    if (WRITES.has(req.method ?? "") && chance(plan.lostWriteRate)) {
      faults["lost-write"]++;
      if (committedWrite) committedWritesLost++;
      cut(res, Buffer.alloc(0));
      return;
    }
    if (chance(plan.resetRate)) {
      faults.reset++;
      if (committedWrite) committedWritesLost++;
      const bytes = wire(answer);
      cut(res, bytes.subarray(0, Math.floor(random() * (bytes.length - 1))));
      return;
    }
    if (chance(plan.delayRate)) {
      faults.delay++;
      const [lo, hi] = plan.delayMs ?? [1000, 3000];
      await sleep(lo + random() * (hi - lo));
    }
    if (res.socket === null || res.socket.destroyed) return;
    res.writeHead(answer.status, answer.statusMessage, headersOf(answer).flat());
    res.end(answer.body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.socket?.destroy());
  });
  server.keepAliveTimeout = 10_000;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // A reset the client sends (its timeout aborting a held request) is not our error.
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  /** Index of the first arrival at or after `ms` (arrivals are in order). */
  const firstAtOrAfter = (ms: number) => {
    let lo = 0;
    let hi = arrivals.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (arrivals[mid]! < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const requestsBetween = (fromMs: number, toMs: number) =>
    firstAtOrAfter(toMs) - firstAtOrAfter(fromMs);

  return {
    url: `http://127.0.0.1:${port}`,
    faults,
    get requests() {
      return arrivals.length;
    },
    get forwarded() {
      return forwarded;
    },
    get committedWritesLost() {
      return committedWritesLost;
    },
    slowdownsByRequest,
    storms,
    setPlan(next) {
      plan = { ...next };
    },
    async storm(ms) {
      const startMs = now();
      storms.push({ startMs, endMs: startMs + ms });
      await sleep(ms);
    },
    requestsBetween,
    rate: (fromMs, toMs) => requestsBetween(fromMs, toMs) / Math.max(0.001, (toMs - fromMs) / 1000),
    async close() {
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
