/**
 * `oq dashboard`: serve the web dashboard (`createDashboard`, src/dashboard/) on `node:http`
 * until SIGINT or SIGTERM.
 *
 * It binds to this machine only unless told otherwise, and refuses any other address without a
 * token: a dashboard can cancel and replay tasks, and one reachable from a network without a
 * token lets anyone there do so.
 *
 * @module
 */
import process from "node:process";
import { createDashboard, type DashboardOptions } from "../dashboard/handler.ts";
import { Metrics, metricsHandler } from "../metrics/metrics.ts";
import { type FetchHandler, serveNodeHttp } from "../runtime/node-http.ts";
import { intArg, oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { CliError, usageError } from "./errors.ts";
import { log } from "./output.ts";

/** The default port of `oq dashboard`. */
export const DEFAULT_DASHBOARD_PORT = 4000;

/**
 * True for addresses only this machine can reach: `localhost`, `127.0.0.0/8` and `::1`
 * (also written as an IPv4-mapped address). Anything else, `0.0.0.0` and `::` included, is
 * reachable from a network.
 */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || /^(0{0,4}:){2,7}0{0,3}1$/.test(h)) return true;
  const v4 = h.replace(/^::ffff:/, "");
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** The token from `--token` or `OQ_DASHBOARD_TOKEN` (an empty variable counts as none). */
function tokenOf(flag: string | undefined): string | undefined {
  if (flag !== undefined) return flag;
  const env = process.env.OQ_DASHBOARD_TOKEN;
  return env === undefined || env === "" ? undefined : env;
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(signal);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

/** Serve `handler`, turning the usual reasons a bind fails into messages that say what to do. */
async function listen(handler: FetchHandler, host: string, port: number) {
  try {
    return await serveNodeHttp(handler, { host, port, onError: (error) => log().error(error) });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE")
      throw new CliError(`Port ${port} on ${host} is in use: pick another with --port.`);
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
      throw new CliError(
        `Cannot listen on ${host}: it is not an address of this machine (--host).`,
      );
    if (code === "EACCES")
      throw new CliError(`Not allowed to listen on port ${port}: use one above 1023 (--port).`);
    throw error;
  }
}

export default oqCommand({
  name: "dashboard",
  description: "Serve the web dashboard: tasks, workers and schedules (stop with SIGINT/SIGTERM).",
  examples: [
    "oq dashboard                                  # http://127.0.0.1:4000/, the queue in ./.oq",
    "oq demo && oq dashboard --prefix oq-demo/     # look at the demo's tasks",
    "oq dashboard --read-only --port 8080",
    "oq dashboard --base-path /oq --origin https://ops.example.com   # behind a TLS proxy",
    "OQ_DASHBOARD_TOKEN=$(openssl rand -hex 16) oq dashboard --host 0.0.0.0",
  ],
  args: {
    host: {
      type: "string",
      description: "Address to listen on; any but loopback needs a token",
      default: "127.0.0.1",
      valueHint: "address",
    },
    port: {
      type: "string",
      alias: ["p"],
      description: "Port to listen on (0: any free port)",
      default: String(DEFAULT_DASHBOARD_PORT),
      valueHint: "port",
    },
    token: {
      type: "string",
      description:
        "Require this token to open the dashboard (env OQ_DASHBOARD_TOKEN; the variable keeps it out of ps and shell history)",
      valueHint: "token",
    },
    "read-only": {
      type: "boolean",
      description: "Show tasks, workers and schedules, but offer no cancel, replay or pause",
    },
    "base-path": {
      type: "string",
      description: "Serve under this path, e.g. /oq (behind a proxy that forwards it)",
      valueHint: "path",
    },
    origin: {
      type: "string",
      description:
        "The origin browsers use, e.g. https://ops.example.com, behind a proxy that terminates TLS or rewrites the host",
      valueHint: "url",
    },
  },
  async run(args) {
    const port = intArg(args.port, "port", 0, 65_535)!;
    const host = args.host;
    const token = tokenOf(args.token);
    if (token === undefined && !isLoopback(host)) {
      throw usageError(
        `Refusing to serve the dashboard on ${host} without a token: anyone who can reach that address could cancel and replay tasks. Set OQ_DASHBOARD_TOKEN (or --token), or listen on 127.0.0.1 (the default) and reach it through an SSH tunnel or a proxy that authenticates.`,
      );
    }
    // Its /metrics: queue depth from stats() (the whole fleet's) and this process's requests.
    const metrics = new Metrics();
    const queue = await openQueue(args, { metrics });
    const options: DashboardOptions = {
      readOnly: args["read-only"] === true,
      metrics: metricsHandler(metrics),
    };
    if (token !== undefined) options.token = token;
    if (args["base-path"] !== undefined) options.basePath = args["base-path"];
    if (args.origin !== undefined) options.origin = args.origin;
    const server = await listen(createDashboard(queue, options), host, port);
    const where = `${queue.storage.name}${queue.keys.prefix === "" ? "" : ` (prefix ${queue.keys.prefix})`}`;
    const mode = [options.readOnly ? "read-only" : "", token === undefined ? "" : "token required"]
      .filter((s) => s !== "")
      .join(", ");
    const base = options.basePath;
    const url = base === undefined ? server.url : `${server.url}${base.slice(1)}/`;
    log().success(`Dashboard on ${url} for ${where}${mode === "" ? "" : `; ${mode}`}.`);
    const signal = await untilSignal();
    log().info(`${signal}: stopping the dashboard.`);
    await server.close();
  },
});
