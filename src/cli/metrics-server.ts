/**
 * The Prometheus endpoint of `oq worker --metrics-port`: a minimal node:http server that answers
 * `GET /metrics` (and HEAD) through the portable {@link metricsHandler}, and 404 elsewhere.
 * (A general Node adapter for web-standard handlers may replace this one.)
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Metrics, metricsHandler } from "../metrics/metrics.ts";
import { errorMessage } from "../util/errors.ts";
import { CliError, EXIT_FAILURE } from "./errors.ts";
import { log } from "./output.ts";

/** A running metrics server. */
export interface MetricsServer {
  /** The URL it serves metrics at (with the port the system picked for port 0). */
  url: string;
  /** Stop listening and close open connections. */
  close(): Promise<void>;
}

/** Serve `metrics` at `http://{host}:{port}/metrics` (port 0: any free port). */
export function serveMetrics(
  metrics: Metrics,
  options: { host: string; port: number },
): Promise<MetricsServer> {
  const handler = metricsHandler(metrics);
  const server = createServer((req, res) => {
    void answer(handler, req, res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new CliError(
          `Cannot serve metrics on ${options.host}:${options.port}: ${errorMessage(error)}. Pick another --metrics-port (or --metrics-host).`,
          EXIT_FAILURE,
        ),
      ),
    );
    server.listen(options.port, options.host, () => {
      server.removeAllListeners("error");
      const { port } = server.address() as AddressInfo;
      const host = options.host.includes(":") ? `[${options.host}]` : options.host;
      resolve({
        url: `http://${host}:${port}/metrics`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

async function answer(
  handler: (request: Request) => Promise<Response>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  try {
    if (path !== "/metrics") {
      res
        .writeHead(404, { "content-type": "text/plain; charset=utf-8" })
        .end("Not Found: see /metrics\n");
      return;
    }
    const response = await handler(
      new Request(`http://localhost${req.url}`, { method: req.method ?? "GET" }),
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  } catch (error) {
    log().warn(`metrics: ${errorMessage(error)}`);
    if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
    res.end("Internal Server Error\n");
  }
}
