/**
 * `oq repair` as a real subprocess on the file store: a deleted index is rebuilt, `--limit` stops
 * with a cursor that `--start-after` continues from, `--dry-run` writes nothing, progress goes to
 * stderr, and an unreadable task object makes it exit 1 after reporting it. And `oq monitor
 * --log-scan` (the flag `oq worker` shares) puts a deleted index back in the background.
 */
import { tmpdir } from "node:os";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Queue } from "../../src/queue/queue.ts";
import { cleanEnv, type OqResult, runOq, startOq } from "../helpers/cli.ts";
import { fileTarget, type TargetInstance } from "../helpers/targets.ts";
import { until } from "../helpers/wait.ts";

function oq(...args: string[]): Promise<OqResult> {
  return runOq(args, { cwd: tmpdir(), env: cleanEnv({ NO_COLOR: "1" }) });
}

async function readyKeys(queue: Queue): Promise<string[]> {
  return (await queue.storage.list({ prefix: queue.keys.ready })).objects.map((o) => o.key);
}

describe("oq repair", () => {
  let store: TargetInstance;
  let queue: Queue;
  beforeEach(async () => {
    store = await fileTarget.create();
    queue = new Queue({ storage: store.storage });
  });
  afterEach(() => store.cleanup());

  it("rebuilds a deleted index, stopping at --limit with a cursor that --start-after continues", async () => {
    const tasks = await queue.submitMany(
      Array.from({ length: 5 }, (_, i) => ({ type: "job", input: i })),
    );
    for (const key of await readyKeys(queue)) await queue.storage.delete(key);
    const url = store.url!;

    const dry = await oq("repair", "--url", url, "--dry-run", "--json");
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, markersRestored: 5 });
    expect(await readyKeys(queue)).toEqual([]);

    const first = await oq("repair", "--url", url, "--limit", "3");
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain("tasks scanned 3");
    const cursor = /--start-after '([^']+)'/.exec(first.stdout)?.[1];
    expect(cursor, first.stdout).toMatch(/^tasks\//);
    expect(await readyKeys(queue)).toHaveLength(3);

    const rest = await oq("repair", "--url", url, "--start-after", cursor!, "--json");
    expect(rest.code, rest.stderr).toBe(0);
    expect(JSON.parse(rest.stdout)).toMatchObject({
      tasksScanned: 2,
      markersRestored: 2,
      markersChecked: 5,
      cursor: null,
    });
    const markers = new Set(tasks.map((t) => t.marker));
    expect(new Set((await readyKeys(queue)).map((k) => k))).toEqual(markers);
  });

  it("exits 1 after reporting an unreadable task object, which it leaves as it was", async () => {
    await queue.submit("job", null);
    const bad = queue.keys.task("Bad-1");
    await queue.storage.put(bad, "not json");
    const result = await oq("repair", "--url", store.url!);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`unreadable ${bad}`);
    expect(new TextDecoder().decode((await queue.storage.get(bad)).body)).toBe("not json");
  });

  it("oq monitor --log-scan puts the markers of a deleted index back in the background", async () => {
    const tasks = await queue.submitMany([1, 2, 3].map((i) => ({ type: "job", input: i })));
    for (const key of await readyKeys(queue)) await queue.storage.delete(key);
    const monitor = startOq(["monitor", "--log-scan", "--skip-doctor", "--url", store.url!], {
      cwd: tmpdir(),
      env: cleanEnv({ NO_COLOR: "1" }),
    });
    try {
      await until(
        "the markers are back",
        async () => (await readyKeys(queue)).length === 3,
        30_000,
      );
    } finally {
      monitor.child.kill("SIGTERM");
      await monitor.exited;
    }
    expect(new Set(await readyKeys(queue))).toEqual(new Set(tasks.map((t) => t.marker)));
  });
});
