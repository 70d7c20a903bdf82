/**
 * `oq doctor`: check the configuration, the connection and the bucket, then prove that the
 * backend honours conditional writes and lists what it just wrote. Prints a checklist (or the
 * report as JSON) and exits 1 unless the backend is safe. The verdict is cached for `oq worker`.
 *
 * @module
 */
import { type DoctorCheck, type DoctorReport, runDoctor, verdictKey } from "../doctor/mod.ts";
import { isOqError, type OqError } from "../errors.ts";
import { intArg, oqCommand } from "./args.ts";
import { openQueue } from "./config.ts";
import { CliError, describeError, EXIT_FAILURE } from "./errors.ts";
import { out, outJson, type Styles, styles } from "./output.ts";

function mark(check: DoctorCheck, s: Styles): string {
  switch (check.status) {
    case "ok":
      return s.green("✓");
    case "warn":
      return s.yellow("!");
    case "failed":
      return s.red("✗");
    default:
      return s.dim("-");
  }
}

/** The lines printed for one check: the mark and title, then evidence and fix when it matters. */
export function checkLines(check: DoctorCheck, s: Styles, verbose: boolean): string[] {
  const lines = [
    `${mark(check, s)} ${check.title}${check.status === "skipped" ? s.dim(" (skipped)") : ""}${
      check.status === "failed" && check.unsafe ? s.red(" UNSAFE") : ""
    }`,
  ];
  if (verbose || check.status === "failed" || check.status === "warn") {
    for (const e of check.evidence) lines.push(`    ${s.dim(e)}`);
  }
  if (check.fix !== undefined && check.status !== "ok") {
    lines.push(`    ${s.bold("what to do:")} ${check.fix}`);
  }
  return lines;
}

/** The closing line of the checklist. */
export function verdictLine(report: DoctorReport, s: Styles): string {
  switch (report.verdict) {
    case "safe":
      return s.green(
        `Safe: ${report.storage} honours conditional writes (${report.durationMs} ms).`,
      );
    case "unsafe":
      return s.red(
        `UNSAFE: ${report.storage} does not honour what oq relies on; workers refuse it (oq worker --skip-doctor overrides, at your own risk).`,
      );
    default:
      return s.red(
        `Could not check ${report.storage}: fix the failed check above and run oq doctor again.`,
      );
  }
}

/** The report when the queue could not even be opened: one failed configuration check. */
function configFailureReport(error: OqError): DoctorReport {
  const { message } = describeError(error);
  const check: DoctorCheck = {
    id: "config",
    title: "Configuration",
    status: "failed",
    unsafe: false,
    evidence: [message],
    fix: "Set OQ_URL, or OQ_BUCKET with OQ_ENDPOINT, OQ_REGION and AWS credentials (oq --help lists the flags).",
    durationMs: 0,
  };
  return {
    verdict: "error",
    storage: "(not opened)",
    prefix: "",
    provider: "unknown",
    scratch: "",
    checkedAt: new Date().toISOString(),
    durationMs: 0,
    checks: [check],
  };
}

export default oqCommand({
  name: "doctor",
  description:
    "Check config, connectivity, credentials, versioning and lifecycle rules, and prove the backend honours conditional writes.",
  examples: [
    "oq doctor",
    "oq doctor --url 's3://jobs?endpoint=http://localhost:9000' --verbose",
    "oq doctor --json | jq '.checks[] | select(.status != \"ok\")'",
  ],
  args: {
    json: { type: "boolean", description: "Print the report as JSON" },
    verbose: {
      type: "boolean",
      alias: ["V"],
      description: "Show the evidence (requests and answers) of passing checks too",
    },
    writers: {
      type: "string",
      description: "Concurrent writers in each race round (default 16)",
      valueHint: "n",
    },
    rounds: { type: "string", description: "Rounds of each race (default 3)", valueHint: "n" },
    keep: { type: "boolean", description: "Keep the scratch objects (to inspect them)" },
  },
  async run(args) {
    const s = styles();
    const raceWriters = intArg(args.writers, "writers", 2, 100) ?? 16;
    const raceRounds = intArg(args.rounds, "rounds", 1, 20) ?? 3;
    let report: DoctorReport;
    try {
      // Versioning is reported by a check rather than refused, so doctor can say so.
      const queue = await openQueue(args, { skipVersioningCheck: true });
      if (!args.json)
        out(
          s.bold(
            `oq doctor: ${queue.storage.name}${queue.keys.prefix === "" ? "" : ` (prefix ${queue.keys.prefix})`}`,
          ),
        );
      // The checklist is printed as checks complete: the races take a moment on a remote bucket.
      const printCheck = (c: DoctorCheck) => {
        for (const line of checkLines(c, s, args.verbose === true)) out(line);
      };
      report = await runDoctor(queue, {
        raceWriters,
        raceRounds,
        keepScratch: args.keep === true,
        ...(args.json ? {} : { onCheck: printCheck }),
      });
      if (!args.json) {
        out();
        out(verdictLine(report, s));
        if (report.verdict !== "error") out(s.dim(`Verdict stored at ${verdictKey(queue)}.`));
      }
    } catch (error) {
      // The queue could not even be opened: report it as the failed configuration check.
      if (!isOqError(error)) throw error;
      report = configFailureReport(error);
      if (!args.json) for (const l of checkLines(report.checks[0]!, s, true)) out(l);
    }
    if (args.json) outJson(report);
    if (report.verdict !== "safe") {
      throw new CliError(
        report.verdict === "unsafe"
          ? "The backend is unsafe for oq (see the failed checks)."
          : "The backend could not be checked (see the failed check).",
        EXIT_FAILURE,
      );
    }
  },
});
