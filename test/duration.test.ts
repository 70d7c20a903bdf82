import { describe, expect, it } from "vitest";
import { formatDuration, parseDate, parseDuration } from "../src/duration.ts";
import { ValidationError } from "../src/errors.ts";
import { Keys, parseTimeKey, partOf, timeKey } from "../src/keys.ts";

describe("durations and dates", () => {
  it("parses the accepted duration forms", () => {
    expect(parseDuration("90")).toBe(90_000);
    expect(parseDuration(1.5)).toBe(1500);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("2d")).toBe(172_800_000);
  });
  it("rejects bad durations naming the accepted forms", () => {
    for (const bad of ["1x", "", "h", "1h 30m", "-5", "1.2.3s"]) {
      expect(() => parseDuration(bad, "--delay")).toThrow(ValidationError);
    }
    expect(() => parseDuration("1x", "--delay")).toThrow(
      /--delay "1x": expected a number of seconds \(90\), or amounts with units/,
    );
    expect(() => parseDuration(-1)).toThrow(ValidationError);
  });
  it("parses dates only with a timezone", () => {
    expect(parseDate("2026-12-01T09:00:00Z")).toBe(Date.UTC(2026, 11, 1, 9));
    expect(parseDate("2026-12-01T10:00:00+01:00")).toBe(Date.UTC(2026, 11, 1, 9));
    expect(parseDate(1_800_000_000_000)).toBe(1_800_000_000_000);
    expect(() => parseDate("2026-12-01T09:00:00")).toThrow(/with a timezone/);
    expect(() => parseDate("next tuesday")).toThrow(ValidationError);
    expect(() => parseDate("2026-01-01")).toThrow(/with a timezone/);
  });
  it("formats durations for people", () => {
    expect(formatDuration(450)).toBe("450ms");
    expect(formatDuration(3200)).toBe("3.2s");
    expect(formatDuration(3_720_000)).toBe("1h 2m");
  });
});

describe("keys", () => {
  it("round-trips marker times at second resolution, readable and sortable", () => {
    const ms = Date.UTC(2026, 10, 28, 23, 59, 59, 500);
    expect(timeKey(ms)).toBe("20261128T235959Z");
    expect(parseTimeKey("20261128T235959Z")).toBe(ms - 500);
    expect(parseTimeKey("2026-11-28")).toBeUndefined();
  });
  it("builds and parses the layout under a prefix", () => {
    const k = new Keys("q1");
    expect(k.task("a1b2")).toBe("q1/tasks/a/a1b2.json");
    const m = k.newReadyMarker({ dueMs: 0, type: "email", part: 3, id: "a1b2", nonce: "n0nce" });
    expect(m).toBe("ready/email/3/19700101T000000Z/a1b2.n0nce");
    expect(k.parseReadyMarker(k.full(m))).toEqual({
      key: k.full(m),
      id: "a1b2",
      type: "email",
      part: 3,
      dueMs: 0,
      relative: m,
    });
    // A pending task's TTL rides in the key, rounded up to the second; ids may hold dots.
    const t = k.newReadyMarker({
      dueMs: 0,
      type: "email",
      part: 0,
      id: "a.20260101T000000Z",
      nonce: "0badf00d",
      expiresMs: 1500,
    });
    expect(t).toBe("ready/email/0/19700101T000000Z/a.20260101T000000Z.0badf00d.19700101T000002Z");
    expect(k.parseReadyMarker(k.full(t))).toMatchObject({
      id: "a.20260101T000000Z",
      expiresMs: 2000,
    });
    // Without a TTL, an id that ends in a time stays the id.
    const u = k.newReadyMarker({
      dueMs: 0,
      type: "e",
      part: 0,
      id: "a.20260101T000000Z",
      nonce: "ab",
    });
    expect(k.parseReadyMarker(k.full(u))).toMatchObject({ id: "a.20260101T000000Z" });
    expect(k.parseReadyMarker(k.full(u))?.expiresMs).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/x/19700101T000000Z/a.b")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/01/19700101T000000Z/a.b")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/0/19700101T000000Z/a.b/c")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/e/0/19700101T000000Z/ab")).toBeUndefined();
    expect(partOf("anything", 1)).toBe(0);
    const parts = new Set(Array.from({ length: 200 }, (_, i) => partOf(`id-${i}`, 8)));
    expect([...parts].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(k.parseReadyMarker("q1/ready/garbage")).toBeUndefined();
    expect(k.parseReadyMarker("q1/ready/19700101T000000Z/../a1b2.x")).toBeUndefined();
    expect(k.parseTaskKey("q1/tasks/a/a1b2.json")).toBe("a1b2");
    expect(k.parseTaskKey("q1/tasks/b/a1b2.json")).toBeUndefined();
    expect(() => new Keys("../x")).toThrow(ValidationError);
  });
});
