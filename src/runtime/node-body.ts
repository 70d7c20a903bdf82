/**
 * The body of a `nodeFetch` answer: read ahead of its reader by at most
 * {@link READ_AHEAD_BYTES}, pulled as it is read, and dropped with its connection when cancelled,
 * so a read bounded by `GetOptions.maxBytes` never downloads a planted object whole to refuse it.
 *
 * Not a web `ReadableStream`, but a reader of one (`read()`, `cancel()`: the driver's
 * `S3BodyReader`): on Node the first web stream loads Node's whole web-streams implementation,
 * about 6 ms of CPU on every worker's way to its first task, and each answer would pay a stream,
 * a reader and a promise per chunk on top of the socket's own stream.
 *
 * @module
 */
import type http from "node:http";
import type { S3BodyChunk, S3BodyReader } from "../storage/s3/options.ts";

/** How much of an answer's body is buffered ahead of its reader before the socket is paused. */
export const READ_AHEAD_BYTES = 64 * 1024;

/**
 * The body of `res`, read at once (so a small answer's socket goes back to the pool whether or
 * not it is read), up to {@link READ_AHEAD_BYTES} ahead. Errors are shaped as the driver reads
 * them: `failure` maps a socket error (an aborted request gives its signal's reason), and a
 * connection closed before the end is an `ECONNRESET`. `done` runs when the body ended, failed or
 * was cancelled (perhaps more than once).
 */
export class NodeBody implements S3BodyReader {
  readonly #res: http.IncomingMessage;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #failed: { error: unknown } | undefined;
  #cancelled = false;
  #wake: (() => void) | undefined;

  constructor(res: http.IncomingMessage, failure: (error: unknown) => unknown, done: () => void) {
    this.#res = res;
    const wake = () => {
      const w = this.#wake;
      this.#wake = undefined;
      w?.();
    };
    const fail = (error: unknown) => {
      done();
      this.#failed ??= { error: failure(error) };
      wake();
    };
    res.on("data", (chunk: Buffer) => {
      if (this.#cancelled) return;
      this.#chunks.push(chunk);
      this.#buffered += chunk.byteLength;
      if (this.#buffered >= READ_AHEAD_BYTES) res.pause();
      wake();
    });
    res.on("end", () => {
      done();
      this.#ended = true;
      wake();
    });
    res.on("error", fail);
    res.on("close", () => {
      if (res.complete || this.#ended) done();
      else fail(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
    });
  }

  /** The next chunk, or the end; rejects when the body failed (dropping what was buffered). */
  async read(): Promise<S3BodyChunk> {
    for (;;) {
      if (this.#failed !== undefined) throw this.#failed.error;
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        this.#buffered -= chunk.byteLength;
        if (this.#buffered < READ_AHEAD_BYTES && !this.#ended) this.#res.resume();
        return { done: false, value: chunk };
      }
      if (this.#ended || this.#cancelled) return { done: true, value: undefined };
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  /** The rest of the body, whole. */
  async whole(): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    for (let next = await this.read(); !next.done; next = await this.read())
      chunks.push(next.value);
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  /** Stop reading: what is buffered is dropped and the connection destroyed, not drained. */
  async cancel(): Promise<void> {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#chunks.length = 0;
    this.#buffered = 0;
    this.#res.destroy();
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }
}
