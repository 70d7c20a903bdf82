import { describe, expect, it } from "vitest";
import { NotFoundError } from "../../src/errors.ts";
import { countRequests } from "../../src/storage/count.ts";
import { MemoryStorage } from "../../src/storage/memory.ts";

describe("countRequests", () => {
  it("counts each request kind, failed calls included", async () => {
    const s = countRequests(new MemoryStorage({ name: "memory:counted" }));
    expect(s.name).toBe("memory:counted");
    expect(s.total()).toBe(0);

    await s.put("k", "x");
    await s.put("k", "y");
    await s.get("k");
    await expect(s.get("missing")).rejects.toBeInstanceOf(NotFoundError);
    await s.head("k");
    await s.list({ prefix: "" });
    await s.listVersions({ prefix: "k" });
    await s.versioning();
    await s.delete("k");

    // toMatchObject: kinds added later (batch deletes) stay at zero here and must not break this.
    expect(s.counts).toMatchObject({ GET: 3, HEAD: 1, PUT: 2, LIST: 2, DELETE: 1 });
    expect(Object.values(s.counts).reduce((a, b) => a + b, 0)).toBe(9);
    expect(s.total()).toBe(9);
    expect(s.serverTime()).toBeDefined();

    s.reset();
    expect(Object.values(s.counts).every((n) => n === 0)).toBe(true);
    expect(s.total()).toBe(0);
    await s.head("k").catch(() => undefined);
    expect(s.counts.HEAD).toBe(1);
  });
});
