/**
 * Digests and chain ids: the one home of content digests for images and
 * the registry. Every digest an image or a registry names is hostile input:
 * {@link parseDigest} accepts `sha256:<64 hex>` and `sha512:<128 hex>`
 * (lowercase), what layers are stored under ({@link digestHex}) is sha256
 * only (other algorithms are refused, never reinterpreted). Layer ids in the
 * store are OCI chain ids as 64 hex chars, the way docker and containerd
 * compute them:
 * `ChainID(L0) = DiffID(L0)`,
 * `ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))`.
 *
 * @module
 */

import { nodeCrypto } from "../_node.ts";
import { sha256Of, Sha256Stream } from "../_sha256.ts";
import { DigestMismatch, InvalidImage } from "../errors.ts";

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

/**
 * The 64 hex chars of a `sha256:<hex>` digest.
 *
 * @param digest What the image says.
 * @param subject Names the image and field, for the error.
 * @returns The hex part.
 * @throws {InvalidImage} anything but `sha256:` and 64 lowercase hex chars.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { digestHex } from "./digest.ts";
 * assert.equal(digestHex("sha256:" + "a".repeat(64), "x"), "a".repeat(64));
 * assert.throws(() => digestHex("sha256:../../etc", "x"));
 * ```
 */
export function digestHex(digest: unknown, subject: string): string {
  let ok = false;
  try {
    ok = typeof digest === "string" && digest.startsWith("sha256:") &&
      parseDigest(digest) === digest;
  } catch { /* below */ }
  if (!ok) {
    throw new InvalidImage(
      subject,
      `${
        JSON.stringify(digest)?.slice(0, 100)
      } is not a sha256 digest ("sha256:" and 64 lowercase hex characters)`,
      "layerfs accepts only sha256 digests; re-save the image with a current tool",
    );
  }
  return (digest as string).slice(7);
}

/**
 * sha256 of bytes as 64 hex chars.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Hex } from "./digest.ts";
 * assert.equal(sha256Hex(new Uint8Array()).slice(0, 8), "e3b0c442");
 * ```
 */
export function sha256Hex(bytes: Uint8Array | string): string {
  return nodeCrypto().createHash("sha256").update(bytes).digest("hex");
}

/** A running hash of a blob, for {@link blobHash}. */
export interface BlobHash {
  /** Takes the next bytes (not kept by reference). */
  update(chunk: Uint8Array): void;
  /** The digest (`algorithm:hex`) of everything given. */
  digest(): Promise<string>;
}

/**
 * A running hash for `digest`'s algorithm (a digest {@link parseDigest}
 * accepted): sha256 off Node while the blob is small (`src/_sha256.ts`; a
 * registry's small images then need no Node compatibility layer), sha512 by
 * `node:crypto`.
 *
 * @param digest The digest the bytes should have; only its algorithm is used.
 * @param expectedSize The blob's size, when known (a large one goes to Node from its start).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blobHash, digestOf } from "./digest.ts";
 * const bytes = new TextEncoder().encode("layer");
 * for (const algorithm of ["sha256", "sha512"]) {
 *   const h = blobHash(`${algorithm}:`, bytes.length);
 *   h.update(bytes.subarray(0, 2));
 *   h.update(bytes.subarray(2));
 *   assert.equal(await h.digest(), digestOf(bytes, algorithm));
 * }
 * ```
 */
export function blobHash(digest: string, expectedSize?: number): BlobHash {
  const algorithm = digest.slice(0, digest.indexOf(":"));
  if (algorithm === "sha256") {
    const h = new Sha256Stream({ expectedSize });
    return {
      update: (chunk) => h.update(chunk),
      digest: async () => `sha256:${await h.digest()}`,
    };
  }
  const h = nodeCrypto().createHash(algorithm);
  return {
    update: (chunk) => void h.update(chunk),
    digest: () => Promise.resolve(`${algorithm}:${h.digest("hex")}`),
  };
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
 * {@link digestOf}, off Node while `bytes` are small (`src/_sha256.ts`;
 * sha512 by Web Crypto): what the registry client hashes manifests with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { digestOf, digestOfAsync } from "./digest.ts";
 * const bytes = new TextEncoder().encode("{}");
 * assert.equal(await digestOfAsync(bytes), digestOf(bytes));
 * assert.equal(await digestOfAsync(bytes, "sha512"), digestOf(bytes, "sha512"));
 * ```
 */
export async function digestOfAsync(
  bytes: Uint8Array,
  algorithm = "sha256",
): Promise<string> {
  if (algorithm === "sha256") return `sha256:${await sha256Of(bytes)}`;
  if (algorithm !== "sha512") return digestOf(bytes, algorithm);
  const d = new Uint8Array(
    await crypto.subtle.digest("SHA-512", bytes as Uint8Array<ArrayBuffer>),
  );
  return `sha512:${
    Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("")
  }`;
}

/**
 * Checks `bytes` against `digest` (any supported algorithm).
 *
 * @throws {DigestMismatch} naming `subject`.
 */
export async function verifyBytes(
  subject: string,
  bytes: Uint8Array,
  digest: string,
): Promise<void> {
  const got = await digestOfAsync(
    bytes,
    digest.slice(0, digest.indexOf(":")),
  );
  if (got !== digest) throw new DigestMismatch(subject, digest, got);
}

/**
 * Chain ids of a layer stack, bottom first, from its DiffIDs (bottom first).
 *
 * @param diffIds `sha256:<hex>` DiffIDs, as in a config's `rootfs.diff_ids`.
 * @returns One 64-hex chain id per layer.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chainIds, sha256Hex } from "./digest.ts";
 * const a = "sha256:" + "a".repeat(64), b = "sha256:" + "b".repeat(64);
 * const [c0, c1] = chainIds([a, b]);
 * assert.equal(c0, "a".repeat(64));
 * assert.equal(c1, sha256Hex(`sha256:${c0} ${b}`));
 * ```
 */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out.at(-1);
    out.push(
      prev === undefined
        ? digestHex(d, "config")
        : sha256Hex(chainInput(prev, d)),
    );
  }
  return out;
}

/**
 * {@link chainIds}, hashed off Node (`src/_sha256.ts`): what loads use, so
 * that a small image needs no Node compatibility layer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chainIds, chainIdsAsync } from "./digest.ts";
 * const ids = ["a", "b", "c"].map((x) => "sha256:" + x.repeat(64));
 * assert.deepEqual(await chainIdsAsync(ids), chainIds(ids));
 * ```
 */
export async function chainIdsAsync(diffIds: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out.at(-1);
    out.push(
      prev === undefined
        ? digestHex(d, "config")
        : await sha256Of(chainInput(prev, d)),
    );
  }
  return out;
}

/** What the chain id after `prev` (hex) with DiffID `d` is the sha256 of. */
function chainInput(prev: string, d: string): string {
  return `sha256:${prev} ${d}`;
}
