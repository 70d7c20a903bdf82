/**
 * Bytes read in chunks, joined. Portable (web-standard globals only).
 *
 * @module
 */

/** `chunks` joined into one array of `total` bytes (the sum of their lengths), copied. */
export function joinChunks(chunks: readonly Uint8Array[], total: number): Uint8Array<ArrayBuffer> {
  const joined = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    joined.set(chunk, at);
    at += chunk.byteLength;
  }
  return joined;
}
