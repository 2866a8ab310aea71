/**
 * The store's entry point for extraction: `applyLayerTar` fills a layer's
 * staging directory from an OCI layer tar, in the store backend's whiteout
 * format. A gzip- or zstd-compressed tar is decompressed on the way (found
 * by its magic bytes, checked to the end of the input). See apply_tar.ts for
 * the safety rules and semantics.
 *
 * @module
 */

import type { ApplyLayerOptions, LayerDirs, TarSource } from "../types.ts";
import { layerCodec } from "../whiteout/mod.ts";
import { applyCodecAt, openTarget } from "./apply_tar.ts";
import { close } from "../../sys/fd_linux.ts";
import { decompressTarSource } from "../compress/tar_source.ts";

/**
 * Extracts an OCI layer tar into `layer.dir` (an existing staging directory;
 * for vfs it already holds a full copy of the parent), converting OCI
 * whiteouts with the layer's codec (`layer.codec`, or the one of
 * `layer.format`). Returns the layer's diffSize: bytes of
 * regular files written, hardlinks counted once.
 *
 * `tar` may be gzip- or zstd-compressed: it is decompressed transparently
 * and read to its end, so a corrupt, truncated or padded compressed input is
 * refused even when the tar inside looks complete.
 *
 * On error `layer.dir` is left half-filled: the store removes its staging dir.
 *
 * @throws {InvalidArchive} A malformed, truncated or unsafe tar (names the
 *   entry), or a corrupt or truncated gzip/zstd stream.
 * @throws {LayerfsError} The file system refused a write.
 *
 * @example
 * ```ts ignore
 * import { applyLayerTar } from "../layer.ts";
 * const size = await applyLayerTar(
 *   { dir: "/var/lib/layerfs/staging/x", format: "overlay", parentDirs: [] },
 *   (await Deno.open("layer.tar")).readable,
 * );
 * ```
 */
export async function applyLayerTar(
  layer: LayerDirs,
  tar: TarSource,
  options?: ApplyLayerOptions,
): Promise<number> {
  const fd = openTarget(layer.dir);
  try {
    const source = await decompressTarSource(tar);
    const size = await applyCodecAt(fd, source.tar, layerCodec(layer), {
      onProgress: options?.onProgress,
    });
    await source.finish();
    return size;
  } finally {
    close(fd);
  }
}
