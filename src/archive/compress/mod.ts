/**
 * gzip and zstd for layer tars: detection by magic bytes, decompression
 * checked to the end of the input (checksums, truncation, trailing data),
 * and compression.
 *
 * `applyLayerTar` (and so `Store.applyDiff`) decompresses by itself; use
 * these directly to read or write compressed tars elsewhere (an image's
 * blobs, a registry upload).
 *
 * @example Read a layer that may be compressed
 * ```ts
 * import assert from "node:assert/strict";
 * import { decompress } from "./mod.ts";
 * const gz = new Blob(["a tar"]).stream().pipeThrough(new CompressionStream("gzip"));
 * const { compression, stream } = await decompress(gz, { name: "layer.tar.gz" });
 * assert.equal(compression, "gzip");
 * assert.equal(await new Response(stream).text(), "a tar");
 * ```
 *
 * @module
 */

export {
  type Compression,
  detectCompression,
  type DetectedCompression,
  MAGIC_LENGTH,
} from "./detect.ts";
export {
  decompress,
  type Decompressed,
  type DecompressOptions,
  decompressStream,
} from "./decompress.ts";
export { compressor, writeCompressed } from "./compress.ts";
export {
  type DecompressedSource,
  decompressTarSource,
  peekCompression,
} from "./tar_source.ts";
