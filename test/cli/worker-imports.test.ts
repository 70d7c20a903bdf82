/**
 * What `oq worker` loads before its first task: the CLI entry and the worker command, with every
 * module they import statically. Metrics (OpenTelemetry), the scheduler (croner) and doctor's
 * probes load only when a run needs them (`--metrics-port`, `--scheduler`, no cached verdict):
 * each would add start time and resident memory to every worker that does not use it.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

/** Source files and packages reachable from each entry through static imports only. */
async function staticClosure(
  entries: string[],
): Promise<{ files: Set<string>; packages: Set<string> }> {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: entries,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outdir: "out",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const outputs = result.metafile.outputs;
  const files = new Set<string>();
  const packages = new Set<string>();
  const seen = new Set<string>();
  // Chunks a dynamic import loads have an entryPoint too: start from the given entries only.
  const pending = Object.keys(outputs).filter((o) =>
    entries.includes(outputs[o]!.entryPoint ?? ""),
  );
  while (pending.length > 0) {
    const out = pending.pop()!;
    if (seen.has(out)) continue;
    seen.add(out);
    for (const input of Object.keys(outputs[out]!.inputs)) files.add(input);
    for (const i of outputs[out]!.imports) {
      if (i.kind !== "import-statement") continue;
      if (i.external) packages.add(i.path);
      else pending.push(i.path);
    }
  }
  return { files, packages };
}

describe("oq worker's start", () => {
  it("loads neither OpenTelemetry (a queue without metrics loaded it), the scheduler nor doctor's probes unless the run needs them", async () => {
    const { files, packages } = await staticClosure(["cli.ts", "src/cli/worker.ts"]);
    expect(files).toContain("src/worker/worker.ts");
    expect(files).toContain("src/queue/queue.ts");
    expect([...packages].filter((p) => p.startsWith("@opentelemetry/") || p === "croner")).toEqual(
      [],
    );
    expect(
      [...files].filter((f) =>
        ["src/metrics/metrics.ts", "src/schedule/runner.ts", "src/doctor/run.ts"].includes(f),
      ),
    ).toEqual([]);
  });

  it("lets a tasks module import oq without loading doctor's probes, the scheduler, metrics or the dashboard", async () => {
    // A tasks module imports `oq` (mod.ts) as `oq worker` starts: what mod.ts loads statically
    // is compiled before the first task, on Node 20 without a compile cache. Schedules, metrics
    // and the dashboard are entries of their own (oq/schedule, oq/metrics, oq/dashboard).
    const { files, packages } = await staticClosure(["mod.ts"]);
    expect(files).toContain("src/doctor/doctor.ts");
    expect(files).toContain("src/worker/worker.ts");
    expect(
      [...files].filter(
        (f) =>
          f === "src/doctor/run.ts" ||
          f.startsWith("src/dashboard/") ||
          f.startsWith("src/schedule/") ||
          f === "src/metrics/metrics.ts",
      ),
    ).toEqual([]);
    expect([...packages].filter((p) => p.startsWith("@opentelemetry/") || p === "croner")).toEqual(
      [],
    );
  });

  it("the entries of their own load what `oq` leaves out", async () => {
    // The check above would pass for an entry that loads nothing: these do load their parts.
    expect((await staticClosure(["schedule.ts"])).packages).toContain("croner");
    expect((await staticClosure(["metrics.ts"])).packages).toContain("@opentelemetry/api");
    expect((await staticClosure(["dashboard.ts"])).files).toContain("src/dashboard/handler.ts");
  });
});
