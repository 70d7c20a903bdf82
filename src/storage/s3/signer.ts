/**
 * SigV4 request signing: aws4fetch builds the canonical request (its path, query and header
 * rules are the tested ones), and the hashing is synchronous JavaScript (`../../util/sha256.ts`)
 * with the signing key derived once per day rather than through `crypto.subtle` per request.
 *
 * Why: a draining worker spent more CPU signing than on anything else of its own (issue 15):
 * three WebCrypto jobs per request, a new `CryptoKey` each time, and aws4fetch's `sign()` also
 * builds a `Request` the driver never sends. On two cores shared with the storage server,
 * that CPU was throughput.
 *
 * @module
 */
import { AwsV4Signer } from "aws4fetch";
import { hmacSha256, sha256, toHex } from "../../util/sha256.ts";

/** What signing needs to know besides the request. */
export interface SignerCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region: string;
}

/** A request to sign. */
export interface UnsignedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** `YYYYMMDDTHHMMSSZ`. */
  datetime: string;
}

/** A signed request's URL and headers, ready for `fetch`. */
export interface SignedRequest {
  url: string;
  headers: Headers;
}

/** Signs S3 requests (SigV4 with an unsigned payload), keeping the day's signing key. */
export class S3Signer {
  readonly #credentials: SignerCredentials;
  /** The signing key of `#keyDate` (derived by four HMACs, valid for that UTC day). */
  #key: Uint8Array | undefined;
  #keyDate = "";

  constructor(credentials: SignerCredentials) {
    this.#credentials = credentials;
  }

  /** The request's URL and headers with `Authorization`, `X-Amz-Date` and friends set. */
  sign(request: UnsignedRequest): SignedRequest {
    const c = this.#credentials;
    const signer = new AwsV4Signer({
      method: request.method,
      url: request.url,
      headers: request.headers,
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      ...(c.sessionToken === undefined ? {} : { sessionToken: c.sessionToken }),
      service: "s3",
      region: c.region,
      datetime: request.datetime,
    });
    // The payload is unsigned (aws4fetch sets X-Amz-Content-Sha256: UNSIGNED-PAYLOAD for s3).
    const bodyHash = signer.headers.get("X-Amz-Content-Sha256") ?? "UNSIGNED-PAYLOAD";
    const canonical = [
      request.method,
      signer.encodedPath,
      signer.encodedSearch,
      `${signer.canonicalHeaders}\n`,
      signer.signedHeaders,
      bodyHash,
    ].join("\n");
    const stringToSign = [
      "AWS4-HMAC-SHA256",
      request.datetime,
      signer.credentialString,
      toHex(sha256(canonical)),
    ].join("\n");
    const signature = toHex(
      hmacSha256(this.#signingKey(request.datetime.slice(0, 8)), stringToSign),
    );
    signer.headers.set(
      "Authorization",
      `AWS4-HMAC-SHA256 Credential=${c.accessKeyId}/${signer.credentialString}, SignedHeaders=${signer.signedHeaders}, Signature=${signature}`,
    );
    return { url: signer.url.toString(), headers: signer.headers };
  }

  #signingKey(date: string): Uint8Array {
    if (this.#key === undefined || this.#keyDate !== date) {
      const kDate = hmacSha256(`AWS4${this.#credentials.secretAccessKey}`, date);
      const kRegion = hmacSha256(kDate, this.#credentials.region);
      const kService = hmacSha256(kRegion, "s3");
      this.#key = hmacSha256(kService, "aws4_request");
      this.#keyDate = date;
    }
    return this.#key;
  }
}
