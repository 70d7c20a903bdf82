/**
 * Keeping credentials out of messages and log lines: known secret values, and the parts of a URL
 * that carry one (user info, signed or token query parameters).
 *
 * @module
 */

/** Replaces every occurrence of any of `secrets` (empty ones ignored) with `[redacted]`. */
export function redactor(secrets: readonly string[]): (text: string) => string {
  const known = secrets.filter((s) => s !== "");
  return (text) => {
    let out = text;
    for (const secret of known) out = out.split(secret).join("[redacted]");
    return out;
  };
}

/** `scheme://user:password@` (or `scheme://token@`) in a URL. */
const USER_INFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s@"']+@/gi;
/** Query parameters that carry a credential: presigned-URL signatures, tokens, passwords. */
const SECRET_PARAMS =
  /([?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|access_token|secret|password|api_key|apikey)=)[^&#\s"']*/gi;

/** `text` with the credentials a URL in it may carry replaced by `[redacted]`. */
export function redactUrls(text: string): string {
  return text.replace(USER_INFO, "$1[redacted]@").replace(SECRET_PARAMS, "$1[redacted]");
}
