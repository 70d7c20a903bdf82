/**
 * Reading a queue URL (`s3://bucket/prefix?endpoint=...`, `file:./dir`, `memory:`) and the
 * yes/no words of `OQ_*` variables, refusing what would otherwise be silently ignored or misread.
 * Every message that echoes a URL passes it through {@link redactUrl} first.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { redactUrl } from "./util/redact.ts";

/** Where a queue URL points. */
export type QueueLocation =
  | { kind: "memory" }
  | { kind: "file"; path: string }
  | {
      kind: "s3";
      bucket: string;
      prefix: string;
      endpoint?: string | undefined;
      region?: string | undefined;
      forcePathStyle?: boolean | undefined;
    };

/** The query parameters an `s3://` URL may carry. */
const S3_PARAMS = ["endpoint", "region", "pathStyle"] as const;

const S3_FORM = "s3://bucket/prefix?endpoint=...&region=...";

/** Parse a queue URL; throws {@link ConfigError} saying what to fix, never echoing credentials. */
export function parseQueueUrl(url: string): QueueLocation {
  if (url.startsWith("memory:")) return { kind: "memory" };
  if (url.startsWith("file:")) return { kind: "file", path: filePath(url) };
  if (url.startsWith("s3://")) return s3Location(url);
  throw new ConfigError(
    `Unknown queue URL ${redactUrl(url)}: use s3://bucket/prefix?endpoint=..., file:./dir or memory:.`,
  );
}

/**
 * The directory of a `file:` URL. `file:./dir` and `file:dir` are relative; `file:///abs` is
 * absolute. A host is refused: `file://./rel` parses as host `.` and path `/rel`, which put a
 * queue at the root of the filesystem, and `file://host/x` named a path on this machine anyway.
 */
function filePath(url: string): string {
  if (!url.startsWith("file://")) return url.slice("file:".length) || "./.oq";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`Malformed queue URL ${redactUrl(url)}: use file:./dir or file:///abs.`);
  }
  // `localhost` is the one host RFC 8089 gives a file URL: it means this machine.
  if (parsed.host !== "" && parsed.host !== "localhost") {
    throw new ConfigError(
      `Queue URL ${redactUrl(url)} names a host: a file URL is a directory on this machine. Use file:./dir for a relative path or file:///abs/dir for an absolute one.`,
    );
  }
  return decodeURIComponent(parsed.pathname);
}

function s3Location(url: string): QueueLocation {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`Malformed queue URL ${redactUrl(url)}: expected ${S3_FORM}`);
  }
  if (parsed.username !== "" || parsed.password !== "") {
    // Refuse rather than use or echo them: credentials in a URL end up in logs and `ps`.
    throw new ConfigError(
      `Queue URL ${redactUrl(url)} holds credentials (user:password@): remove them and set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or pass accessKeyId / secretAccessKey to connect()).`,
    );
  }
  if (parsed.hostname === "")
    throw new ConfigError(`Queue URL ${redactUrl(url)} names no bucket: use ${S3_FORM}`);
  const known: readonly string[] = S3_PARAMS;
  for (const name of parsed.searchParams.keys()) {
    // The name only: an unknown parameter's value may be a secret (`&secretAccessKey=...`).
    if (!known.includes(name))
      throw new ConfigError(
        `Unknown parameter "${name}" in queue URL ${redactUrl(url.split("?")[0]!)}: use ${S3_PARAMS.join(", ")}; credentials go in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.`,
      );
  }
  const pathStyle = parsed.searchParams.get("pathStyle");
  return {
    kind: "s3",
    bucket: parsed.hostname,
    prefix: decodeURIComponent(parsed.pathname.replace(/^\//, "")),
    endpoint: parsed.searchParams.get("endpoint") ?? undefined,
    region: parsed.searchParams.get("region") ?? undefined,
    forcePathStyle:
      pathStyle === null ? undefined : booleanWord(pathStyle, "the queue URL's pathStyle"),
  };
}

const YES = ["1", "true", "yes"];
const NO = ["0", "false", "no"];

/**
 * A yes/no setting given as text (`OQ_FORCE_PATH_STYLE`, `?pathStyle=`): `1`/`true`/`yes` or
 * `0`/`false`/`no`, any case. Any other word is refused, naming `what`: `maybe` used to mean
 * false without a word.
 */
export function booleanWord(value: string, what: string): boolean {
  const word = value.trim().toLowerCase();
  if (YES.includes(word)) return true;
  if (NO.includes(word)) return false;
  throw new ConfigError(
    `Invalid ${what} "${value}": use ${YES.join(", ")} or ${NO.join(", ")} (any case).`,
  );
}
