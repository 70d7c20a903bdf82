/**
 * The dashboard's options, checked once when it is created, and the context every page gets.
 *
 * @module
 */
import * as v from "valibot";
import { ValidationError } from "../errors.ts";
import { checkOptions } from "../options.ts";
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

// Strict, as every options object of oq is: `{ readonly: true }` or `{ authToken }` used to be
// dropped in silence, serving a dashboard with its actions on, or without any token. The ranges
// and forms are checked below, in the dashboard's own words.
const dashboardOptionsSchema = v.strictObject({
  token: v.optional(v.string()),
  readOnly: v.optional(v.boolean()),
  basePath: v.optional(v.string()),
  metrics: v.optional(v.function()),
  secret: v.optional(v.string()),
  origin: v.optional(v.string()),
  pageSize: v.optional(v.number()),
  refreshSeconds: v.optional(v.number()),
  now: v.optional(v.function()),
});

/** Every key of {@link DashboardOptions} is in the schema (a key added to one only fails here). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _allKeys: Same<keyof DashboardOptions, keyof typeof dashboardOptionsSchema.entries> = true;
void _allKeys;

/**
 * A base path as every request URL keeps it. URL parsers resolve `.` and `..` segments (also
 * spelt `%2e`) away, so `/x/../y` would be compared with `/y/...` and no request could match.
 */
function checkBasePath(basePath: string): string {
  const usage = `use "" or a path like "/oq" (starting with "/", no trailing "/")`;
  if (basePath !== "" && !/^(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(basePath))
    throw new ValidationError(`Invalid basePath "${basePath}": ${usage}.`);
  if (basePath !== "" && new URL(`${basePath}/`, "http://x").pathname !== `${basePath}/`)
    throw new ValidationError(
      `Invalid basePath "${basePath}": no request could reach it, as URLs resolve its "." and ".." segments (also written %2e) away; ${usage}.`,
    );
  return basePath;
}

/** Check the options; throws `ValidationError` saying what to fix. */
export function resolveOptions(queue: Queue, given: DashboardOptions): ResolvedOptions {
  const options = checkOptions(dashboardOptionsSchema, given, "dashboard options");
  const basePath = checkBasePath(options.basePath ?? "");
  // A token of spaces or a newline is a configuration slip (an empty variable, a stray
  // newline in a file), not a secret anyone should be asked to type.
  if (options.token !== undefined && options.token.trim().length === 0)
    throw new ValidationError(
      "Invalid token: it is empty or only whitespace; leave it out to serve without one.",
    );
  if (options.secret !== undefined && options.secret.length < 16)
    throw new ValidationError("Invalid secret: use at least 16 random characters.");
  return {
    token: options.token,
    readOnly: options.readOnly === true,
    basePath,
    metrics: given.metrics,
    secret: options.secret,
    origin: checkOrigin(options.origin),
    pageSize: wholeNumber("pageSize", options.pageSize, 50, 500),
    refreshSeconds: wholeNumber("refreshSeconds", options.refreshSeconds, 5, 3600),
    now: given.now ?? (() => queue.now()),
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
