/**
 * Ordered walks over the `live/` and `versions/` trees: the leaves under a prefix, in UTF-8
 * byte order of their keys, reading only the directories that can hold matching keys.
 *
 * @module
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { ValidationError } from "../../errors.ts";
import { compareKeys } from "../../storage/storage.ts";
import { code } from "./fs.ts";
import { encodeDir, parseEntry, type VersionEntry } from "./names.ts";

/** A key found by a walk: `path` is its history directory or its live entry. */
export interface Leaf {
  key: string;
  path: string;
  /** For live entries: the current version the name records. */
  current?: VersionEntry;
}

/**
 * Keys a walk leaves out from here on: every key that starts with `prefix`. The caller may set it
 * between two leaves (a listing that rolled a leaf up into a prefix is done with that prefix),
 * and the walk then neither yields those keys nor reads the directories that hold only them.
 */
export interface WalkSkip {
  prefix?: string;
}

/**
 * Yield the leaves of a tree under `prefix` in UTF-8 byte order of their keys, starting after
 * `after` (or at it, with `inclusive`) and leaving out what `skip` names when it is reached.
 * Only directories that can hold matching keys are read.
 */
export async function* walk(
  base: string,
  prefix: string,
  after: string | undefined,
  inclusive: boolean,
  tree: "live" | "history",
  skip: WalkSkip = {},
): AsyncGenerator<Leaf, void, undefined> {
  const slash = prefix.lastIndexOf("/");
  const dirPart = prefix.slice(0, slash + 1);
  const partial = prefix.slice(slash + 1);
  let start = base;
  if (dirPart !== "") {
    try {
      start = join(base, ...dirPart.slice(0, -1).split("/").map(encodeDir));
    } catch (error) {
      // A segment too long to store cannot have been stored: nothing matches.
      if (error instanceof ValidationError) return;
      throw error;
    }
  }
  yield* walkDir(start, dirPart, partial, after, inclusive, tree, skip);
}

async function* walkDir(
  dir: string,
  keyPrefix: string,
  partial: string,
  after: string | undefined,
  inclusive: boolean,
  tree: "live" | "history",
  skip: WalkSkip,
): AsyncGenerator<Leaf, void, undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (code(error) === "ENOENT" || code(error) === "ENOTDIR") return;
    throw error;
  }
  const entries: { sortKey: string; name: string; leaf: boolean; current?: VersionEntry }[] = [];
  for (const name of names) {
    const parsed = parseEntry(name, tree);
    if (parsed === undefined || !parsed.segment.startsWith(partial)) continue;
    const key = keyPrefix + parsed.segment;
    if (parsed.leaf) {
      if (after !== undefined) {
        const c = compareKeys(key, after);
        if (c < 0 || (c === 0 && !inclusive)) continue;
      }
      const entry: (typeof entries)[number] = { sortKey: key, name, leaf: true };
      if (parsed.current !== undefined) entry.current = parsed.current;
      entries.push(entry);
    } else {
      const sortKey = `${key}/`;
      // Every key below starts with sortKey; skip the subtree when all of them sort before `after`.
      if (after !== undefined && !after.startsWith(sortKey) && compareKeys(sortKey, after) < 0) {
        continue;
      }
      entries.push({ sortKey, name, leaf: false });
    }
  }
  sortEntries(entries);
  let previous: string | undefined;
  for (const e of entries) {
    if (e.sortKey === previous) continue;
    previous = e.sortKey;
    // A directory's sort key `k/` starts every key below it, so one test covers its subtree.
    if (skip.prefix !== undefined && e.sortKey.startsWith(skip.prefix)) continue;
    const path = join(dir, e.name);
    if (e.leaf) {
      const leaf: Leaf = { key: e.sortKey, path };
      if (e.current !== undefined) leaf.current = e.current;
      yield leaf;
    } else {
      const inner = after?.startsWith(e.sortKey) ? after : undefined;
      yield* walkDir(path, e.sortKey, "", inner, inclusive, tree, skip);
    }
  }
}

/**
 * Order a directory's entries by full key. A leaf `k` and a directory `k/` never share a sort
 * key; two live entries of one key only exist after a crash, and the newer one sorts first and
 * wins.
 */
function sortEntries(entries: { sortKey: string; current?: VersionEntry }[]): void {
  entries.sort(
    (a, b) =>
      compareKeys(a.sortKey, b.sortKey) ||
      ((b.current?.versionId ?? "") > (a.current?.versionId ?? "") ? 1 : -1),
  );
}
