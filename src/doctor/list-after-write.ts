/**
 * Check: list-after-write. A listing shows a write, an overwrite and a delete at once.
 *
 * @module
 */
import { sameEtag } from "../storage/storage.ts";
import { ADVICE_LIST } from "./advice.ts";
import { bail, CheckFailed, describeError, type Probe } from "./probe.ts";

/** Run the check, pushing evidence; throws `CheckFailed` when it fails. */
export async function checkListAfterWrite(p: Probe, evidence: string[]): Promise<void> {
  const key = p.key("list-after-write");
  const listed = async (): Promise<string | undefined> => {
    try {
      const page = await p.queue.storage.list({ prefix: key, maxKeys: 10 });
      const found = page.objects.find((o) => o.key === key);
      evidence.push(
        `LIST prefix=${key} -> ${found === undefined ? "absent" : `present, ETag ${found.etag}`}`,
      );
      return found?.etag;
    } catch (error) {
      const line = `LIST prefix=${key} -> ${describeError(error)}`;
      evidence.push(line);
      bail({ ok: false, error }, "Listing");
    }
  };
  const w1 = await p.put(key, p.body("listed 1"));
  evidence.push(w1.line);
  if (!w1.ok) bail(w1, "A PUT");
  const e1 = await listed();
  if (e1 === undefined) {
    throw new CheckFailed(
      "An object written a moment ago is missing from the listing.",
      true,
      ADVICE_LIST,
    );
  }
  const w2 = await p.put(key, p.body("listed 2"));
  evidence.push(w2.line);
  if (!w2.ok) bail(w2, "An overwrite");
  const e2 = await listed();
  if (e2 === undefined || !sameEtag(e2, w2.value.etag)) {
    throw new CheckFailed(
      `After an overwrite the listing shows ${e2 === undefined ? "no object" : `the old ETag ${e2}`} instead of ${w2.value.etag}.`,
      true,
      ADVICE_LIST,
    );
  }
  try {
    await p.queue.storage.delete(key);
    evidence.push(`DELETE ${key} -> 204`);
  } catch (error) {
    evidence.push(`DELETE ${key} -> ${describeError(error)}`);
    bail({ ok: false, error }, "A DELETE");
  }
  if ((await listed()) !== undefined) {
    throw new CheckFailed("A deleted object still shows in the listing.", true, ADVICE_LIST);
  }
}
