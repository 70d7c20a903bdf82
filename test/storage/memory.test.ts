import { describe, expect, it } from "vitest";
import { NotFoundError, PreconditionFailedError, ValidationError } from "../../src/errors.ts";
import { MemoryStorage, memoryStorage } from "../../src/storage/memory.ts";
import { describeConformance } from "./conformance.ts";

describeConformance("memory (versioning Enabled)", {
  storage: () => new MemoryStorage(),
  expectedVersioning: "Enabled",
});
describeConformance("memory (versioning Suspended)", {
  storage: () => new MemoryStorage({ versioning: "Suspended" }),
  expectedVersioning: "Suspended",
});
describeConformance("memory (versioning Disabled)", {
  storage: () => memoryStorage({ versioning: "Disabled" }),
  expectedVersioning: "Disabled",
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("MemoryStorage", () => {
  it("without versioning, an overwrite replaces the single null version", async () => {
    const s = new MemoryStorage({ versioning: "Disabled" });
    const a = await s.put("k", "a");
    const b = await s.put("k", "b", { ifMatch: a.etag });
    expect(a.versionId).toBeNull();
    expect(b.versionId).toBeNull();
    expect((await s.get("k")).versionId).toBeNull();
    expect(text((await s.get("k", { versionId: "null" })).body)).toBe("b");
    const { versions } = await s.listVersions({ prefix: "k" });
    expect(versions).toHaveLength(1);
    expect(versions[0]).toMatchObject({ versionId: "null", isLatest: true, etag: b.etag });
    await s.delete("k");
    expect((await s.listVersions({ prefix: "" })).versions).toEqual([]);
    await s.put("k", "c", { ifNoneMatch: "*" });
  });

  it("suspended versioning replaces the null version and deletes with a null marker", async () => {
    const s = new MemoryStorage({ versioning: "Suspended" });
    await s.put("k", "a");
    await s.delete("k");
    let { versions } = await s.listVersions({ prefix: "k" });
    expect(versions).toEqual([
      expect.objectContaining({ versionId: "null", isDeleteMarker: true, isLatest: true }),
    ]);
    await expect(s.get("k")).rejects.toBeInstanceOf(NotFoundError);
    await s.put("k", "b", { ifNoneMatch: "*" });
    ({ versions } = await s.listVersions({ prefix: "k" }));
    expect(versions).toEqual([
      expect.objectContaining({ versionId: "null", isDeleteMarker: false, isLatest: true }),
    ]);
    expect(await s.versioning()).toBe("Suspended");
  });

  it("enabled versioning adds a delete marker even for a missing key, as S3 does", async () => {
    const s = new MemoryStorage();
    await s.delete("ghost");
    await s.delete("ghost");
    const { versions } = await s.listVersions({ prefix: "ghost" });
    expect(versions.map((v) => [v.isDeleteMarker, v.isLatest])).toEqual([
      [true, true],
      [true, false],
    ]);
    expect((await s.list()).objects).toEqual([]);
  });

  it("version ids increase and ETags are unique per write, even for equal bodies", async () => {
    const s = new MemoryStorage();
    const a = await s.put("k", "same");
    const b = await s.put("k", "same");
    const c = await s.put("other", "same");
    expect(a.etag).not.toBe(b.etag);
    expect(b.etag).not.toBe(c.etag);
    expect(a.etag).toMatch(/^"[0-9a-f]+"$/);
    expect(a.versionId! < b.versionId!).toBe(true);
    expect(b.versionId! < c.versionId!).toBe(true);
  });

  it("deleteVersion removes history and makes the next newer version current", async () => {
    const s = new MemoryStorage();
    const v1 = await s.put("k", "one");
    const v2 = await s.put("k", "two");
    await s.delete("k");
    const marker = (await s.listVersions({ prefix: "k" })).versions[0]!;
    await s.deleteVersion("k", marker.versionId);
    expect(text((await s.get("k")).body)).toBe("two");
    await s.deleteVersion("k", v2.versionId!);
    expect(text((await s.get("k")).body)).toBe("one");
    await s.deleteVersion("k", "no-such-version");
    await s.deleteVersion("missing", "x");
    await s.deleteVersion("k", v1.versionId!);
    expect((await s.listVersions({ prefix: "" })).versions).toEqual([]);
    await expect(s.get("k")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("an object key and a deeper key with it as a directory coexist", async () => {
    const s = new MemoryStorage();
    await s.put("a/b", "deep");
    await s.put("a", "flat");
    await s.put("a-b", "dash");
    expect((await s.list()).objects.map((o) => o.key)).toEqual(["a", "a-b", "a/b"]);
  });

  it("uses the injected clock for times and the server clock", async () => {
    let t = 1_700_000_000_000;
    const s = new MemoryStorage({ now: () => t, clockSkewMs: 5_000 });
    expect(s.serverTime()).toBeUndefined();
    await s.put("k", "x");
    expect(s.serverTime()).toEqual({ serverMs: t + 5_000, resolutionMs: 1, sentMs: t, localMs: t });
    t += 60_000;
    const head = await s.head("k");
    expect(head.lastModified.getTime()).toBe(t - 60_000);
    expect(s.serverTime()).toEqual({ serverMs: t + 5_000, resolutionMs: 1, sentMs: t, localMs: t });
    const { versions } = await s.listVersions({ prefix: "k" });
    expect(versions[0]!.lastModified.getTime()).toBe(t - 60_000);
  });

  it("get of a delete marker's version id is NotFoundError", async () => {
    const s = new MemoryStorage();
    await s.put("k", "x");
    await s.delete("k");
    const marker = (await s.listVersions({ prefix: "k" })).versions[0]!;
    const error = await s.get("k", { versionId: marker.versionId }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
  });

  it("rejects bad keys and options with ValidationError", async () => {
    const s = new MemoryStorage();
    await expect(s.put("", "x")).rejects.toBeInstanceOf(ValidationError);
    await expect(s.put("x".repeat(1025), "x")).rejects.toBeInstanceOf(ValidationError);
    await expect(s.put("bad\uD800", "x")).rejects.toBeInstanceOf(ValidationError);
    await expect(s.put("k", "x", { ifMatch: '"e"', ifNoneMatch: "*" })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(s.list({ maxKeys: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.listVersions({ prefix: "", versionIdMarker: "1" })).rejects.toBeInstanceOf(
      ValidationError,
    );
    expect(() => new MemoryStorage({ versioning: "On" as "Enabled" })).toThrow(ValidationError);
    // S3 caps oversized pages rather than refusing them.
    expect((await s.list({ maxKeys: 5000 })).objects).toEqual([]);
  });

  it("compares ETags loosely: weak and unquoted forms match", async () => {
    const s = new MemoryStorage();
    const a = await s.put("k", "x");
    const bare = a.etag.slice(1, -1);
    const b = await s.put("k", "y", { ifMatch: bare });
    await s.put("k", "z", { ifMatch: `W/${b.etag}` });
    await expect(s.put("k", "w", { ifMatch: b.etag })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
  });
});
