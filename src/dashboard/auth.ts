/**
 * The dashboard's token check: a bearer header, or a `?token=` query once that is traded for a
 * cookie. The cookie holds a SHA-256 digest of the token, not the token itself, so it stays valid
 * across restarts while the token never sits in the browser's cookie jar.
 *
 * @module
 */
import { toHex } from "../util/format.ts";

/** The cookie that carries the session. */
export const SESSION_COOKIE = "oq_dashboard";

const encoder = new TextEncoder();

/** The cookie value for `token`. */
async function sessionValue(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(`oq-dashboard:${token}`));
  return toHex(new Uint8Array(digest));
}

/** Compare two strings in time that depends only on their lengths. */
export function equalSecrets(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** The value of cookie `name` in the request, if any. */
export function cookie(request: Request, name: string): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The outcome of the check: let the request through, or answer it with this. */
export type AuthOutcome =
  | { ok: true }
  | { ok: false; reason: "missing" | "wrong" }
  | { ok: false; redirect: string; setCookie: string };

/**
 * Check `request` against `token`: a matching `Authorization: Bearer` header or session cookie
 * lets it through; a matching `?token=` on a GET is answered with a redirect to the same URL
 * without it, setting the cookie (scoped to `basePath`, `Secure` when `origin` is https).
 */
export async function checkToken(
  request: Request,
  url: URL,
  token: string,
  basePath: string,
  origin: string,
): Promise<AuthOutcome> {
  // Another scheme (a proxy's Basic auth in front of the dashboard) is not ours to judge.
  const bearer = /^Bearer\s+(.+)$/i.exec((request.headers.get("authorization") ?? "").trim());
  if (bearer !== null)
    return equalSecrets(bearer[1]!, token) ? { ok: true } : { ok: false, reason: "wrong" };
  const expected = await sessionValue(token);
  const query = url.searchParams.get("token");
  if (query !== null) {
    if (!equalSecrets(query, token) || (request.method !== "GET" && request.method !== "HEAD"))
      return { ok: false, reason: "wrong" };
    const clean = new URL(url);
    clean.searchParams.delete("token");
    const secure = origin.startsWith("https:") ? "; Secure" : "";
    return {
      ok: false,
      redirect: `${clean.pathname}${clean.search}`,
      setCookie: `${SESSION_COOKIE}=${expected}; Path=${basePath || "/"}; HttpOnly; SameSite=Strict${secure}`,
    };
  }
  const session = cookie(request, SESSION_COOKIE);
  if (session === undefined) return { ok: false, reason: "missing" };
  return equalSecrets(session, expected) ? { ok: true } : { ok: false, reason: "wrong" };
}
