/**
 * `layerChanges`: what a layer changes relative to its parents, as `docker
 * diff` lists it.
 *
 * @module
 */

import type { Change, LayerDirs } from "../types.ts";
import { layerCodec } from "../whiteout/mod.ts";
import { treeChanges } from "./_tree_changes.ts";
import { upperChanges } from "./_upper_changes.ts";

/**
 * Lists the changes a layer makes to its parents, sorted by path (UTF-8 byte
 * order), each path absolute ("/etc/hosts").
 *
 * - upper-dir codecs (overlay/aufs): computed from the layer's own dir with lookups into the
 *   parents (moby's `archive.Changes`/`OverlayChanges` rules; cost grows with
 *   the layer, not the image). Whiteouts of what the parents have are
 *   deletes (a whiteout of a path no parent shows is nothing); an opaque
 *   directory's hidden parent entries are deletes too.
 * - full-tree codecs (vfs): `dir` and `parentDirs[0]` are full trees compared entry by entry
 *   (moby's `ChangesDirs` rules); without a parent everything is an add.
 *
 * Differences from moby (bugs there, tested here): a file that became a
 * directory works; a change to any content xattr alone (e.g. `user.*`) is a
 * modify; mtimes are compared to the nanosecond; opaque directories report
 * the entries they hide. See `_upper_changes.ts` and `_tree_changes.ts`.
 *
 * @param layer The layer's dirs and whiteout codec.
 * @returns The changes, sorted by path.
 * @throws {StoreError} A name that is not valid UTF-8.
 * @throws {SysError} A directory cannot be read (permissions, vanished).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerChanges } from "./layer_changes.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/base`);
 * await Deno.writeTextFile(`${root}/base/hosts`, "old");
 * await Deno.mkdir(`${root}/app`); // overlay's upper dir: only what changed
 * await Deno.writeTextFile(`${root}/app/hosts`, "new");
 * await Deno.writeTextFile(`${root}/app/motd`, "hi");
 * const changes = await layerChanges({
 *   dir: `${root}/app`,
 *   format: "overlay",
 *   parentDirs: [`${root}/base`],
 * });
 * assert.deepEqual(changes, [
 *   { path: "/hosts", kind: "modify" },
 *   { path: "/motd", kind: "add" },
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function layerChanges(layer: LayerDirs): Promise<Change[]> {
  try {
    const codec = layerCodec(layer);
    if (codec.fullTree) {
      return Promise.resolve(
        treeChanges(layer.dir, layer.parentDirs[0], codec),
      );
    }
    return Promise.resolve(upperChanges(layer.dir, codec, layer.parentDirs));
  } catch (e) {
    return Promise.reject(e);
  }
}
