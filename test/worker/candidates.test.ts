/**
 * The untried markers of one listing and the orders a worker walks them in
 * (`src/worker/candidates.ts`): lazy walks, markers set aside, the read-ahead's marker first.
 */
import { describe, expect, it } from "vitest";
import { Candidates } from "../../src/worker/candidates.ts";
import type { Candidate } from "../../src/worker/monitor.ts";

const marker = (id: string, priority = 0): Candidate => ({
  key: `q/ready/t/0/${id}`,
  relative: `ready/t/0/${id}`,
  dueMs: 0,
  type: "t",
  part: 0,
  id,
  priority,
  lastModified: new Date(0),
});
const ids = (list: Iterable<Candidate>) => [...list].map((m) => m.id);

describe("Candidates", () => {
  const listing = () => ["a", "b", "c", "d", "e"].map((id) => marker(id));

  it("walks in the listing's order, the read-ahead's marker first, from a random point on", () => {
    const c = new Candidates(listing());
    expect(ids(c.walk())).toEqual(["a", "b", "c", "d", "e"]);
    expect(ids(c.walk({ first: "q/ready/t/0/d" }))).toEqual(["d", "a", "b", "c", "e"]);
    expect(ids(c.walk({ random: () => 0.4 }))).toEqual(["c", "d", "e", "a", "b"]);
    expect(ids(c.walk({ first: "q/ready/t/0/a", random: () => 0.4 }))).toEqual([
      "a",
      "c",
      "d",
      "e",
      "b",
    ]);
    // A key not in the listing changes nothing.
    expect(ids(c.walk({ first: "q/ready/t/0/zz" }))).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("sets tried markers aside, also during a walk, and ignores markers of another listing", () => {
    const list = listing();
    const c = new Candidates(list);
    c.remove(list[1]!);
    c.remove(marker("a")); // same key, another listing's object
    c.remove(marker("x"));
    expect(c.size).toBe(4);
    expect(ids(c.walk({ first: "q/ready/t/0/b" }))).toEqual(["a", "c", "d", "e"]);
    const seen: string[] = [];
    for (const m of c.walk()) {
      seen.push(m.id);
      c.remove(m);
      if (m.id === "a") c.remove(list[3]!);
    }
    expect(seen).toEqual(["a", "c", "e"]);
    expect(c.size).toBe(0);
    expect(c.left()).toEqual([]);
    c.remove(list[0]!);
    expect(c.size).toBe(0);
  });

  it("walks lazily: a walk that stops at its first marker looks at no other", () => {
    const list = listing();
    const c = new Candidates(list);
    const walk = c.walk()[Symbol.iterator]();
    expect(walk.next().value?.id).toBe("a");
    // Set aside after the walk began: not yielded later.
    c.remove(list[1]!);
    expect(walk.next().value?.id).toBe("c");
  });

  it("walks this worker's own share from past the head of markers tried or not its own", () => {
    const list = ["a1", "b1", "a2", "b2", "a3"].map((id) => marker(id));
    const c = new Candidates(list);
    const asked: string[] = [];
    const mine = (id: string) => {
      asked.push(id);
      return id.startsWith("a");
    };
    const peers = ["w1", "w2"];
    expect(ids(c.walk({}, { mine, version: peers }))).toEqual(["a1", "a2", "a3"]);
    c.remove(list[0]!);
    asked.length = 0;
    // a1 tried, b1 not ours: the walk after that starts at a2 and asks about nothing before it.
    expect(ids(c.walk({}, { mine, version: peers }))).toEqual(["a2", "a3"]);
    expect(ids(c.walk({}, { mine, version: peers }))).toEqual(["a2", "a3"]);
    expect(asked).toEqual(["b1", "a2", "b2", "a3", "a2", "b2", "a3"]);
    // A change of peers may make b1 ours: the next walk starts at the head again.
    const everything = { mine: () => true, version: ["w1"] };
    expect(ids(c.walk({}, everything))).toEqual(["b1", "a2", "b2", "a3"]);
    // The read-ahead's marker comes first even past the head; a rotated walk sees all of ours.
    expect(ids(c.walk({ first: "q/ready/t/0/a3" }, { mine, version: peers }))).toEqual([
      "a3",
      "a2",
    ]);
    expect(ids(c.walk({ random: () => 0 }, { mine, version: peers }))).toEqual(["a2", "a3"]);
  });

  it("knows once whether priorities are mixed, and steals newest first, higher priorities first", () => {
    expect(new Candidates(listing()).mixed).toBe(false);
    const mixed = new Candidates([marker("a", 1), marker("b"), marker("c", 1), marker("d")]);
    expect(mixed.mixed).toBe(true);
    expect(ids(mixed.stealOrder(() => 0))).toEqual(["c", "a", "d", "b"]);
    expect(ids(new Candidates(listing()).stealOrder(() => 0))).toEqual(["e", "d", "c", "b", "a"]);
  });
});
