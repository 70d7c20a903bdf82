/**
 * The library's version, kept equal to `package.json` and `deno.json` by `scripts/version.ts`
 * (`--check` runs in CI and fails on any drift).
 *
 * @module
 */

/** The version of oq this code is. */
export const VERSION = "0.1.0";
