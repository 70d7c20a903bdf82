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

/**
 * `scheme://user:password@` (or `scheme://token@`) in a URL, up to the last `@` before the host:
 * a password may hold an `@` of its own (`user:p@ss@host`).
 */
const USER_INFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s"']*@/gi;
/**
 * Query parameters that carry a credential: presigned-URL signatures, tokens, passwords, and any
 * name that says secret, token, password, credential or key (`secretAccessKey=`, `accessKeyId=`).
 */
const SECRET_PARAMS =
  /([?&](?:sig|[^=&#\s"']*(?:signature|credential|token|secret|password|passwd|api_?key|access_?key)[^=&#\s"']*)=)[^&#\s"']*/gi;

/** `text` with the credentials a URL in it may carry replaced by `[redacted]`. */
export function redactUrls(text: string): string {
  return text.replace(USER_INFO, "$1[redacted]@").replace(SECRET_PARAMS, "$1[redacted]");
}

/**
 * One URL as given by a person, safe to echo in a message: everything between `://` and the last
 * `@` before the query is replaced, and so are credential query parameters ({@link redactUrls}).
 * Why not just {@link redactUrls}: a URL that failed to parse may hold an unencoded `/` in its
 * password (`s3://KEY:se/cret@bucket`), which free text cannot tell from a path; a whole URL can.
 */
export function redactUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (scheme === null) return redactUrls(url);
  const end = url.search(/[?#]/);
  const head = end < 0 ? url : url.slice(0, end);
  const at = head.lastIndexOf("@");
  const safe = at < 0 ? url : `${scheme[0]}[redacted]${url.slice(at)}`;
  return redactUrls(safe);
}
