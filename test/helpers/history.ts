import { expect } from "vitest";
import { TRANSITIONS } from "../../src/task/transitions.ts";

/** Every consecutive pair of versions must be an allowed transition. */
export function expectValidHistory(events: string[]): void {
  expect(events[0]).toBe("submitted");
  for (let i = 1; i < events.length; i++) {
    const allowed = TRANSITIONS[events[i - 1] as keyof typeof TRANSITIONS];
    expect(allowed, `${events[i - 1]} -> ${events[i]} in ${events.join(",")}`).toContain(events[i]);
  }
}
