/**
 * Cross-site request protection of the action POSTs: the request must come from the dashboard's
 * own origin (its `Origin` header, or `Sec-Fetch-Site: same-origin` when a browser sends no
 * `Origin`), and carry the form's CSRF token, an HMAC of a fixed label under a key only the
 * handler knows. Either check alone would do against today's browsers; both together also hold
 * when one of them is missing or stripped by a proxy.
 *
 * @module
 */
import { toHex } from "../util/format.ts";
import { equalSecrets } from "./auth.ts";

/** The form field that carries the token. */
export const CSRF_FIELD = "csrf";

const encoder = new TextEncoder();

/** The CSRF token of a handler whose key is `secret` (random 32 bytes when not given). */
export async function csrfToken(secret: string | undefined): Promise<string> {
  const keyBytes =
    secret === undefined ? crypto.getRandomValues(new Uint8Array(32)) : encoder.encode(secret);
  const key = await crypto.subtle.importKey(
    "raw",
    keyBytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode("oq-dashboard-csrf:1"));
  return toHex(new Uint8Array(mac));
}

/** True when the request says it comes from the dashboard's own origin, `origin`. */
export function isSameOrigin(request: Request, origin: string): boolean {
  const given = request.headers.get("origin");
  // A browser sends `Origin: null` for its own form posts under some referrer policies (ours
  // was no-referrer, and a proxy may set another); its `Sec-Fetch-Site`, which no page can
  // forge, still says whether the form was the dashboard's own.
  if (given !== null && given !== "null") return given === origin;
  return request.headers.get("sec-fetch-site") === "same-origin";
}

/** True when the submitted form carries the handler's token. */
export function hasCsrfToken(form: FormData, token: string): boolean {
  const given = form.get(CSRF_FIELD);
  return typeof given === "string" && equalSecrets(given, token);
}
