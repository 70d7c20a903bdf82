/**
 * What doctor tells a user to do about a failed check, per provider: it recognises the backend it
 * probed (from the endpoint, or the request ids it answered with) and never recommends that very
 * backend as the way out. Which backends a piece of advice recommends is a typed list, so callers
 * and tests read it without parsing prose.
 *
 * @module
 */
import type { StorageLocation } from "../storage/storage.ts";

/** The S3-compatible backends doctor knows by name; `unknown` when it cannot tell. */
export type BackendProvider =
  | "aws-s3"
  | "cloudflare-r2"
  | "minio"
  | "ceph-rgw"
  | "tigris"
  | "garage"
  | "gcs"
  | "unknown";

/** How each provider is named in advice. */
export const PROVIDER_NAMES: Record<BackendProvider, string> = {
  "aws-s3": "AWS S3",
  "cloudflare-r2": "Cloudflare R2",
  minio: "MinIO (2024 or later)",
  "ceph-rgw": "Ceph RGW",
  tigris: "Tigris",
  garage: "Garage",
  gcs: "Google Cloud Storage (XML API)",
  unknown: "an unidentified S3-compatible server",
};

/** Backends known to implement conditional writes as S3 does (a recent version of each). */
const CONDITIONAL: BackendProvider[] = ["aws-s3", "cloudflare-r2", "minio", "ceph-rgw", "tigris"];
/** Backends known to list what was just written. */
const CONSISTENT: BackendProvider[] = ["aws-s3", "cloudflare-r2", "minio"];

/** A piece of advice before it is fitted to the provider that failed. */
export interface Advice {
  /** The backends it recommends moving to. */
  recommend: BackendProvider[];
  /** The text, given the recommended backends' names (already excluding the one probed). */
  text(alternatives: string): string;
  /** What to say instead or as well, to a user of a given provider. */
  notes?: Partial<Record<BackendProvider, string>>;
}

/** Advice fitted to a provider: the text, and the backends it names (never that provider). */
export interface FittedAdvice {
  fix: string;
  alternatives: BackendProvider[];
}

/** Fit advice to the provider probed: drop it from the recommendations, add its own note. */
export function fitAdvice(advice: Advice, provider: BackendProvider): FittedAdvice {
  const alternatives = advice.recommend.filter((p) => p !== provider);
  const names = alternatives.map((p) => PROVIDER_NAMES[p]);
  const list =
    names.length <= 1 ? (names[0] ?? "") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
  const note = advice.notes?.[provider];
  return {
    fix: note === undefined ? advice.text(list) : `${advice.text(list)} ${note}`,
    alternatives,
  };
}

const HOSTS: [RegExp, BackendProvider][] = [
  [/(^|\.)amazonaws\.com$/, "aws-s3"],
  [/(^|\.)r2\.cloudflarestorage\.com$/, "cloudflare-r2"],
  [/(^|\.)(storage\.tigris\.dev|t3\.storage\.dev|tigris\.dev)$/, "tigris"],
  [/(^|\.)storage\.googleapis\.com$/, "gcs"],
];

/** Ceph RGW transaction ids: `tx` + hex, then `-`hex timestamp`-`hex`-`zone group. */
const RGW_REQUEST_ID = /^tx[0-9a-f]{8,}-[0-9a-f]{8,}-[0-9a-f]+-/i;

/**
 * Recognise the provider from where requests go and the request ids the server answered with.
 * `unknown` when neither tells (a self-hosted endpoint that answered no error).
 */
export function detectProvider(
  location: StorageLocation | undefined,
  requestIds: Iterable<string> = [],
): BackendProvider {
  if (location?.driver === "r2-binding") return "cloudflare-r2";
  for (const id of requestIds) if (RGW_REQUEST_ID.test(id)) return "ceph-rgw";
  let host = "";
  try {
    host = location === undefined ? "" : new URL(location.endpoint).hostname;
  } catch {
    return "unknown";
  }
  for (const [pattern, provider] of HOSTS) if (pattern.test(host)) return provider;
  return "unknown";
}

/** A request S3 accepts was rejected. */
export const ADVICE_REJECTED: Advice = {
  recommend: CONDITIONAL,
  text: (alts) =>
    `The backend rejected a request that S3 accepts; it does not implement conditional writes as S3 does. Use ${alts}.`,
};

/** If-None-Match: * is ignored or mishandled. */
export const ADVICE_IF_NONE_MATCH: Advice = {
  recommend: CONDITIONAL,
  text: (alts) =>
    `The backend ignores or mishandles If-None-Match: * (create-if-absent), so two submitters or workers could overwrite each other. Use a backend that supports conditional writes (${alts}); Garage and GCS's XML API do not.`,
  notes: {
    minio: "MinIO before 2024 ignored If-None-Match: upgrade it.",
    "ceph-rgw": "Upgrade Ceph RGW to a release that evaluates If-None-Match: * on PUT.",
  },
};

/** If-Match is ignored or mishandled. */
export const ADVICE_IF_MATCH: Advice = {
  recommend: CONDITIONAL,
  text: (alts) =>
    `The backend ignores or mishandles If-Match (compare-and-swap), so two workers could claim the same task. Use a backend that supports conditional writes (${alts}).`,
  notes: {
    "ceph-rgw": "Older Ceph RGW releases compared quoted ETags wrongly: upgrade RGW first.",
    unknown: "On an older Ceph RGW, upgrade: it compared quoted ETags wrongly.",
    minio: "MinIO before 2024 ignored If-Match on PUT: upgrade it.",
  },
};

/** Concurrent conditional writes had other than one winner. */
export const ADVICE_RACE: Advice = {
  recommend: CONDITIONAL,
  text: (alts) =>
    `Concurrent conditional writes had more or fewer than one winner, so the backend does not serialize them: tasks could run twice. Use a strongly consistent backend with real conditional writes (${alts}).`,
};

/** Listings lag behind writes. */
export const ADVICE_LIST: Advice = {
  recommend: CONSISTENT,
  text: (alts) =>
    `Listings lag behind writes, so workers would miss ready tasks or see finished ones. Use a strongly consistent backend (${alts}).`,
  notes: {
    tigris:
      "On Tigris, make the bucket strongly consistent (single region or the consistency header).",
    unknown:
      "On Tigris, make the bucket strongly consistent (single region or the consistency header).",
  },
};
