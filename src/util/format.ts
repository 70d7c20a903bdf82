/**
 * Small formatting helpers shared across the code base: timestamps and hex strings.
 *
 * @module
 */

/** An epoch-milliseconds time as an ISO 8601 UTC string, the format stored in task objects. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Each byte's two lower-case hexadecimal digits. */
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

/** Bytes as lower-case hex, two digits each. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b]!;
  return s;
}

/**
 * Random bytes drawn from web crypto a pool at a time: on Node each `getRandomValues` call costs
 * about 25 µs whatever its size, and a task takes three random ids (as Node's own `randomUUID`
 * keeps a pool for the same reason).
 */
const pool = { bytes: new Uint8Array(4096), used: 4096 };

/** `bytes` random bytes from web crypto, as lower-case hex (twice as many characters). */
export function randomHex(bytes: number): string {
  if (bytes > pool.bytes.length) return toHex(crypto.getRandomValues(new Uint8Array(bytes)));
  if (pool.used + bytes > pool.bytes.length) {
    crypto.getRandomValues(pool.bytes);
    pool.used = 0;
  }
  const out = toHex(pool.bytes.subarray(pool.used, pool.used + bytes));
  pool.used += bytes;
  return out;
}
