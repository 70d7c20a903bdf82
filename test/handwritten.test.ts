/**
 * A task written by hand, exactly as docs/protocol.md ("Writing a task by hand") says, runs.
 *
 * The test takes everything from the doc: it runs the doc's shell script with `aws` replaced by
 * a stub that prints its arguments (so the keys, their order and the write conditions are the
 * doc's), takes the `task.json` body from the doc's JSON block, writes both with the storage API
 * only (no `Queue.submit`), and checks that a worker completes the task. The doc and the code
 * cannot drift apart without this failing.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Keys, shardOf } from "../src/keys.ts";
import type { Logger } from "../src/logger.ts";
import { internals } from "../src/queue/internals.ts";
import { Queue } from "../src/queue/queue.ts";
import { MARKER_GRACE_MS } from "../src/queue/ready-index.ts";
import { countRequests } from "../src/storage/count.ts";
import { MemoryStorage } from "../src/storage/memory.ts";
import { DEFAULT_BACKOFF } from "../src/task/backoff.ts";
import { encodeTask } from "../src/task/record.ts";
import { createTask } from "../src/task/transitions.ts";
import { Worker } from "../src/worker/worker.ts";
import { type TargetInstance, targets } from "./helpers/targets.ts";
import { fast, pause, until } from "./helpers/wait.ts";

/** The "Writing a task by hand" section of docs/protocol.md. */
function docSection(): string {
  const doc = readFileSync(resolve(import.meta.dirname, "../docs/protocol.md"), "utf8");
  const start = doc.indexOf("\n## Writing a task by hand\n");
  expect(start, "docs/protocol.md has a 'Writing a task by hand' section").toBeGreaterThan(0);
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

function fenced(section: string, lang: string): string {
  const m = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\\n\`\`\``).exec(section);
  expect(m, `a \`\`\`${lang} block`).not.toBeNull();
  return m![1]!;
}

/** One `aws` invocation of the doc's script: its arguments, and `--flag value` pairs. */
interface AwsCall {
  args: string[];
  flags: Map<string, string>;
}

/** Run the doc's script with `aws` stubbed to print its arguments, one per line. */
function runScript(script: string): AwsCall[] {
  const stub = `aws() { echo '@@call'; for a in "$@"; do printf '%s\\n' "$a"; done; }\n`;
  const printed = execFileSync("sh", ["-c", stub + script], { encoding: "utf8" });
  return printed
    .split("@@call\n")
    .slice(1)
    .map((chunk) => {
      const args = chunk.replace(/\n$/, "").split("\n");
      const flags = new Map<string, string>();
      for (const [i, a] of args.entries()) {
        if (a.startsWith("--")) flags.set(a, args[i + 1]!);
      }
      return { args, flags };
    });
}

const section = docSection();
const script = fenced(section, "sh");
const body = fenced(section, "json");
const record = JSON.parse(body) as { id: string; type: string; input: unknown; marker: string };
const shardLine = /^SHARD=.*$/m.exec(script)?.[0];
const docPrefix = /^PREFIX=(\S*)/m.exec(script)?.[1] ?? "";

describe("the doc's hand-written task (issue 14)", () => {
  it("computes the shard in the shell exactly as the code does", () => {
    expect(shardLine).toBeDefined();
    for (const id of ["Job-7", "A1", "abc", "F00", "0x", "9z", "zeta", "x.y", "B:c"]) {
      const shard = execFileSync("sh", ["-c", `ID='${id}'\n${shardLine}\nprintf %s "$SHARD"`], {
        encoding: "utf8",
      });
      expect({ id, shard }).toEqual({ id, shard: shardOf(id) });
    }
  });

  it("lists every field of the task record, and the JSON body has exactly those", () => {
    const documented = [...section.matchAll(/^\| `(\w+)`\s+\|/gm)].map((m) => m[1]);
    const real = Object.keys(
      createTask(
        {
          id: "x",
          type: "t",
          input: null,
          maxRetries: 3,
          backoff: DEFAULT_BACKOFF,
          timeoutSeconds: null,
          availableAt: 0,
          expiresAt: null,
          idempotencyKey: null,
          marker: "m",
        },
        0,
      ),
    );
    expect(new Set(documented)).toEqual(new Set(real));
    expect(documented.length).toBe(real.length);
    expect(new Set(Object.keys(record))).toEqual(new Set(real));
  });
});

