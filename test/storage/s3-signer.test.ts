import { createHash, createHmac } from "node:crypto";
import { AwsClient } from "aws4fetch";
import { describe, expect, it } from "vitest";
import { amzDate } from "../../src/storage/s3/request.ts";
import { S3Signer } from "../../src/storage/s3/signer.ts";
import { toHex } from "../../src/util/format.ts";
import { hmacKey, hmacSha256, hmacWith, sha256 } from "../../src/util/sha256.ts";

const credentials = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  region: "eu-west-3",
};

describe("sha256", () => {
  it("matches node:crypto at every padding boundary", () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 70_000]) {
      const data = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 255);
      expect(toHex(sha256(data))).toBe(createHash("sha256").update(data).digest("hex"));
      for (const keyLength of [0, 32, 64, 65, 200]) {
        const key = new Uint8Array(keyLength).map((_, i) => i);
        expect(toHex(hmacSha256(key, data))).toBe(
          createHmac("sha256", key).update(data).digest("hex"),
        );
      }
    }
    // A key made ready once serves many messages, of every length, unchanged by them.
    const ready = hmacKey("a day's signing key");
    for (const n of [0, 55, 56, 64, 200]) {
      const data = "é".repeat(n);
      expect(toHex(hmacWith(ready, data))).toBe(
        createHmac("sha256", "a day's signing key").update(data).digest("hex"),
      );
    }
    expect(toHex(sha256("abc"))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });
});

describe("amzDate", () => {
  it("stamps each moment with its own second, kept or not from the last call", () => {
    const t = Date.UTC(2026, 11, 31, 23, 59, 59, 999);
    for (const [ms, stamp] of [
      [t, "20261231T235959Z"],
      [t - 999, "20261231T235959Z"],
      [t + 1, "20270101T000000Z"],
      [t - 1000, "20261231T235958Z"],
      [t + 1, "20270101T000000Z"],
    ] as const)
      expect(amzDate(ms)).toBe(stamp);
    expect(() => amzDate(Number.NaN)).toThrow(RangeError);
  });
});

describe("S3Signer", () => {
  const cases: { method: string; url: string; headers: Record<string, string> }[] = [
    { method: "GET", url: "https://bucket.s3.example.com/q/tasks/a%20b.json", headers: {} },
    {
      method: "PUT",
      url: "http://127.0.0.1:9000/oq-test/p/ready/noop/00/1700000000000/abc.json",
      headers: { "If-Match": '"etag-1"', "Content-Type": "application/json" },
    },
    {
      method: "GET",
      url: "http://127.0.0.1:9000/oq-test/?list-type=2&prefix=p%2Fready%2F&start-after=p%2Fx%27(1)*&max-keys=1000",
      headers: { "If-None-Match": "*" },
    },
    {
      method: "POST",
      url: "http://127.0.0.1:9000/oq-test/?delete",
      headers: { "x-amz-checksum-sha256": "abc=" },
    },
    {
      method: "PUT",
      url: "http://127.0.0.1:9000/b/p/tasks/%C3%A9t%C3%A9%20+%2B!'()*~%25.json?versionId=a+b&x=1&x=2&=z",
      headers: { "X-Custom": "  two   spaces\tand tab  ", "x-amz-meta-Note": "über" },
    },
    {
      method: "HEAD",
      url: "https://s3.eu-west-3.amazonaws.com/b/k%2Fwith%2Fslashes?partNumber=1&acl",
      headers: { Range: "bytes=0-1", "User-Agent": "oq", "If-Match": '"x"', "if-match": '"y"' },
    },
    { method: "delete", url: "http://[::1]:9000/b/%E2%82%AC%ZZ", headers: { Host: "other:1" } },
  ];

  it("signs every request exactly as aws4fetch does, across a change of day, with and without a session token", async () => {
    for (const sessionToken of ["token/+=", undefined]) {
      const creds = sessionToken === undefined ? credentials : { ...credentials, sessionToken };
      const signer = new S3Signer(creds);
      const client = new AwsClient({ ...creds, service: "s3" });
      for (const datetime of ["20261201T235959Z", "20261202T000001Z"]) {
        for (const c of cases) {
          const ours = signer.sign({ ...c, datetime });
          const theirs = await client.sign(c.url, {
            method: c.method,
            headers: c.headers,
            aws: { datetime },
          });
          expect(ours.url).toBe(theirs.url);
          expect(Object.entries(ours.headers).sort()).toEqual([...theirs.headers]);
        }
      }
    }
  });
});
