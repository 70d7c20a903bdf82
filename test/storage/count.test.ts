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

    expect(s.counts).toEqual({ GET: 3, HEAD: 1, PUT: 2, LIST: 2, DELETE: 1 });
    expect(s.total()).toBe(9);
    expect(s.serverTime()).toBeDefined();

    s.reset();
    expect(s.counts).toEqual({ GET: 0, HEAD: 0, PUT: 0, LIST: 0, DELETE: 0 });
    expect(s.total()).toBe(0);
    await s.head("k").catch(() => undefined);
    expect(s.counts.HEAD).toBe(1);
  });
});
