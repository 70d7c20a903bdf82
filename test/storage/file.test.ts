import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rename, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileStorage as FromEntryPoint } from "../../file.ts";
import {
  ConflictError,
  MalformedObjectError,
  NotFoundError,
  StorageError,
  ValidationError,
} from "../../src/errors.ts";
import { FileStorage, internals } from "../../src/runtime/file/storage.ts";
import { compareKeys } from "../../src/storage/storage.ts";
import { describeConformance } from "./conformance.ts";

const dirs: string[] = [];
async function tempRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "oq-file-test-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** Every file below `dir`, as paths relative to it. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

let conformanceRoot = "";
describeConformance("file", {
  storage: async () => {
    conformanceRoot = await tempRoot();
    return new FileStorage({ root: conformanceRoot });
  },
  expectedVersioning: "Enabled",
  cleanup: async () => {
    // Erasing every version must also remove the directories, or dead prefixes would slow lists.
    expect(await files(join(conformanceRoot, "live"))).toEqual([]);
    expect(await files(join(conformanceRoot, "versions"))).toEqual([]);
    expect(await readdir(join(conformanceRoot, "live")).catch(() => [])).toEqual([]);
    // Refused conditional writes must not leave their bodies or locks behind.
    expect(await readdir(join(conformanceRoot, "tmp"))).toEqual([]);
    expect(await readdir(join(conformanceRoot, "locks"))).toEqual([]);
  },
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("FileStorage", () => {
  it("is exported from the oq/file entry point", () => {
    expect(FromEntryPoint).toBe(FileStorage);
  });

  it("stores keys that are awkward as file names and lists them in byte order", async () => {
    const s = new FileStorage({ root: await tempRoot() });
    const keys = [
      "..",
      ".",
      "../escape",
      "a/../b",
      "./x",
      "a//b",
      "/leading",
      "trailing/",
      "/",
      "//",
      "CON",
      "con",
      "nul.json",
      "A",
      "a",
      "a/b",
      "a-b",
      "a0",
      "%41",
      "^a",
      "~o",
      "~",
      "x~o/y",
      ".DS_Store",
      "dot.",
      "sp ace /tab\t",
      "back\\slash",
      "e\u0301",
      "é",
      "日本/語",
      "😀",
      "\uFFFD",
      "ÿ",
    ];
    for (const key of keys) await s.put(key, `body:${key}`);
    for (const key of keys) {
      expect(text((await s.get(key)).body), key).toBe(`body:${key}`);
      expect((await s.head(key)).size, key).toBe(new TextEncoder().encode(`body:${key}`).length);
    }
    const sorted = [...keys].sort(compareKeys);
    const listed: string[] = [];
    let token: string | undefined;
    do {
      const page = await s.list({ maxKeys: 7, continuationToken: token });
      listed.push(...page.objects.map((o) => o.key));
      token = page.nextContinuationToken;
    } while (token !== undefined);
    expect(listed).toEqual(sorted);
    for (const key of keys) {
      const { versions } = await s.listVersions({ prefix: key, maxKeys: 1000 });
      expect(
        versions.filter((v) => v.key === key),
        key,
      ).toHaveLength(1);
    }
    for (const key of keys) await s.delete(key);
    expect((await s.list()).objects).toEqual([]);
  });

  it("mirrors key segments as directories, and prunes them when keys are deleted", async () => {
    const root = await tempRoot();
    const s = new FileStorage({ root });
    const ready = await s.put("ready/3/0001/task-a", "");
    const task = await s.put("tasks/3/task-a.json", "{}");
    expect(await files(join(root, "live"))).toEqual([
      join("ready", "3", "0001", `task-a~${ready.versionId}.0`),
      join("tasks", "3", `task-a.json~${task.versionId}.2`),
    ]);
    expect(await files(join(root, "versions"))).toEqual([
      join("ready", "3", "0001", "task-a~o", `${ready.versionId}.0`),
      join("tasks", "3", "task-a.json~o", `${task.versionId}.2`),
    ]);
    await s.delete("ready/3/0001/task-a");
    expect(await readdir(join(root, "live"))).toEqual(["tasks"]);
    // History stays: one version and one delete marker.
    expect((await files(join(root, "versions", "ready"))).length).toBe(2);
  });

  it("maxBytes refuses a version file swapped by hand for a huge one, by the file's own size", async () => {
    const root = await tempRoot();
    const s = new FileStorage({ root });
    const put = await s.put("p/k", "x");
    // Its name still records 1 byte; its content is 8 MiB.
    const path = join(root, "versions", "p", "k~o", `${put.versionId}.1`);
    await writeFile(path, Buffer.concat([Buffer.from('{"key":"p/k"}\n'), Buffer.alloc(8 << 20)]));
    const error = await s.get("p/k", { maxBytes: 1024 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedObjectError);
    expect(error).toMatchObject({ code: "MALFORMED", key: "p/k" });
    // Within the room the header line gets, the body itself is checked once read.
    await writeFile(path, Buffer.concat([Buffer.from('{"key":"p/k"}\n'), Buffer.alloc(2048)]));
    await expect(s.get("p/k", { maxBytes: 1024 })).rejects.toMatchObject({ code: "MALFORMED" });
    expect((await s.get("p/k", { maxBytes: 2048 })).body.length).toBe(2048);
  });

  it("ignores files it did not write", async () => {
    const root = await tempRoot();
    const s = new FileStorage({ root });
    await s.put("p/k", "x");
    await writeFile(join(root, "live", "p", ".DS_Store"), "junk");
    await writeFile(join(root, "live", "p", "README"), "junk");
    await mkdir(join(root, "live", "p", "Thumbs"), { recursive: true });
    await writeFile(join(root, "live", "p", "k~junk"), "junk");
    await writeFile(join(root, "versions", "p", "k~o", "notes.txt"), "junk");
    expect((await s.list({ prefix: "p/" })).objects.map((o) => o.key)).toEqual(["p/k"]);
    expect((await s.listVersions({ prefix: "p/" })).versions).toHaveLength(1);
  });

  it("reopening the directory sees the data and the history", async () => {
    const root = await tempRoot();
    const first = new FileStorage({ root });
    const v1 = await first.put("jobs/1", "one", { contentType: "application/json" });
    const v2 = await first.put("jobs/1", "two", { ifMatch: v1.etag });
    await first.put("jobs/2", "gone");
    await first.delete("jobs/2");

    const again = new FileStorage({ root });
    const got = await again.get("jobs/1");
    expect(text(got.body)).toBe("two");
    expect(got.etag).toBe(v2.etag);
    expect(got.contentType).toBe("application/octet-stream");
    expect((await again.get("jobs/1", { versionId: v1.versionId! })).contentType).toBe(
      "application/json",
    );
    await expect(again.get("jobs/2")).rejects.toBeInstanceOf(NotFoundError);
    const { versions } = await again.listVersions({ prefix: "jobs/" });
    expect(versions.map((v) => [v.key, v.isLatest, v.isDeleteMarker])).toEqual([
      ["jobs/1", true, false],
      ["jobs/1", false, false],
      ["jobs/2", true, true],
      ["jobs/2", false, false],
    ]);
    await again.put("jobs/1", "three", { ifMatch: got.etag });
    expect(text((await first.get("jobs/1")).body)).toBe("three");
  });

  it("uses the injected clock, and version ids still increase when it stands still or goes back", async () => {
    let t = 1_700_000_000_000;
    const s = new FileStorage({ root: await tempRoot(), now: () => t });
    const a = await s.put("k", "a");
    const b = await s.put("k", "b");
    t -= 10_000;
    const c = await s.put("k", "c");
    expect(a.versionId! < b.versionId!).toBe(true);
    expect(b.versionId! < c.versionId!).toBe(true);
    expect((await s.head("k")).lastModified.getTime()).toBe(1_700_000_000_000);
    t += 20_000;
    await s.put("k", "d");
    expect((await s.head("k")).lastModified.getTime()).toBe(t);
    expect(s.serverTime()).toEqual({ serverMs: t, resolutionMs: 1, sentMs: t, localMs: t });
  });

  it("recovers the listing index after a crash between commit and index update", async () => {
    const root = await tempRoot();
    const s = new FileStorage({ root });
    const one = await s.put("k", "one");
    const two = await s.put("k", "two");
    // As if the process died after committing "two" but before renaming the live entry.
    await rename(
      join(root, "live", `k~${two.versionId}.3`),
      join(root, "live", `k~${one.versionId}.3`),
    );
    expect((await s.list()).objects.map((o) => o.etag)).toEqual([one.etag]);
    // Reads go to the history, so they are never stale.
    expect(text((await s.get("k")).body)).toBe("two");
    expect((await s.head("k")).etag).toBe(two.etag);
    const three = await s.put("k", "three", { ifMatch: two.etag });
    expect((await s.list()).objects.map((o) => o.etag)).toEqual([three.etag]);
    expect(await readdir(join(root, "live"))).toEqual([`k~${three.versionId}.5`]);

    // As if the process died after committing a delete marker but before removing the entry.
    await s.delete("k");
    await writeFile(join(root, "live", `k~${three.versionId}.5`), "");
    expect((await s.list()).objects.map((o) => o.key)).toEqual(["k"]);
    await expect(s.get("k")).rejects.toBeInstanceOf(NotFoundError);
    // The queue deletes a listed key whose object is gone; that clears the ghost.
    await s.delete("k");
    expect((await s.list()).objects).toEqual([]);
    expect(await readdir(join(root, "live"))).toEqual([]);

    // Two entries for one key: the newer wins in listings, and the next write clears both.
    const four = await s.put("k", "four");
    await writeFile(join(root, "live", `k~${one.versionId}.3`), "");
    expect((await s.list()).objects.map((o) => o.etag)).toEqual([four.etag]);
    await s.put("k", "five");
    await s.delete("k");
    await s.put("k", "six");
    expect((await s.list()).objects).toHaveLength(1);
  });

  it("breaks a stale lock left by a crashed process, and times out on a live one", async () => {
    const root = await tempRoot();
    const s = new FileStorage({ root, lockStaleMs: 2_000, lockTimeoutMs: 300 });
    await s.put("warm", "x");
    const lock = join(root, "locks", internals.lockName("k"));
    await mkdir(lock);
    const fresh = await s.put("k", "x").catch((e: unknown) => e);
    expect(fresh).toBeInstanceOf(ConflictError);
    await expect(s.get("k")).rejects.toBeInstanceOf(NotFoundError);

    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const started = Date.now();
    await s.put("k", "y");
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(text((await s.get("k")).body)).toBe("y");

    // A crashed breaker's guard is stale too.
    await mkdir(lock);
    await mkdir(`${lock}.break`);
    await utimes(lock, old, old);
    await utimes(`${lock}.break`, old, old);
    await s.put("k", "z");
    expect(text((await s.get("k")).body)).toBe("z");
    expect(await readdir(join(root, "locks"))).toEqual([]);
  });

  it("rejects keys it cannot store with ValidationError", async () => {
    const s = new FileStorage({ root: await tempRoot() });
    await expect(s.put("", "x")).rejects.toBeInstanceOf(ValidationError);
    await expect(s.put(`a/${"x".repeat(300)}`, "x")).rejects.toBeInstanceOf(ValidationError);
    await expect(s.put("bad\uDC00", "x")).rejects.toBeInstanceOf(ValidationError);
    // Listing under a segment too long to store finds nothing rather than failing.
    expect((await s.list({ prefix: `${"x".repeat(300)}/` })).objects).toEqual([]);
    expect(() => new FileStorage({ root: "" })).toThrow(ValidationError);
  });

  it("turns file-system failures into StorageError with the key", async () => {
    const root = await tempRoot();
    await writeFile(join(root, "not-a-dir"), "");
    const s = new FileStorage({ root: join(root, "not-a-dir") });
    const error = await s.put("k", "x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).message).toMatch(/put k in file:/);
    await expect(s.get("k")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("compareKeys orders as UTF-8 bytes do, without encoding, and segment names round-trip", () => {
    // The reference: the keys' UTF-8 bytes compared one by one, as S3 orders them.
    const utf8 = new TextEncoder();
    const bytewise = (a: string, b: string) => {
      const x = utf8.encode(a);
      const y = utf8.encode(b);
      for (let i = 0; i < Math.min(x.length, y.length); i++)
        if (x[i] !== y[i]) return x[i]! - y[i]!;
      return x.length - y.length;
    };
    const alphabet = [
      "a",
      "b",
      "/",
      "-",
      "0",
      "~",
      "é",
      "\u07FF",
      "\uE000",
      "\uFFFD",
      "😀",
      "𝄞",
      " ",
      "A",
    ];
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed % n;
    };
    const word = () =>
      Array.from({ length: 1 + rand(5) }, () => alphabet[rand(alphabet.length)]).join("");
    for (let i = 0; i < 5_000; i++) {
      const a = word();
      const b = word();
      expect(Math.sign(compareKeys(a, b)), `${a} vs ${b}`).toBe(Math.sign(bytewise(a, b)));
      const seg = a.replaceAll("/", "");
      const name = internals.encodeSegment(seg);
      expect(name).toMatch(/^[a-z0-9_%^A-F.-]*$/);
      expect(name.startsWith(".") || name.endsWith("."), name).toBe(false);
      expect(internals.decodeSegment(name) ?? "", JSON.stringify(seg)).toBe(seg);
    }
  });

  it("lists a small prefix quickly next to a large directory", async () => {
    const s = new FileStorage({ root: await tempRoot() });
    const ready = Array.from({ length: 300 }, (_, i) => `ready/3/${String(i).padStart(5, "0")}`);
    const tasks = Array.from(
      { length: 1_500 },
      (_, i) => `tasks/3/${String(i).padStart(8, "0")}.json`,
    );
    for (let i = 0; i < ready.length + tasks.length; i += 32) {
      await Promise.all(
        [...ready, ...tasks]
          .slice(i, i + 32)
          .map((key) => s.put(key, key.startsWith("t") ? "{}" : "")),
      );
    }
    await s.list({ prefix: "ready/3/" });
    const started = performance.now();
    const page = await s.list({ prefix: "ready/3/" });
    const elapsed = performance.now() - started;
    expect(page.objects.map((o) => o.key)).toEqual(ready);
    // Generous for slow CI disks; typically a few milliseconds.
    expect(elapsed).toBeLessThan(250);
    const all = await s.list({ prefix: "tasks/3/", startAfter: "tasks/3/00001490.json" });
    expect(all.objects).toHaveLength(9);
  });
});

describe("FileStorage across processes", () => {
  const childScript = fileURLToPath(new URL("./file-race-child.ts", import.meta.url));
  const repo = fileURLToPath(new URL("../../", import.meta.url));
  const children: {
    proc: ChildProcessWithoutNullStreams;
    lines: Interface;
    queue: string[];
    waiters: ((l: string) => void)[];
  }[] = [];
  let root = "";

  const nextLine = (c: (typeof children)[number]): Promise<string> =>
    c.queue.length > 0
      ? Promise.resolve(c.queue.shift()!)
      : new Promise((resolve) => c.waiters.push(resolve));

  beforeAll(async () => {
    root = await tempRoot();
    for (let i = 0; i < 4; i++) {
      const proc = spawn(process.execPath, ["--import", "tsx", childScript, root, `child${i}`], {
        cwd: repo,
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stderr = "";
      proc.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      proc.on("exit", (code) => {
        if (code !== 0 && code !== null) console.error(`child${i} exited ${code}: ${stderr}`);
      });
      const lines = createInterface({ input: proc.stdout });
      const c = { proc, lines, queue: [] as string[], waiters: [] as ((l: string) => void)[] };
      lines.on("line", (line) => {
        const w = c.waiters.shift();
        if (w) w(line);
        else c.queue.push(line);
      });
      children.push(c);
    }
    await Promise.all(children.map((c) => nextLine(c)));
  });

  afterAll(() => {
    for (const c of children) {
      c.proc.stdin.end();
      c.proc.kill();
    }
  });

  async function everyone(command: Record<string, unknown>): Promise<Record<string, unknown>[]> {
    const at = Date.now() + 15;
    for (const c of children) c.proc.stdin.write(`${JSON.stringify({ ...command, at })}\n`);
    return Promise.all(
      children.map(async (c) => JSON.parse(await nextLine(c)) as Record<string, unknown>),
    );
  }

  it("4 processes racing with ifMatch: exactly one winner per round", async () => {
    const s = new FileStorage({ root });
    let etag = (await s.put("race/cas", "start")).etag;
    for (let round = 0; round < 30; round++) {
      const results = await everyone({ op: "match", round, key: "race/cas", etag });
      const winners = results.filter((r) => r.won === true);
      expect(winners, JSON.stringify(results)).toHaveLength(1);
      expect(results.filter((r) => r.won !== true).map((r) => r.code)).toEqual(
        Array(3).fill("PRECONDITION_FAILED"),
      );
      const got = await s.get("race/cas");
      expect(text(got.body)).toBe(winners[0]!.body);
      etag = got.etag;
      expect(etag).toBe(winners[0]!.etag);
    }
  });

  it("4 processes racing with ifNoneMatch: exactly one creator per key", async () => {
    const s = new FileStorage({ root });
    for (let round = 0; round < 30; round++) {
      const key = `race/create/${round}`;
      const results = await everyone({ op: "create", round, key });
      const winners = results.filter((r) => r.won === true);
      expect(winners, JSON.stringify(results)).toHaveLength(1);
      expect(text((await s.get(key)).body)).toBe(winners[0]!.body);
    }
  });

  it("4 processes writing one key keep every version, ids strictly increasing", async () => {
    const s = new FileStorage({ root });
    await everyone({ op: "burst", round: 0, key: "race/burst", n: 40 });
    const ids: string[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      const page = await s.listVersions({
        prefix: "race/burst",
        keyMarker,
        versionIdMarker,
        maxKeys: 50,
      });
      ids.push(...page.versions.map((v) => v.versionId));
      if (!page.isTruncated) break;
      keyMarker = page.nextKeyMarker;
      versionIdMarker = page.nextVersionIdMarker;
    }
    expect(ids).toHaveLength(160);
    expect(new Set(ids).size).toBe(160);
    expect([...ids].sort().reverse()).toEqual(ids);
    // No lock or temp file left behind.
    expect(await readdir(join(root, "locks"))).toEqual([]);
    expect(await readdir(join(root, "tmp"))).toEqual([]);
  });
});
