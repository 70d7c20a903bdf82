/**
 * The dashboard's options, checked once when it is created, and the context every page gets.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import type { Queue } from "../queue/queue.ts";
import { redactUrl } from "../util/redact.ts";

/** Options of {@link createDashboard} (`src/dashboard/handler.ts`). */
export interface DashboardOptions {
  /**
   * When set, every request needs it: an `Authorization: Bearer <token>` header, or a
   * `?token=<token>` query once, which sets an HttpOnly, SameSite=Strict cookie and redirects to
   * the same URL without it. Default: none (anyone who reaches the handler may use it).
   */
  token?: string;
  /** Show no action forms and answer every action POST with 403. Default false. */
  readOnly?: boolean;
  /**
   * The path the dashboard is mounted under, e.g. `/oq`: `""` or starting with `/`, without a
   * trailing `/`. Requests outside it get 404. Default `""` (the root).
   */
  basePath?: string;
  /**
   * Serves `GET {basePath}/metrics` (e.g. a Prometheus text endpoint) when given; without it that
   * path is 404. It is called behind the token check. Default: none.
   */
  metrics?: (request: Request) => Promise<Response>;
  /**
   * The key of the CSRF tokens in action forms. Default: random per handler, so forms rendered
   * before a restart are refused after it (reload the page); set the same value on every instance
   * when several serve one dashboard behind a load balancer.
   */
  secret?: string;
  /**
   * The origin browsers reach the dashboard at (`https://ops.example.com`), when it differs from
   * the request URL's: behind a proxy that terminates TLS or rewrites the host. Action POSTs must
   * come from it, and the session cookie is `Secure` when it is https. Default: the origin of
   * each request's URL.
   */
  origin?: string;
  /** Tasks per page of the task list, 1 to 500. Default 50. */
  pageSize?: number;
  /** Seconds between reloads of the overview when its auto-refresh is on. Default 5. */
  refreshSeconds?: number;
  /** Server time in epoch ms, for ages and relative times. Default `queue.now()`. */
  now?: () => number;
}

/** The options with defaults filled in. */
export interface ResolvedOptions {
  token: string | undefined;
  readOnly: boolean;
  basePath: string;
  metrics: ((request: Request) => Promise<Response>) | undefined;
  secret: string | undefined;
  origin: string | undefined;
  pageSize: number;
  refreshSeconds: number;
  now: () => number;
}

function wholeNumber(name: string, value: number | undefined, fallback: number, max: number) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new ValidationError(`Invalid ${name} ${value}: use a whole number from 1 to ${max}.`);
  return value;
}

/** An origin option as `scheme://host[:port]`, or `undefined`; throws `ValidationError`. */
function checkOrigin(origin: string | undefined): string | undefined {
  if (origin === undefined) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(origin);
  } catch {
    parsed = undefined;
  }
  if (
    parsed === undefined ||
    parsed.origin === "null" ||
    parsed.origin !== origin.replace(/\/$/, "")
  )
    throw new ValidationError(
      `Invalid origin "${redactUrl(origin)}": use scheme, host and port only, like "https://ops.example.com".`,
    );
  return parsed.origin;
}

/** Check the options; throws `ValidationError` saying what to fix. */
export function resolveOptions(queue: Queue, options: DashboardOptions): ResolvedOptions {
  const basePath = options.basePath ?? "";
  if (basePath !== "" && !/^(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(basePath))
    throw new ValidationError(
      `Invalid basePath "${basePath}": use "" or a path like "/oq" (starting with "/", no trailing "/").`,
    );
  if (options.token !== undefined && options.token.length === 0)
    throw new ValidationError("Invalid token: it is empty; leave it out to serve without one.");
  if (options.secret !== undefined && options.secret.length < 16)
    throw new ValidationError("Invalid secret: use at least 16 random characters.");
  return {
    token: options.token,
    readOnly: options.readOnly === true,
    basePath,
    metrics: options.metrics,
    secret: options.secret,
    origin: checkOrigin(options.origin),
    pageSize: wholeNumber("pageSize", options.pageSize, 50, 500),
    refreshSeconds: wholeNumber("refreshSeconds", options.refreshSeconds, 5, 3600),
    now: options.now ?? (() => queue.now()),
  };
}

/** What a page or action gets: the queue, the request and the resolved options. */
export interface PageContext {
  /** The queue shown. */
  queue: Queue;
  /** The request. */
  request: Request;
  /** Its URL. */
  url: URL;
  /** The origin browsers reach the dashboard at: the `origin` option, else the URL's. */
  origin: string;
  /** The resolved options. */
  options: ResolvedOptions;
  /** The CSRF token to put in action forms. */
  csrf: string;
  /** A link to `path` (starting with `/`) under the base path, with the non-empty `query`. */
  link(path: string, query?: Record<string, string | undefined>): string;
}

/** The link builder of a context: `basePath + path`, then the query without empty values. */
export function linker(basePath: string) {
  return (path: string, query: Record<string, string | undefined> = {}): string => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") params.set(k, v);
    const search = params.toString();
    return `${basePath}${path}${search === "" ? "" : `?${search}`}`;
  };
}
