/**
 * The runner: {@link runDoctor} runs the checks in order in a scratch prefix, records each with
 * its evidence and advice, and caches the verdict.
 *
 * @module
 */
import { internals } from "../queue/internals.ts";
import type { Queue } from "../queue/queue.ts";
import { checkAccess } from "./access.ts";
import { type BackendProvider, detectProvider, fitAdvice } from "./advice.ts";
import { checkCasRace } from "./cas-race.ts";
import { checkCleanup } from "./cleanup.ts";
import { checkCompareAndSwap } from "./compare-and-swap.ts";
import { checkCreateIfAbsent } from "./create-if-absent.ts";
import { checkCreateRace } from "./create-race.ts";
import { checkLifecycle } from "./lifecycle.ts";
import { checkListAfterWrite } from "./list-after-write.ts";
import { CheckFailed, describeError, Probe } from "./probe.ts";
import type { DoctorCheck, DoctorOptions, DoctorReport, Verdict } from "./types.ts";
import { doctorPrefix, writeVerdict } from "./verdict.ts";
import { checkVersioning } from "./versioning.ts";

/** A check that passed with a caveat. */
export interface CheckWarning {
  status: "warn";
  fix: string;
}

/** A check's body: pushes evidence; returns a warning, or throws `CheckFailed` to fail. */
type CheckBody = (evidence: string[]) => Promise<CheckWarning | undefined>;

/** The error behind an `error` verdict, kept out of the JSON report. */
const causes = new WeakMap<DoctorReport, unknown>();

/** The storage error that kept doctor from reaching a verdict, for `requireSafeBackend`. */
export function causeOf(report: DoctorReport): unknown {
  return causes.get(report);
}

/** Runs checks in order, records them, and reports each as it completes. */
class CheckRunner {
  readonly checks: DoctorCheck[] = [];
  /** The first storage error behind an inconclusive failure. */
  cause: unknown;
  /** Set when access failed: the remaining checks are skipped. */
  blocked = false;
  readonly #queue: Queue;
  readonly #onCheck: ((check: DoctorCheck) => void) | undefined;
  readonly #provider: () => BackendProvider;

  constructor(queue: Queue, options: DoctorOptions, provider: () => BackendProvider) {
    this.#queue = queue;
    this.#onCheck = options.onCheck;
    this.#provider = provider;
  }

  async run(
    id: string,
    title: string,
    body: CheckBody,
    opts: { always?: boolean } = {},
  ): Promise<DoctorCheck> {
    const started = this.#queue.clock.localNow();
    const evidence: string[] = [];
    let check: DoctorCheck;
    if (this.blocked && !opts.always) {
      check = { id, title, status: "skipped", unsafe: false, evidence, durationMs: 0 };
    } else {
      try {
        const outcome = await body(evidence);
        check = {
          id,
          title,
          status: outcome?.status ?? "ok",
          unsafe: false,
          evidence,
          ...(outcome === undefined ? {} : { fix: outcome.fix }),
          durationMs: this.#queue.clock.localNow() - started,
        };
      } catch (error) {
        check = this.#failed(id, title, error, evidence, started);
      }
    }
    this.checks.push(check);
    this.#onCheck?.(check);
    return check;
  }

  #failed(
    id: string,
    title: string,
    error: unknown,
    evidence: string[],
    started: number,
  ): DoctorCheck {
    const failed =
      error instanceof CheckFailed
        ? error
        : new CheckFailed(
            `Unexpected error: ${describeError(error)}`,
            false,
            "Run oq doctor again; if it persists, report it with this output.",
            error,
          );
    evidence.push(failed.message);
    if (!failed.unsafe && this.cause === undefined) this.cause = failed.origin ?? error;
    const advice =
      typeof failed.fix === "string"
        ? { fix: failed.fix }
        : fitAdvice(failed.fix, this.#provider());
    return {
      id,
      title,
      status: "failed",
      unsafe: failed.unsafe,
      evidence,
      ...advice,
      durationMs: this.#queue.clock.localNow() - started,
    };
  }
}

