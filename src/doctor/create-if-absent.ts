/**
 * Check: create-if-absent. A second `If-None-Match: *` PUT on an existing key fails with 412 and
 * changes nothing.
 *
 * @module
 */
import { ConflictError, PreconditionFailedError } from "../errors.ts";
import { ADVICE_IF_NONE_MATCH } from "./advice.ts";
import { bail, CheckFailed, type Probe } from "./probe.ts";

/** Run the check, pushing evidence; throws `CheckFailed` when it fails. */
export async function checkCreateIfAbsent(p: Probe, evidence: string[]): Promise<void> {
  const key = p.key("create-if-absent");
  const first = p.body("create A");
  const a = await p.put(key, first, { ifNoneMatch: "*" });
  evidence.push(a.line);
  if (!a.ok) {
    if (a.error instanceof PreconditionFailedError) {
      throw new CheckFailed(
        "If-None-Match: * on a fresh random key was refused with 412: the condition is evaluated wrongly.",
        true,
        ADVICE_IF_NONE_MATCH,
      );
    }
    bail(a, "Creating a fresh key with If-None-Match: *");
  }
  let second = await p.put(key, p.body("create B"), { ifNoneMatch: "*" });
  // 409 means "a concurrent operation interfered": nothing else runs here, so try again.
  for (let i = 0; i < 3 && !second.ok && second.error instanceof ConflictError; i++) {
    evidence.push(second.line);
    second = await p.put(key, p.body("create B"), { ifNoneMatch: "*" });
  }
  evidence.push(`${second.line} (expected 412)`);
  if (second.ok) {
    throw new CheckFailed(
      "A second If-None-Match: * PUT on an existing key succeeded: the backend ignores create-if-absent.",
      true,
      ADVICE_IF_NONE_MATCH,
    );
  }
  if (!(second.error instanceof PreconditionFailedError)) {
    bail(second, "The second If-None-Match: * PUT");
  }
  const read = await p.get(key);
  evidence.push(read.line);
  if (!read.ok) bail(read, "Reading the object back");
  if (read.value?.body !== first) {
    throw new CheckFailed(
      "The second If-None-Match: * PUT answered 412 but changed the object anyway.",
      true,
      ADVICE_IF_NONE_MATCH,
    );
  }
}
