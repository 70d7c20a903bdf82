/**
 * Keeping credentials out of messages and log lines: known secret values, and the parts of a URL
 * that carry one (user info, signed or token query parameters).
 *
 * @module
 */

/**
 * Secrets shorter than this are replaced only where they stand alone, not inside a longer run of
 * letters and digits. Why: test setups use toy credentials (`test`, `minio`, even `a`), and
 * replacing every `a` turned "Tasks module not found" into "T[redacted]sks module not found".
 * Real keys are longer (AWS: 20 and 40 characters) and are replaced wherever they occur.
 */
const STANDALONE_BELOW = 16;

/**
 * Replaces every occurrence of any of `secrets` (empty ones ignored) with `[redacted]`; one
 * shorter than 16 characters only where no letter or digit touches it on either side.
 */
export function redactor(secrets: readonly string[]): (text: string) => string {
  const known = secrets.filter((s) => s !== "");
  const alone = known
    .filter((s) => s.length < STANDALONE_BELOW)
    .map((s) => new RegExp(`(?<![A-Za-z0-9])${escapeRegExp(s)}(?![A-Za-z0-9])`, "g"));
  const anywhere = known.filter((s) => s.length >= STANDALONE_BELOW);
  return (text) => {
    let out = text;
    for (const secret of anywhere) out = out.split(secret).join("[redacted]");
    for (const pattern of alone) out = out.replace(pattern, "[redacted]");
    return out;
  };
}

/** `text` with every character a regular expression gives a meaning escaped. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
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