for (const target of targets) {
  describe(`a task written by hand as docs/protocol.md says, on ${target.name}`, () => {
    let env: TargetInstance;
    const workers: Worker[] = [];
    beforeEach(async () => {
      env = await target.create();
    });
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 0 })));
      await env.cleanup();
    });

    it("is completed by a worker (issue 14: Job-7 under the shard the doc implied was lost)", async () => {
      const calls = runScript(script);
      expect(calls.map((c) => c.args.slice(0, 2).join(" "))).toEqual([
        "s3api put-object",
        "s3api put-object",
      ]);
      const [marker, task] = calls as [AwsCall, AwsCall];
      // Marker first, empty; then the task, create-if-absent, with the doc's body.
      expect(marker.flags.has("--body")).toBe(false);
      expect(task.flags.get("--body")).toBe("task.json");
      expect(task.flags.get("--if-none-match")).toBe("*");
      const markerKey = marker.flags.get("--key")!;
      const taskKey = task.flags.get("--key")!;
      expect(markerKey).toBe(`${docPrefix}${record.marker}`);

      const { storage } = env;
      await storage.put(env.prefix + markerKey, new Uint8Array(0));
      await storage.put(env.prefix + taskKey, body, {
        ifNoneMatch: "*",
        contentType: task.flags.get("--content-type")!,
      });

      const queue = new Queue({ storage, prefix: env.prefix + docPrefix });
      const seen: unknown[] = [];
      const worker = new Worker(queue, fast).task(record.type, (input) => {
        seen.push(input);
        return { sent: true };
      });
      workers.push(worker);
      await worker.start();
      const done = await queue.wait(record.id, { timeout: 20 });
      expect(done.status).toBe("completed");
      expect(done.output).toEqual({ sent: true });
      expect(seen).toEqual([record.input]);
    });

    it("a pending record with a cancel request is cancelled, not read at every listing", async () => {
      const plain = new Queue({ storage: env.storage, prefix: env.prefix });
      const t = await plain.submit("job", null);
      const stored = (await internals(plain).read(t.id))!;
      // As an operator might write it: still pending, with a cancel request.
      const handWritten = {
        ...stored.task,
        cancel: { requestedAt: stored.task.createdAt, reason: "by hand" },
      };
      await env.storage.put(plain.keys.task(t.id), encodeTask(handWritten), {
        ifMatch: stored.etag,
      });
      const counted = countRequests(env.storage);
      const ran: string[] = [];
      const worker = new Worker(new Queue({ storage: counted, prefix: env.prefix }), fast).task(
        "job",
        () => void ran.push(t.id),
      );
      workers.push(worker);
      await worker.start();
      // Before: the claim refused it in silence and every listing read it again (4,004 GETs in
      // 20 s for 200 such tasks), and it never ended.
      await until("cancelled", async () => (await plain.get(t.id)).status === "cancelled");
      const done = await plain.get(t.id);
      expect(done.cancel).toEqual({ requestedAt: stored.task.createdAt, reason: "by hand" });
      const before = counted.counts.GET;
      await pause(1_000);
      expect(ran).toEqual([]);
      expect(counted.counts.GET - before).toBeLessThanOrEqual(2);
    });

    it("a record whose type is not its marker's is reported once, naming the fix", async () => {
      const plain = new Queue({ storage: env.storage, prefix: env.prefix });
      const t = await plain.submit("job", null);
      const stored = (await internals(plain).read(t.id))!;
      // Hand-edited to another type; its marker still sits in the `job` partition.
      await env.storage.put(plain.keys.task(t.id), encodeTask({ ...stored.task, type: "other" }), {
        ifMatch: stored.etag,
      });
      const warnings: string[] = [];
      const logger: Logger = { info() {}, warn: (m) => warnings.push(m), error() {} };
      const queue = new Queue({ storage: env.storage, prefix: env.prefix, logger });
      const worker = new Worker(queue, fast).task("job", () => "ran");
      workers.push(worker);
      await worker.start();
      // Before: skipped as a type this worker does not run, with no word.
      await until("warned", () => warnings.some((w) => w.includes("oq repair")));
      await pause(500);
      const about = warnings.filter((w) => w.includes(t.id));
      expect(about).toHaveLength(1);
      expect(about[0]).toContain("is of type other but indexed under job");
      expect((await plain.get(t.id)).status).toBe("pending");
    });

    it("finds a task stored under a wrong shard, so its marker is not swept (issue 14)", async () => {
      const queue = new Queue({ storage: env.storage, prefix: env.prefix });
      expect(await internals(queue).findMisplaced("Job-7")).toBeUndefined();
      const wrong = `${env.prefix}tasks/b/Job-7.json`;
      await env.storage.put(wrong, body);
      expect(await internals(queue).findMisplaced("Job-7")).toBe(wrong);
      // A task at its right key is not "misplaced".
      expect(queue.keys.misplacedTasks("Job-7")).not.toContain(queue.keys.task("Job-7"));
    });
  });
}

