/**
 * The handlers of `oq demo` as a tasks module you can run yourself:
 *
 * ```sh
 * oq worker examples/demo-tasks.ts --concurrency 4
 * oq submit -t send-email -i '{"to":"a@example.com"}'
 * oq submit -t send-email -i '{"to":"nobody"}'   # fails at once: PermanentError
 * ```
 *
 * The handlers themselves are in `src/cli/demo-tasks.ts`, which the CLI ships.
 *
 * @module
 */
export { default } from "../src/cli/demo-tasks.ts";
