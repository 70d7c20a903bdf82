/**
 * A child process for the cross-process tests of `file.test.ts`: reads one JSON command per
 * line on stdin, performs it against a {@link FileStorage}, and answers one JSON line.
 *
 * @module
 */
import { createInterface } from "node:readline";
import { isOqError } from "../../src/errors.ts";
import { FileStorage } from "../../src/runtime/file/storage.ts";

/** One command from the parent test. */
interface Command {
  op: "match" | "create" | "burst";
  round: number;
  key: string;
  etag?: string;
  /** Start at this epoch ms, so that all children race at the same moment. */
  at: number;
  /** For `burst`: how many unconditional writes. */
  n?: number;
}

const [root, id] = process.argv.slice(2);
if (root === undefined || id === undefined) throw new Error("usage: file-race-child.ts ROOT ID");
const storage = new FileStorage({ root });

async function perform(cmd: Command): Promise<Record<string, unknown>> {
  const wait = cmd.at - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const body = `${id}:${cmd.round}`;
  try {
    if (cmd.op === "burst") {
      for (let i = 0; i < (cmd.n ?? 1); i++) await storage.put(cmd.key, `${body}:${i}`);
      return { round: cmd.round, done: true };
    }
    const result = await storage.put(
      cmd.key,
      body,
      cmd.op === "match" ? { ifMatch: cmd.etag ?? "" } : { ifNoneMatch: "*" },
    );
    return { round: cmd.round, won: true, etag: result.etag, body };
  } catch (error) {
    if (isOqError(error)) return { round: cmd.round, won: false, code: error.code };
    return { round: cmd.round, won: false, code: "UNEXPECTED", message: String(error) };
  }
}

const lines = createInterface({ input: process.stdin });
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const line of lines) {
  if (line.trim() === "") continue;
  process.stdout.write(`${JSON.stringify(await perform(JSON.parse(line) as Command))}\n`);
}
