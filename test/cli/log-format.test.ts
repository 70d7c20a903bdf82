/**
 * The log line formats of the long-running commands (`--log-format text|json`): the shape of a
 * JSON line, quoting and escaping in the text format, errors by name and message, credentials
 * redacted, and the flag's check.
 */
import { describe, expect, it } from "vitest";
import { CliError, EXIT_USAGE } from "../../src/cli/errors.ts";
import { formatJsonLine, formatTextLine, serializeError } from "../../src/cli/log-format.ts";
import { logRedactor, parseLogFormat } from "../../src/cli/logs.ts";

const time = new Date(Date.UTC(2026, 10, 30, 9, 15, 0, 123));

describe("JSON log lines", () => {
  it("are one object with time, level, msg and the fields flattened", () => {
    const line = formatJsonLine({
      time,
      level: "info",
      msg: "echo abc completed in 12ms",
      fields: { taskId: "abc", type: "echo", attempt: 1, durationMs: 12, worker: "w-1" },
    });
    expect(line).not.toContain("\n");
    expect(JSON.parse(line)).toEqual({
      time: "2026-11-30T09:15:00.123Z",
      level: "info",
      msg: "echo abc completed in 12ms",
      taskId: "abc",
      type: "echo",
      attempt: 1,
      durationMs: 12,
      worker: "w-1",
    });
  });

  it("write errors as name and message (a stack only when asked), and keep reserved keys", () => {
    const error = new TypeError("bad\ninput");
    const plain = JSON.parse(
      formatJsonLine({
        time,
        level: "error",
        msg: "multi\nline",
        fields: { error, time: "field", missing: undefined, n: 10n },
      }),
    );
    expect(plain).toEqual({
      time: "2026-11-30T09:15:00.123Z",
      level: "error",
      msg: "multi\nline",
      error: { name: "TypeError", message: "bad\ninput" },
      "fields.time": "field",
      n: "10",
    });
    const debug = JSON.parse(
      formatJsonLine({ time, level: "error", msg: "x", fields: { error } }, { stacks: true }),
    );
    expect(debug.error.stack).toContain("TypeError: bad");
    // A recorded failure ({name, message, permanent}) reads the same as a thrown error.
    expect(serializeError({ name: "PermanentError", message: "no", permanent: true })).toEqual({
      name: "PermanentError",
      message: "no",
    });
    expect(serializeError("just text")).toBe("just text");
  });

  it("keep an entry whose fields cannot be serialized", () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const line = JSON.parse(formatJsonLine({ time, level: "warn", msg: "m", fields: { cycle } }));
    expect(line).toEqual({
      time: "2026-11-30T09:15:00.123Z",
      level: "warn",
      msg: "m",
      fieldsDropped: "not serializable",
    });
  });
});

describe("text log lines", () => {
  it("start with the ISO time and level and append the fields as key=value", () => {
    expect(
      formatTextLine({
        time,
        level: "info",
        msg: "echo abc completed in 12ms",
        fields: { taskId: "abc", type: "echo", attempt: 1, durationMs: 12, worker: "w-1" },
      }),
    ).toBe(
      "2026-11-30T09:15:00.123Z [info] echo abc completed in 12ms taskId=abc type=echo attempt=1 durationMs=12 worker=w-1",
    );
  });

  it("quote values with spaces, quotes, = or newlines, and escape newlines in the message", () => {
    const line = formatTextLine({
      time,
      level: "warn",
      msg: 'first\nsecond "quoted"\r',
      fields: {
        error: new Error('boom "x"\nnext'),
        note: "a b",
        eq: "k=v",
        empty: "",
        ok: null,
        obj: { a: 1 },
        "bad key": "v",
      },
    });
    expect(line).not.toContain("\n");
    expect(line).toBe(
      '2026-11-30T09:15:00.123Z [warn] first\\nsecond "quoted"\\r error="Error: boom \\"x\\"\\nnext" note="a b" eq="k=v" empty="" ok=null obj="{\\"a\\":1}" bad_key=v',
    );
  });

  it("never carry credentials: known secrets, URL user info, signature parameters", () => {
    const redact = logRedactor({
      AWS_SECRET_ACCESS_KEY: "s3cr3t-value",
      AWS_ACCESS_KEY_ID: "AKIAEXAMPLE",
    });
    const msg =
      "GET https://user:pa55@host/b?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123&part=2 failed (key s3cr3t-value)";
    for (const line of [
      formatTextLine(
        { time, level: "error", msg, fields: { url: msg, error: new Error(msg) } },
        { redact },
      ),
      formatJsonLine(
        { time, level: "error", msg, fields: { url: msg, error: new Error(msg) } },
        { redact },
      ),
    ]) {
      expect(line).not.toMatch(/s3cr3t|pa55|abc123|AKIA/);
      expect(line).toContain("https://[redacted]@host/b?X-Amz-Credential=[redacted]");
      expect(line).toContain("&part=2");
    }
  });

  it("replace a toy credential only where it stands alone, a real-length one anywhere", () => {
    const redact = logRedactor({ AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "test" });
    expect(redact("Tasks module ./a.mjs not found; run a test (test-email, latest)")).toBe(
      "Tasks module ./[redacted].mjs not found; run [redacted] [redacted] ([redacted]-email, latest)",
    );
    // A regular-expression character in a short secret is matched as itself.
    expect(logRedactor({ AWS_SECRET_ACCESS_KEY: "p+ss.w(rd" })("key=p+ss.w(rd pXss")).toBe(
      "key=[redacted] pXss",
    );
    const long = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    expect(logRedactor({ AWS_SECRET_ACCESS_KEY: long })(`x${long}y`)).toBe("x[redacted]y");
  });
});

describe("--log-format", () => {
  it("accepts text and json, and rejects anything else naming both (exit 2)", () => {
    expect(parseLogFormat(undefined)).toBe("text");
    expect(parseLogFormat("json")).toBe("json");
    let thrown: unknown;
    try {
      parseLogFormat("yaml");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(CliError);
    expect((thrown as CliError).exitCode).toBe(EXIT_USAGE);
    expect((thrown as CliError).message).toBe('Invalid --log-format "yaml": use text or json.');
  });
});
