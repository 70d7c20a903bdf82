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
 * Random hex from `fill` (which fills a byte array with random bytes), drawn a pool at a time:
 * on Node each `getRandomValues` call costs about 25 µs whatever its size, and a task takes three
 * random ids (as Node's own `randomUUID` keeps a pool for the same reason). The result turns
 * `bytes` random bytes into lower-case hex, twice as many characters.
 */
export function pooledRandomHex(
  fill: (bytes: Uint8Array<ArrayBuffer>) => void,
): (bytes: number) => string {
  const pool = { bytes: new Uint8Array(4096), used: 4096 };
  return (bytes) => {
    if (bytes > pool.bytes.length) {
      const large = new Uint8Array(bytes);
      fill(large);
      return toHex(large);
    }
    if (pool.used + bytes > pool.bytes.length) {
      fill(pool.bytes);
      pool.used = 0;
    }
    const out = toHex(pool.bytes.subarray(pool.used, pool.used + bytes));
    pool.used += bytes;
    return out;
  };
}

/** `bytes` random bytes from web crypto, as lower-case hex (twice as many characters). */
export const randomHex: (bytes: number) => string = pooledRandomHex((bytes) => {
  crypto.getRandomValues(bytes);
});

/**
 * `length` hex characters from a source of random bytes as hex (two characters a byte): the
 * shape of a queue's `randomHex` option.
 */
export function hexOfLength(hexOfBytes: (bytes: number) => string): (length: number) => string {
  return (length) => hexOfBytes(Math.ceil(length / 2)).slice(0, length);
}
