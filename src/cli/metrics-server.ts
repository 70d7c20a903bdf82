/**
 * The Prometheus endpoint of `oq worker --metrics-port` and `oq monitor --metrics-port`: the
 * portable {@link metricsHandler} at `/metrics` on the node:http adapter, 404 elsewhere.
 *
 * @module
 */
import { type Metrics, metricsHandler } from "../metrics/metrics.ts";
import { serveNodeHttp } from "../runtime/node-http.ts";
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
export async function serveMetrics(
  metrics: Metrics,
  options: { host: string; port: number },
): Promise<MetricsServer> {
  const handler = metricsHandler(metrics);
  const route = (request: Request): Promise<Response> | Response =>
    new URL(request.url).pathname === "/metrics"
      ? handler(request)
      : new Response("Not Found: see /metrics\n", {
          status: 404,
          headers: { "content-type": "text/plain; charset=utf-8" },
        });
  try {
    const server = await serveNodeHttp(route, {
      host: options.host,
      port: options.port,
      onError: (error) => log().warn(`metrics: ${errorMessage(error)}`),
    });
    return { url: `${server.url}metrics`, close: () => server.close() };
  } catch (error) {
    throw new CliError(
      `Cannot serve metrics on ${options.host}:${options.port}: ${errorMessage(error)}. Pick another --metrics-port (or --metrics-host).`,
      EXIT_FAILURE,
    );
  }
}
