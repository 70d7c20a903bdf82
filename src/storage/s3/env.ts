/**
 * Configuring the S3 driver from environment variables.
 *
 * @module
 */
import { ConfigError } from "../../errors.ts";
import { S3Storage } from "./driver.ts";
import type { S3StorageOptions } from "./options.ts";

/**
 * Builds an {@link S3Storage} from environment variables. The caller passes the environment
 * (the environment object of Node, Bun or Deno, or a Worker's `env`), so this module stays runtime-neutral.
 *
 * Reads `OQ_BUCKET`, `OQ_ENDPOINT`, `OQ_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
 * `AWS_SESSION_TOKEN` and `OQ_FORCE_PATH_STYLE` (`true`/`false`); empty values count as unset.
 * `overrides` supplies the options the environment cannot (fetch, retries, clock).
 */
export function s3StorageFromEnv(
  env: Record<string, string | undefined>,
  overrides: Partial<S3StorageOptions> = {},
): S3Storage {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const options: S3StorageOptions = {
    bucket: read("OQ_BUCKET") ?? "",
    accessKeyId: read("AWS_ACCESS_KEY_ID") ?? "",
    secretAccessKey: read("AWS_SECRET_ACCESS_KEY") ?? "",
  };
  const endpoint = read("OQ_ENDPOINT");
  if (endpoint !== undefined) options.endpoint = endpoint;
  const region = read("OQ_REGION");
  if (region !== undefined) options.region = region;
  const sessionToken = read("AWS_SESSION_TOKEN");
  if (sessionToken !== undefined) options.sessionToken = sessionToken;
  const pathStyle = read("OQ_FORCE_PATH_STYLE");
  if (pathStyle !== undefined) {
    const v = pathStyle.toLowerCase();
    if (v === "true" || v === "1" || v === "yes") options.forcePathStyle = true;
    else if (v === "false" || v === "0" || v === "no") options.forcePathStyle = false;
    else {
      throw new ConfigError(
        `OQ_FORCE_PATH_STYLE must be true or false, not "${pathStyle.slice(0, 20)}"`,
      );
    }
  }
  return new S3Storage({ ...options, ...overrides });
}
