/**
 * Digests and chain ids. Every digest an image names is hostile input: it
 * must be `sha256:<64 lowercase hex>` (other algorithms are refused, never
 * reinterpreted). Layer ids in the store are OCI chain ids as 64 hex chars,
 * the way docker and containerd compute them:
 * `ChainID(L0) = DiffID(L0)`,
 * `ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { InvalidImage } from "../errors.ts";

const DIGEST = /^sha256:([0-9a-f]{64})$/;

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
  const m = typeof digest === "string" ? DIGEST.exec(digest) : null;
  if (!m) {
    throw new InvalidImage(
      subject,
      `${
        JSON.stringify(digest)?.slice(0, 100)
      } is not a sha256 digest ("sha256:" and 64 lowercase hex characters)`,
      "layerfs accepts only sha256 digests; re-save the image with a current tool",
    );
  }
  return m[1];
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
  return createHash("sha256").update(bytes).digest("hex");
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
      prev === undefined ? digestHex(d, "config") : sha256Hex(
        `sha256:${prev} ${d}`,
      ),
    );
  }
  return out;
}
