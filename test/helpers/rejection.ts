/** The error a promise rejects with, for tests that inspect it beyond `rejects.toThrow`. */
import type { OqError } from "../../src/errors.ts";

/** The error `promise` rejects with (typed as an `OqError`); fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<OqError> {
  try {
    await promise;
  } catch (error) {
    return error as OqError;
  }
  throw new Error("expected the promise to reject");
}