/** What `runDoctor` does (doctor.ts, which loads this module on its first call). */
export async function runDoctor(queue: Queue, options: DoctorOptions = {}): Promise<DoctorReport> {
  const writers = options.raceWriters ?? 16;
  const rounds = options.raceRounds ?? 3;
  const startLocal = queue.clock.localNow();
  const scratch = `${doctorPrefix(queue)}${internals(queue).randomHex(16)}/`;
  const probe = new Probe(queue, scratch);
  const provider = () =>
    options.provider ?? detectProvider(queue.storage.location, probe.requestIds);
  const runner = new CheckRunner(queue, options, provider);

  await runner.run("config", "Configuration", async (evidence) => {
    evidence.push(`storage: ${queue.storage.name}`);
    evidence.push(`queue prefix: ${JSON.stringify(queue.keys.prefix)}`);
    evidence.push(`scratch prefix: ${scratch}`);
    return undefined;
  });
  const access = await runner.run("access", "Connectivity, credentials and bucket", (e) =>
    checkAccess(queue, e),
  );
  runner.blocked = access.status === "failed";
  await runner.run("versioning", "Bucket versioning (task history)", (e) =>
    checkVersioning(queue, e),
  );
  // Advice for the operator, not proof of safety: requireSafeBackend turns it off for workers.
  if (options.lifecycle !== false && queue.storage.getLifecycle !== undefined) {
    await runner.run("lifecycle", "Lifecycle rules expire old versions and delete markers", (e) =>
      checkLifecycle(queue, e),
    );
  }
  await runner.run("create-if-absent", "Create-if-absent (If-None-Match: *)", (e) =>
    checkCreateIfAbsent(probe, e).then(() => undefined),
  );
  await runner.run("compare-and-swap", "Compare-and-swap (If-Match)", (e) =>
    checkCompareAndSwap(probe, e).then(() => undefined),
  );
  await runner.run(
    "create-race",
    `${writers} concurrent creators, ${rounds} rounds: exactly one winner`,
    (e) => checkCreateRace(probe, writers, rounds, e).then(() => undefined),
  );
  await runner.run(
    "cas-race",
    `${writers} concurrent swappers, ${rounds} rounds: exactly one winner`,
    (e) => checkCasRace(probe, writers, rounds, e).then(() => undefined),
  );
  await runner.run("list-after-write", "List-after-write consistency", (e) =>
    checkListAfterWrite(probe, e).then(() => undefined),
  );
  if (!options.keepScratch && !runner.blocked) {
    await runner.run("cleanup", "Scratch objects removed", (e) => checkCleanup(probe, e), {
      always: true,
    });
  }
  return finish(queue, options, runner, { scratch, startLocal, provider: provider() });
}

/** Build the report from the checks run, and cache its verdict unless it is `error`. */
async function finish(
  queue: Queue,
  options: DoctorOptions,
  runner: CheckRunner,
  run: { scratch: string; startLocal: number; provider: BackendProvider },
): Promise<DoctorReport> {
  const failed = runner.checks.filter((c) => c.status === "failed");
  const verdict: Verdict = failed.some((c) => c.unsafe)
    ? "unsafe"
    : failed.length > 0
      ? "error"
      : "safe";
  const report: DoctorReport = {
    verdict,
    storage: queue.storage.name,
    prefix: queue.keys.prefix,
    provider: run.provider,
    scratch: run.scratch,
    checkedAt: new Date(queue.now()).toISOString(),
    durationMs: queue.clock.localNow() - run.startLocal,
    checks: runner.checks,
  };
  if (runner.cause !== undefined) causes.set(report, runner.cause);
  if (verdict !== "error" && options.writeVerdict !== false) {
    await writeVerdict(queue, report);
  }
  return report;
}
