/**
 * `layerTar`: a layer's own changes as an uncompressed OCI layer tar.
 *
 * @module
 */

import type { LayerDirs, LayerTarOptions } from "../types.ts";
import { layerCodec } from "../whiteout/mod.ts";
import { treeChanges } from "../changes/_tree_changes.ts";
import { tarStream } from "./_tar_pump.ts";
import { planFromChanges, walkTree } from "./_walk.ts";

/**
 * Streams the OCI layer tar of a layer's own changes.
 *
 * - overlay: the upper dir, with 0/0 character devices written as
 *   `.wh.<name>` and opaque directories (`trusted.overlay.opaque=y` or
 *   `user.overlay.opaque=y`) followed by `<dir>/.wh..wh..opq`.
 * - aufs: the layer dir; `.wh.` files pass through, `/.wh..wh.plnk` and
 *   `/.wh..wh.aufs` never appear.
 * - vfs: the entries that differ from `parentDirs[0]` (see `layerChanges`),
 *   deletions as `.wh.<name>`; without a parent, the whole tree.
 *
 * The same layer gives the same bytes: entries sorted by name bytes, parents
 * first, numeric owners, PAX nanosecond mtimes, content xattrs (not
 * `*.overlay.*`, not `security.selinux`), hard links as link entries, no
 * sockets. The stream is a pull-based byte stream (1 MiB chunks, or the
 * caller's buffer with a BYOB reader), so memory stays flat;
 * cancel it to stop early.
 *
 * @param layer The layer's dirs and whiteout codec.
 * @param options Progress callback.
 * @returns The tar bytes; errors (unreadable files, non-UTF-8 names, a
 *   redirect_dir/metacopy layer) error the stream.
 *
 * @example
 * ```ts ignore
 * import { layerTar } from "./layer_tar.ts";
 * import { writeToFile } from "../write_file.ts";
 * const tar = layerTar({
 *   dir: "/var/lib/layerfs/diff/app",
 *   format: "overlay",
 *   parentDirs: ["/var/lib/layerfs/diff/base"],
 * });
 * using out = await Deno.create("app.tar");
 * await writeToFile(tar, out);
 * ```
 */
export function layerTar(
  layer: LayerDirs,
  options: LayerTarOptions = {},
): ReadableStream<Uint8Array> {
  return tarStream(() => {
    const codec = layerCodec(layer);
    if (codec.fullTree) {
      const parent = layer.parentDirs[0];
      const plan = parent === undefined
        ? undefined
        : planFromChanges(treeChanges(layer.dir, parent, codec));
      return walkTree(layer.dir, { codec, plan });
    }
    return walkTree(layer.dir, { codec });
  }, options.onProgress);
}