describe("a hand-written task no worker can find", () => {
  it("keeps its marker and logs what to fix, as for a task naming a missing marker (issue 14)", async () => {
    let now = Date.parse("2026-06-01T00:00:00Z");
    const storage = new MemoryStorage({ now: () => now });
    const warnings: string[] = [];
    const logger: Logger = { info() {}, warn: (m) => warnings.push(m), error() {} };
    const queue = new Queue({ storage, now: () => now, logger });
    const keys = new Keys();
    // "The first hex digit of the id", as the doc used to say: `b` for Job-7 (oq reads `_`).
    const markerKey = keys.full(record.marker);
    await storage.put(markerKey, new Uint8Array(0));
    await storage.put(`tasks/b/${record.id}.json`, body, { ifNoneMatch: "*" });
    // A task at its right key whose "marker" wrongly includes the queue's prefix: it names a
    // marker that does not exist, so the real one is its only entry in the index.
    const job9 = {
      ...JSON.parse(body),
      id: "Job-9",
      marker: "myqueue/ready/send-email/0/20260101T000000Z/Job-9.5eed0a11",
    };
    const job9Marker = "ready/send-email/0/20260101T000000Z/Job-9.5eed0a11";
    await storage.put(job9Marker, new Uint8Array(0));
    await storage.put(keys.task("Job-9"), JSON.stringify(job9), { ifNoneMatch: "*" });
    // And a marker whose task is nowhere: an interrupted submit, still swept.
    const orphan = "ready/send-email/0/20260101T000000Z/Lost-1.0badf00d";
    await storage.put(orphan, new Uint8Array(0));
    now += MARKER_GRACE_MS + 1000;

    const worker = new Worker(queue, fast).task(record.type, () => "ran");
    await worker.start();
    try {
      await until("the orphan marker is swept", async () => {
        try {
          await storage.head(orphan);
          return false;
        } catch {
          return true;
        }
      });
      await until("the warnings", () =>
        ["Job-7", "Job-9"].every((id) => warnings.some((w) => w.includes(`task ${id} `))),
      );
    } finally {
      await worker.stop({ graceMs: 0 });
    }
    expect((await storage.head(markerKey)).size).toBe(0);
    expect((await storage.head(job9Marker)).size).toBe(0);
    expect(warnings.filter((w) => w.includes("task Job-9 "))).toEqual([
      `task Job-9 is pending but its "marker" "myqueue/${job9Marker}" does not exist, so no worker can find it: set "marker" to "${job9Marker}" (the key without the prefix; docs/protocol.md, "Writing a task by hand"); its marker ${job9Marker} is kept meanwhile`,
    ]);
    expect(warnings.filter((w) => w.includes("task Job-7 "))).toEqual([
      `task Job-7 is stored at tasks/b/Job-7.json, but oq reads it from tasks/_/Job-7.json: move it there (docs/protocol.md, "Writing a task by hand"); its marker ${markerKey} is kept meanwhile`,
    ]);
  });
});
