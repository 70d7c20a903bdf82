/**
 * A worker's handler slots (src/worker/slots.ts): handlers hold slots; an attempt whose handler
 * returned gives its slot up while its outcome is written, `concurrency` writes at most; a write
 * place that frees goes to the oldest attempt waiting for one.
 */
import { describe, expect, it } from "vitest";
import { Slots } from "../../src/worker/slots.ts";

const attempt = (id: string, type = "t") => ({ id, type });

describe("worker slots", () => {
  it("a returned handler frees its slot while fewer than `concurrency` writes are under way", () => {
    const slots = new Slots(1);
    const a = attempt("a");
    slots.add(a);
    expect(slots.size).toBe(1);
    expect(slots.handled(a)).toBe(true);
    expect(slots.size).toBe(0);
    // Still here: its task is not claimed again until its write ends.
    expect(slots.has("a")).toBe(true);
    slots.freed(a);
    expect(slots.has("a")).toBe(false);
  });

  it("a handler returning while the write places are full waits, and gets the first that frees", () => {
    const slots = new Slots(1);
    const [a, b, c] = [attempt("a"), attempt("b"), attempt("c")];
    slots.add(a);
    slots.handled(a);
    slots.add(b);
    expect(slots.handled(b)).toBe(false);
    expect(slots.size).toBe(1);
    slots.freed(a);
    // b's write now has a's place: b's slot is free though b's write has not ended.
    expect(slots.size).toBe(0);
    slots.add(c);
    expect(slots.handled(c)).toBe(false);
    expect(slots.size).toBe(1);
    slots.freed(b);
    expect(slots.size).toBe(0);
  });

  it("waiting attempts get places oldest first, never more than `concurrency` at once", () => {
    const slots = new Slots(2);
    const list = ["a", "b", "c", "d", "e"].map((id) => attempt(id));
    for (const x of list) slots.add(x);
    expect(list.map((x) => slots.handled(x))).toEqual([true, true, false, false, false]);
    expect(slots.size).toBe(3);
    slots.freed(list[0]!);
    expect(slots.size).toBe(2);
    // An attempt that ends while waiting (given up, say) leaves the queue and frees no place.
    slots.freed(list[3]!);
    expect(slots.size).toBe(1);
    slots.freed(list[1]!);
    expect(slots.size).toBe(0);
    expect([...slots.attempts.keys()]).toEqual(["c", "e"]);
  });

  it("counts the slots of a type, not the writes", () => {
    const slots = new Slots(4);
    const [a, b, c] = [attempt("a", "x"), attempt("b", "x"), attempt("c", "y")];
    for (const x of [a, b, c]) slots.add(x);
    slots.handled(a);
    expect(slots.takenBy("x")).toBe(1);
    expect(slots.takenBy("y")).toBe(1);
  });

  it("a later attempt of the same task is not dropped when an earlier one is freed", () => {
    const slots = new Slots(1);
    const first = attempt("a");
    const second = attempt("a");
    slots.add(first);
    slots.add(second);
    slots.freed(first);
    expect(slots.attempts.get("a")).toBe(second);
  });
});
