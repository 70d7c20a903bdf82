/**
 * oq: a background task queue whose only dependency is S3-compatible object storage.
 *
 * This entry point is portable: it uses only web-standard globals, so it runs on Node, Bun,
 * Deno and Cloudflare Workers. The local file store lives in the `oq/file` entry point; cron
 * schedules, metrics and the dashboard in `oq/schedule`, `oq/metrics` and `oq/dashboard`, which
 * are portable too but kept apart: every worker's tasks module imports `oq`, and a worker starts
 * sooner without compiling what it does not use.
 *
 * ```ts
 * import { connect, Worker } from "oq";
 * const queue = await connect({ bucket: "jobs", env: process.env });
 * await queue.submit("email", { to: "a@example.com" });
 * const worker = new Worker(queue).task("email", async (input) => send(input));
 * await worker.start();
 * ```
 *
 * What this entry and the others (`oq/file`, `oq/schedule`, `oq/metrics`, `oq/dashboard`)
 * export is the whole public API, listed in the README's API section (a test keeps the two in
 * step). Everything else under `src/` is internal and may change in any release.
 *
 * @module
 */
export { type ConnectOptions, connect } from "./src/connect.ts";
export {
  type CheckStatus,
  type DoctorCheck,
  type DoctorOptions,
  type DoctorReport,
  type RequireSafeOptions,
  requireSafeBackend,
  runDoctor,
  type SafeBackend,
  type Verdict,
} from "./src/doctor/mod.ts";
// Every error class is public: callers catch them and branch on `code`.
export * from "./src/errors.ts";
export type { FinishedStatus } from "./src/keys.ts";
export { consoleLogger, type LogFields, type Logger } from "./src/logger.ts";
export type { FinishedTally } from "./src/queue/finished-counts.ts";
export type { LimitsInput, TypeLimits } from "./src/queue/limits.ts";
export { type Manifest, PROTOCOL } from "./src/queue/manifest.ts";
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PAYLOAD_THRESHOLD_BYTES,
} from "./src/queue/payloads.ts";
export type { PruneOptions, PruneProgress, PruneResult } from "./src/queue/prune.ts";
export { Queue } from "./src/queue/queue.ts";
export type {
  RepairAction,
  RepairCounts,
  RepairOptions,
  RepairProgress,
  RepairResult,
} from "./src/queue/repair.ts";
export {
  DEFAULT_RETENTION,
  type RetentionInput,
  type RetentionSettings,
  type StoredRetention,
} from "./src/queue/retention.ts";
export type { QueueStats, StatsOptions, TypeStats } from "./src/queue/stats.ts";
export type {
  CancelOutcome,
  ListTasksOptions,
  QueueOptions,
  SubmitOptions,
  SubmitResult,
  TaskDefaults,
  TaskPage,
  TaskVersion,
  Versioned,
} from "./src/queue/types.ts";
export type { WorkerInfo } from "./src/queue/workers.ts";
export { MemoryStorage, type MemoryStorageOptions } from "./src/storage/memory.ts";
export {
  type R2BucketLike,
  type R2ObjectBodyLike,
  type R2ObjectLike,
  type R2ObjectsLike,
  R2Storage,
  type R2StorageOptions,
} from "./src/storage/r2.ts";
export { S3Storage } from "./src/storage/s3/driver.ts";
export type { S3StorageOptions } from "./src/storage/s3/options.ts";
export type {
  GetOptions,
  GetResult,
  HeadResult,
  ListOptions,
  ListResult,
  ListVersionsOptions,
  ListVersionsResult,
  ObjectInfo,
  PutOptions,
  PutResult,
  RequestKind,
  Storage,
  VersionInfo,
  VersioningStatus,
  VersionTarget,
} from "./src/storage/storage.ts";
export { MAX_DOCUMENT_BYTES, MAX_PAYLOAD_THRESHOLD_BYTES } from "./src/store/bounds.ts";
export {
  type AnyTaskDefinition,
  defineTask,
  type HandlerInput,
  type HandlerResult,
  type TaskDefinition,
  type TaskDefinitionDefaults,
  type TaskDefinitionOptions,
  type TaskInput,
  type TaskOutput,
  type TaskRecordOf,
  type TypedTaskRecord,
} from "./src/task/definition.ts";
export { TASK_HISTORY_ERROR_CHARS, TASK_HISTORY_LIMIT } from "./src/task/event-log.ts";
export { PRIORITY_AGING_SECONDS, PRIORITY_MAX, PRIORITY_MIN } from "./src/task/priority.ts";
export type {
  Backoff,
  CancelRequest,
  Lease,
  PayloadRef,
  TaskError,
  TaskEvent,
  TaskHistoryEntry,
  TaskRecord,
  TaskStatus,
} from "./src/task/record.ts";
export type {
  StandardSchemaV1,
  StandardSchemaV1Input,
  StandardSchemaV1Issue,
  StandardSchemaV1Output,
  StandardSchemaV1Props,
  StandardSchemaV1Result,
} from "./src/task/standard-schema.ts";
export { VERSION } from "./src/version.ts";
export type { LogScanOptions } from "./src/worker/log-scan.ts";
export {
  type Handler,
  type HandlerOptions,
  PermanentError,
  type TaskContext,
  Worker,
  type WorkerEvent,
  type WorkerOptions,
  type WorkerStats,
} from "./src/worker/worker.ts";
