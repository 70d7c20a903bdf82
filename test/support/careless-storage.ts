/**
 * A storage that drops every option of `get` (`maxBytes`, `versionId`), as a hand-written
 * `Storage` that predates them would: for tests that oq still checks what such a storage returns.
 */
import type { Storage } from "../../src/storage/storage.ts";

/** `inner`, but its `get` ignores its options; everything else as `inner` does it. */
export function ignoringGetOptions(inner: Storage): Storage {
  return new Proxy(inner, {
    get(target, name) {
      if (name === "get") return (key: string) => target.get(key);
      const value = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
