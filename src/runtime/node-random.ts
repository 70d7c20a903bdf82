/**
 * Random hex for the Node-specific entry points (the CLI, `oq/file`), read from the kernel's
 * random device rather than web crypto.
 *
 * Why: the first touch of `globalThis.crypto` makes Node load its web crypto modules, about 12 ms
 * of CPU on Node 24 and 17-20 ms on Node 20, in every process, before a starting `oq worker` can
 * name itself or take a claim token. `/dev/urandom` is the same kernel generator OpenSSL seeds
 * from, and reading it costs one `open` and one `read` per 4 kB pool. Where the device is missing
 * (Windows) or cannot be read, web crypto fills the pool instead; so it does on Bun and Deno, which
 * also run these entry points, have web crypto at hand, and where Deno would ask for permission to
 * read the device.
 *
 * @module
 */
import { closeSync, openSync, readSync } from "node:fs";
import process from "node:process";
import { hexOfLength, pooledRandomHex } from "../util/format.ts";

/** The kernel's non-blocking random device. */
const DEVICE = "/dev/urandom";

/** Web crypto: on Bun and Deno, and where the device failed. */
function webCryptoFill(bytes: Uint8Array<ArrayBuffer>): void {
  crypto.getRandomValues(bytes);
}

/**
 * A filler of byte arrays that reads `device`, or web crypto once the device failed. Exposed for
 * tests, which name a device that does not exist.
 *
 * @internal
 */
export function deviceFill(device: string): (bytes: Uint8Array<ArrayBuffer>) => void {
  let usable = true;
  return (bytes) => {
    if (usable) {
      try {
        readFully(device, bytes);
        return;
      } catch {
        usable = false;
      }
    }
    webCryptoFill(bytes);
  };
}

/** Fill all of `bytes` from `device` (a read may return fewer bytes than asked for). */
function readFully(device: string, bytes: Uint8Array): void {
  const fd = openSync(device, "r");
  try {
    let filled = 0;
    while (filled < bytes.length) {
      const n = readSync(fd, bytes, filled, bytes.length - filled, null);
      if (n <= 0) throw new Error(`${device} returned no bytes`);
      filled += n;
    }
  } finally {
    closeSync(fd);
  }
}

const onNode = process.versions.bun === undefined && process.versions.deno === undefined;
const hexOfBytes = pooledRandomHex(onNode ? deviceFill(DEVICE) : webCryptoFill);

/**
 * `length` random lower-case hex characters from the kernel (the `randomHex` option of a queue
 * the CLI opens).
 */
export const nodeRandomHex: (length: number) => string = hexOfLength(hexOfBytes);

/**
 * `bytes` random bytes from the kernel as lower-case hex (twice as many characters): the file
 * store's names.
 */
export function nodeRandomBytesHex(bytes: number): string {
  return hexOfBytes(bytes);
}
