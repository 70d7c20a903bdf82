/**
 * Bucket administration for the local MinIO that `scripts/minio.sh` starts: create the test
 * buckets and turn versioning on. The driver deliberately has no bucket-level write operations
 * (oq never creates or reconfigures buckets), so this small script does it with aws4fetch.
 *
 * Usage (credentials come from the environment, never the command line, so they stay out of
 * `ps` output):
 *
 *   OQ_ENDPOINT=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
 *     npx tsx scripts/s3-admin.ts create-bucket <name> [--versioned]
 *   ... npx tsx scripts/s3-admin.ts versioning <name>
 *
 * @module
 */
import { createHash } from "node:crypto";
import process from "node:process";
import { AwsClient } from "aws4fetch";

function need(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    console.error(`s3-admin: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const endpoint = need("OQ_ENDPOINT").replace(/\/+$/, "");
const region = process.env.OQ_REGION || "us-east-1";
const client = new AwsClient({
  accessKeyId: need("AWS_ACCESS_KEY_ID"),
  secretAccessKey: need("AWS_SECRET_ACCESS_KEY"),
  service: "s3",
  region,
  // Failures here should be loud and immediate; the caller's start-up wait already happened.
  retries: 0,
});

/** Signs, then fetches with a plain init (see the driver: Request objects trip up Bun). */
async function call(method: string, path: string, body?: string): Promise<Response> {
  const headers: Record<string, string> = {};
  if (body !== undefined) {
    headers["content-type"] = "application/xml";
    // AWS requires Content-MD5 on PutBucketVersioning; MinIO does not, but keep it portable.
    headers["content-md5"] = createHash("md5").update(body).digest("base64");
  }
  const url = `${endpoint}${path}`;
  const signed = await client.sign(url, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  return fetch(signed.url, {
    method,
    headers: signed.headers,
    ...(body === undefined ? {} : { body }),
  });
}

async function versioning(bucket: string): Promise<string> {
  const res = await call("GET", `/${encodeURIComponent(bucket)}?versioning`);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ?versioning on ${bucket}: HTTP ${res.status}: ${text}`);
  return /<Status>([^<]*)<\/Status>/.exec(text)?.[1] ?? "Disabled";
}

async function createBucket(bucket: string, versioned: boolean): Promise<void> {
  const res = await call("PUT", `/${encodeURIComponent(bucket)}`);
  const text = await res.text();
  // Re-running start against a kept data directory is fine: the bucket is already ours.
  if (!res.ok && !text.includes("BucketAlreadyOwnedByYou")) {
    throw new Error(`create bucket ${bucket}: HTTP ${res.status}: ${text}`);
  }
  if (versioned) {
    const config =
      '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      "<Status>Enabled</Status></VersioningConfiguration>";
    const put = await call("PUT", `/${encodeURIComponent(bucket)}?versioning`, config);
    const putText = await put.text();
    if (!put.ok) throw new Error(`enable versioning on ${bucket}: HTTP ${put.status}: ${putText}`);
  }
  const status = await versioning(bucket);
  const expected = versioned ? "Enabled" : "Disabled";
  if (status !== expected) {
    throw new Error(`bucket ${bucket}: versioning is ${status}, expected ${expected}`);
  }
  console.log(`s3-admin: bucket ${bucket} ready (versioning ${status})`);
}

const [command, bucket, ...flags] = process.argv.slice(2);
try {
  if (command === "create-bucket" && bucket !== undefined) {
    await createBucket(bucket, flags.includes("--versioned"));
  } else if (command === "versioning" && bucket !== undefined) {
    console.log(await versioning(bucket));
  } else {
    console.error("usage: s3-admin.ts create-bucket <name> [--versioned] | versioning <name>");
    process.exit(2);
  }
} catch (error) {
  console.error(`s3-admin: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
