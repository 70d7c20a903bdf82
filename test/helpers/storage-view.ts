/**
 * One process's view of a shared store, for tests of what a process knows: `storage` with some
 * methods replaced and the rest bound to it, and the common case, server time known only to
 * the second.
 */
import type { MemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/storage.ts";

/** `storage` with the methods in `replaced` swapped in, every other bound to `storage`. */
export function storageView(storage: Storage, replaced: Partial<Storage>): Storage {
  return new Proxy(storage, {
    get(target, name, receiver) {
      if (Object.hasOwn(replaced, name)) return replaced[name as keyof Storage];
      const value = Reflect.get(target, name, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * `inner` as a client sees it through HTTP: the server's time in whole seconds, as a `Date`
 * header gives it, so the client's bounds of it are a second wide.
 */
export function secondResolution(inner: MemoryStorage): Storage {
  return storageView(inner, {
    serverTime: () => {
      const s = inner.serverTime();
      if (s === undefined) return undefined;
      return { ...s, serverMs: Math.floor(s.serverMs / 1000) * 1000, resolutionMs: 1000 };
    },
  });
}
