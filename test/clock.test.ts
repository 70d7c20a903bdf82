import { describe, expect, it } from "vitest";
import { ServerClock } from "../src/clock.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/storage.ts";

function fakeStorage(samples: { serverMs: number; localMs: number }[]): Storage & { next(): void } {
  let i = -1;
  const base = new MemoryStorage();
  return Object.assign(Object.create(base) as Storage, {
    serverTime: () => (i < 0 ? undefined : samples[i]),
    next: () => {
      i++;
    },
  });
}

describe("ServerClock", () => {
  it("uses no offset before any response", () => {
    const clock = new ServerClock(fakeStorage([]), () => 1000);
    expect(clock.now()).toBe(1000);
  });

  it("keeps the tightest lower bound: server time never jumps back between responses", () => {
    // The server is 10.7 s ahead; Date headers truncate to whole seconds.
    const s = fakeStorage([
      { serverMs: 20_000, localMs: 9_400 }, // bound 10_600
      { serverMs: 21_000, localMs: 10_500 }, // bound 10_500
      { serverMs: 21_000, localMs: 10_250 }, // bound 10_750
    ]);
    let local = 10_000;
    const clock = new ServerClock(s, () => local);
    s.next();
    const first = clock.offsetMs();
    s.next();
    expect(clock.offsetMs()).toBe(first); // a lower sample does not pull it back
    s.next();
    expect(clock.offsetMs()).toBe(Math.max(first, 10_750));
    local = 20_000;
    expect(clock.now()).toBe(20_000 + Math.max(first, 10_750));
  });

  it("starts again when the local clock jumps", () => {
    const s = fakeStorage([
      { serverMs: 100_000, localMs: 90_000 },
      { serverMs: 101_000, localMs: 160_000 }, // local clock jumped a minute ahead
    ]);
    const clock = new ServerClock(s, () => 0);
    s.next();
    expect(clock.offsetMs()).toBe(10_000);
    s.next();
    expect(clock.offsetMs()).toBe(-59_000);
  });
});
