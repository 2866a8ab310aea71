/**
 * The store's entry point for extraction: `applyLayerTar` fills a layer's
 * staging directory from an OCI layer tar, in the store backend's whiteout
 * format. See apply_tar.ts for the safety rules and semantics.
 *
 * @module
 */

import type { ApplyLayerOptions, LayerDirs, TarSource } from "../types.ts";
import { layerCodec } from "../whiteout/mod.ts";
import { applyCodecAt, openTarget } from "./apply_tar.ts";
import { close } from "../../sys/fd_linux.ts";

/**
 * Extracts an OCI layer tar into `layer.dir` (an existing staging directory;
 * for vfs it already holds a full copy of the parent), converting OCI
 * whiteouts with the layer's codec (`layer.codec`, or the one of
 * `layer.format`). Returns the layer's diffSize: bytes of
 * regular files written, hardlinks counted once.
 *
 * On error `layer.dir` is left half-filled: the store removes its staging dir.
 *
 * @throws {InvalidArchive} A malformed, truncated or unsafe tar (names the entry).
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
    return await applyCodecAt(fd, tar, layerCodec(layer), {
      onProgress: options?.onProgress,
    });
  } finally {
    close(fd);
  }
}
