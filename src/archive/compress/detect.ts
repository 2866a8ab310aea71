/**
 * Which compression a layer tar is in, from its first bytes.
 *
 * @module
 */

import { InvalidArchive } from "../../errors.ts";

/** A compression format layerfs reads and writes (OCI `tar+gzip`, `tar+zstd`). */
export type Compression = "gzip" | "zstd";

/** What {@link detectCompression} can report: a {@link Compression}, or `null` for none. */
export type DetectedCompression = Compression | null;

/** Bytes {@link detectCompression} needs to tell every format it knows apart. */
export const MAGIC_LENGTH = 6;

const MAGIC: { format: string; bytes: number[] }[] = [
  { format: "gzip", bytes: [0x1f, 0x8b] },
  { format: "zstd", bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { format: "xz", bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: "bzip2", bytes: [0x42, 0x5a, 0x68] },
];

/**
 * Names the compression of a stream from its first bytes.
 *
 * Returns `null` for anything that is not gzip or zstd magic (a tar starts
 * with a file name); xz and bzip2 are refused with a message saying how to
 * decompress them, because layer tars in the wild are gzip or zstd.
 *
 * @param head The first bytes of the input ({@link MAGIC_LENGTH} when the input is that long).
 * @param name The input, for the error message (a path, "stdin").
 * @returns "gzip", "zstd" or `null`.
 * @throws {InvalidArchive} for xz or bzip2 input.
 * @example
 * ```ts
 * import { detectCompression } from "./detect.ts";
 * import assert from "node:assert/strict";
 * assert.equal(detectCompression(new Uint8Array([0x1f, 0x8b, 8, 0])), "gzip");
 * assert.equal(detectCompression(new TextEncoder().encode("etc/hosts")), null);
 * ```
 */
export function detectCompression(
  head: Uint8Array,
  name?: string,
): DetectedCompression {
  // A zstd stream may open with a skippable frame (magic 0x184D2A5?).
  if (
    head.length >= 4 && (head[0] & 0xf0) === 0x50 && head[1] === 0x2a &&
    head[2] === 0x4d && head[3] === 0x18
  ) {
    return "zstd";
  }
  for (const { format, bytes } of MAGIC) {
    if (head.length >= bytes.length && bytes.every((b, i) => head[i] === b)) {
      if (format === "gzip" || format === "zstd") return format;
      throw new InvalidArchive(
        `the input is ${format}-compressed; only gzip and zstd are supported, ` +
          `decompress it first (e.g. "${
            format === "xz" ? "xz" : "bzip2"
          } -dc FILE | layerfs apply ID -")`,
        undefined,
        { input: name },
      );
    }
  }
  return null;
}
