/**
 * A process that dies at an exact point of its protocol, for tests: a storage view that goes dead
 * the moment a chosen call has landed in storage, before its caller sees the answer (a SIGKILL
 * while the response is on its way back). From then on every call of that view fails, and so do
 * the answers of calls still in flight, which a dead process never reads. The writes that landed
 * stay landed; nothing after the kill reaches storage.
 *
 * The chaos harness's kills cut a worker's link at a random moment; this one picks the moment,
 * so a test can kill a worker between any two writes of a claim, a lease renewal or an outcome.
 *
 * @module
 */
import { UnavailableError } from "../../src/errors.ts";
import type { Storage } from "../../src/storage/storage.ts";

/** One storage call, as a kill switch's trigger sees it once it has landed. */
export interface LandedCall {
  op: string;
  /** The key (first argument) of calls that take one; `""` for others. */
  key: string;
}

/** A storage view that dies at a chosen call. */
export interface KillSwitch {
  /** The view the doomed process uses. */
  storage: Storage;
  /** True once the view is dead. */
  readonly killed: boolean;
  /** The calls that landed before the kill, the fatal one last. */
  readonly landed: readonly LandedCall[];
  /** Kill the view now. */
  kill(): void;
}

/** Calls that reach storage (the rest, such as `serverTime`, pass through). */
const CALLS = new Set([
  "get",
  "head",
  "put",
  "delete",
  "deleteMany",
  "deleteVersion",
  "deleteVersions",
  "list",
  "listVersions",
]);

/**
 * Wrap `storage` so that it dies right after the first call for which `trigger` holds has landed
 * (that call's answer is lost too). `trigger` sees the call and the ones landed before it.
 */
export function killSwitch(
  storage: Storage,
  trigger: (call: LandedCall, before: readonly LandedCall[]) => boolean = () => false,
): KillSwitch {
  let killed = false;
  const landed: LandedCall[] = [];
  const dead = () => new UnavailableError("the process was killed");
  const view = new Proxy(storage, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (!CALLS.has(String(prop))) return value.bind(target);
      return async (...args: unknown[]) => {
        if (killed) throw dead();
        const answer = await value.apply(target, args);
        // A dead process reads no answer, even one to a call it sent before it died.
        if (killed) throw dead();
        const call = { op: String(prop), key: typeof args[0] === "string" ? args[0] : "" };
        const fatal = trigger(call, landed);
        landed.push(call);
        if (fatal) {
          killed = true;
          throw dead();
        }
        return answer;
      };
    },
  });
  return {
    storage: view,
    get killed() {
      return killed;
    },
    landed,
    kill: () => {
      killed = true;
    },
  };
}
