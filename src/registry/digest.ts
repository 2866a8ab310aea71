/**
 * Content digests (`algo:hex`): validation, hashing of bytes, and a
 * verifying pass-through stream.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { nodeCrypto } from "../_node.ts";
import { DigestMismatch } from "../errors.ts";

/** Hex lengths of the algorithms OCI registers (image-spec descriptor.md). */
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/**
 * Validates a digest and returns it. Only sha256 and sha512 are accepted.
 *
 * @throws {Error} (plain; callers wrap it in their typed error) saying what is wrong.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDigest } from "./digest.ts";
 * const d = "sha256:" + "a".repeat(64);
 * assert.equal(parseDigest(d), d);
 * assert.throws(() => parseDigest("sha256:xyz"));
 * ```
 */
export function parseDigest(d: string): string {
  const m = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(d);
  if (!m) throw new Error("expected ALGORITHM:HEX, e.g. sha256:<64 hex>");
  const want = HEX_LENGTH[m[1]];
  if (want === undefined) {
    throw new Error(`unsupported algorithm ${m[1]} (sha256 and sha512 are)`);
  }
  if (m[2].length !== want || !/^[a-f0-9]+$/.test(m[2])) {
    throw new Error(`${m[1]} needs ${want} lower-case hex digits`);
  }
  return d;
}

/** A running hash for `digest`'s algorithm. */
export function hasherFor(digest: string): Hash {
  return nodeCrypto().createHash(digest.slice(0, digest.indexOf(":")));
}

/**
 * The digest of `bytes` with `algorithm`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { digestOf } from "./digest.ts";
 * assert.equal(digestOf(new Uint8Array()), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
 * ```
 */
export function digestOf(bytes: Uint8Array, algorithm = "sha256"): string {
  return `${algorithm}:${
    nodeCrypto().createHash(algorithm).update(bytes).digest("hex")
  }`;
}

/**
 * Checks `bytes` against `digest` (any supported algorithm).
 *
 * @throws {DigestMismatch} naming `subject`.
 */
export function verifyBytes(
  subject: string,
  bytes: Uint8Array,
  digest: string,
): void {
  const got = digestOf(bytes, digest.slice(0, digest.indexOf(":")));
  if (got !== digest) throw new DigestMismatch(subject, digest, got);
}
