/**
 * `readPrefix`, the one bounded read of a body stream (bounded GETs, error answers): what it
 * keeps, when it says the stream was whole, and that it stops pulling past the bound.
 */
import { describe, expect, it } from "vitest";
import { readPrefix } from "../../src/storage/max-bytes.ts";

/** A stream of `chunks`, counting the chunks pulled and whether it was cancelled. */
function chunked(chunks: number[][]) {
  const seen = { pulled: 0, cancelled: false };
  let next = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = chunks[next++];
        if (chunk === undefined) controller.close();
        else {
          seen.pulled++;
          controller.enqueue(new Uint8Array(chunk));
        }
      },
      cancel() {
        seen.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

describe("readPrefix", () => {
  it("reads a stream of exactly the bound whole, across chunks", async () => {
    const { stream, seen } = chunked([[1, 2], [3], [4, 5]]);
    const read = await readPrefix(stream, 5);
    expect(read).toEqual({ bytes: new Uint8Array([1, 2, 3, 4, 5]), complete: true });
    expect(seen.cancelled).toBe(false);
  });

  it("keeps the first maxBytes when a chunk crosses the bound, and cancels without pulling more", async () => {
    const { stream, seen } = chunked([[1, 2], [3, 4, 5], [6], [7]]);
    const read = await readPrefix(stream, 3);
    expect(read).toEqual({ bytes: new Uint8Array([1, 2, 3]), complete: false });
    expect(seen).toEqual({ pulled: 2, cancelled: true });
  });

  it("with a bound of 0: an empty stream is whole, any byte is past it", async () => {
    expect(await readPrefix(chunked([]).stream, 0)).toEqual({
      bytes: new Uint8Array(0),
      complete: true,
    });
    const { stream, seen } = chunked([[9], [9]]);
    expect(await readPrefix(stream, 0)).toEqual({ bytes: new Uint8Array(0), complete: false });
    expect(seen).toEqual({ pulled: 1, cancelled: true });
  });

  it("gives bytes of the caller's own, not a view into a larger buffer", async () => {
    const pooled = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(pooled.subarray(2, 5));
        controller.close();
      },
    });
    const { bytes } = await readPrefix(stream, 10);
    expect(bytes).toEqual(new Uint8Array([2, 3, 4]));
    expect(bytes.buffer.byteLength).toBe(3);
  });
});
