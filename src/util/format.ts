/**
 * Small formatting helpers shared across the code base: timestamps and hex strings.
 *
 * @module
 */

/** An epoch-milliseconds time as an ISO 8601 UTC string, the format stored in task objects. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Bytes as lower-case hex, two digits each. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** `bytes` random bytes from web crypto, as lower-case hex (twice as many characters). */
export function randomHex(bytes: number): string {
  return toHex(crypto.getRandomValues(new Uint8Array(bytes)));
}
