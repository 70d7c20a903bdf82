/**
 * What requests cost on AWS S3 Standard, us-east-1 (public price list, 2026):
 * PUT/COPY/POST/LIST $0.005 per 1,000, GET/HEAD (and all other reads) $0.0004 per 1,000,
 * DELETE free. A DeleteObjects batch is a POST: we bill it as one, as `src/storage/count.ts`
 * counts it (AWS does not bill DELETE; whether a multi-object delete is free too is not stated
 * plainly, so the model takes the dearer reading). SlowDown answers are billed like the
 * request (the dearer reading again).
 *
 * @module
 */
import type { RequestKind } from "../../src/storage/storage.ts";

/** Dollars per request, by kind. */
export const PRICE_PER_REQUEST: Readonly<Record<RequestKind, number>> = {
  PUT: 0.005 / 1000,
  POST: 0.005 / 1000,
  LIST: 0.005 / 1000,
  GET: 0.0004 / 1000,
  HEAD: 0.0004 / 1000,
  DELETE: 0,
};

/** Dollars for these request counts. */
export function dollars(requests: Readonly<Record<RequestKind, number>>): number {
  let sum = 0;
  for (const [kind, n] of Object.entries(requests) as [RequestKind, number][]) {
    sum += n * PRICE_PER_REQUEST[kind];
  }
  return sum;
}
