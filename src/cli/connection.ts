/**
 * The connection flags, defined once: their citty definitions, the flags given before the
 * command name, and the one mapping from parsed flags plus environment to `connect()` options.
 *
 * Each flag's name, camel-cased, is the `ConnectOptions` field it sets (`--allow-no-versioning`
 * sets `allowNoVersioning`), so adding a flag here is the whole change. Credentials have no
 * flags on purpose: command lines show up in `ps` and shell history; they come from `AWS_*`.
 *
 * @module
 */
import type { ArgsDef, ParsedArgs } from "citty";
import type { ConnectOptions } from "../connect.ts";

/** The flags that say where the queue lives; every command accepts them. */
export const commonArgs = {
  url: {
    type: "string",
    description:
      "Queue location: s3://bucket/prefix?endpoint=...&region=..., file:./dir or memory: (env OQ_URL; default file:./.oq)",
    valueHint: "url",
  },
  bucket: { type: "string", description: "S3 bucket (env OQ_BUCKET)", valueHint: "name" },
  endpoint: {
    type: "string",
    description: "S3 endpoint, e.g. http://localhost:9000 (env OQ_ENDPOINT; default AWS)",
    valueHint: "url",
  },
  region: { type: "string", description: "S3 region (env OQ_REGION)", valueHint: "region" },
  prefix: {
    type: "string",
    description: "Key prefix of the queue in the bucket (env OQ_PREFIX)",
    valueHint: "prefix",
  },
  "allow-no-versioning": {
    type: "boolean",
    description:
      "Run on a bucket without versioning; version history (history --versions) is then unavailable (env OQ_ALLOW_NO_VERSIONING=1)",
  },
} as const satisfies ArgsDef;

/** The connection flag definitions. */
export type CommonArgs = typeof commonArgs;

/** The connection flags as citty hands them to a command (any may be missing). */
export type ConnectionArgs = Partial<Pick<ParsedArgs<CommonArgs>, keyof CommonArgs>>;

type CamelCase<S extends string> = S extends `${infer H}-${infer T}`
  ? `${H}${Capitalize<CamelCase<T>>}`
  : S;

/** The `connect()` option a connection flag sets: its name, camel-cased (a compile-time check). */
function optionName(flag: keyof CommonArgs): keyof ConnectOptions {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase()) as CamelCase<typeof flag>;
}

let rootFlags: ConnectionArgs = {};

/**
 * Remember the connection flags given before the command name (`oq --url memory: demo`); citty
 * hands a sub-command only what follows its name. A flag given both before and after the name
 * is refused as repeated (`rejectRepeatedFlags`, in `run.ts`) before any command runs.
 */
export function setRootFlags(parsed: ConnectionArgs): void {
  rootFlags = { ...parsed };
}

/**
 * `connect()` options for a command's connection flags (falling back to those given before the
 * command name) and an environment; `connect()` reads the `OQ_*` and `AWS_*` variables from it
 * for whatever no flag set.
 */
export function connectOptions(
  args: ConnectionArgs,
  env: Record<string, string | undefined>,
): ConnectOptions {
  const options: Record<string, unknown> = { env };
  for (const name of Object.keys(commonArgs) as (keyof CommonArgs)[]) {
    const value = args[name] ?? rootFlags[name];
    if (value !== undefined) options[optionName(name)] = value;
  }
  return options as ConnectOptions;
}
