/**
 * `layerDiffSize`: how many bytes of file content a layer adds.
 *
 * @module
 */

import type { LayerDirs, WhiteoutCodec } from "../types.ts";
import { layerCodec } from "../whiteout/mod.ts";
import { close } from "../../sys/fd_linux.ts";
import {
  DT,
  openDirAt,
  readDirFd,
  type Stat,
  statxAtOrNull,
} from "../../sys/fs_walk_linux.ts";
import { treeChanges } from "./_tree_changes.ts";

/** Sums regular-file sizes, counting each multiply-linked inode once. */
class SizeSum {
  total = 0;
  #seen = new Set<string>();

  add(st: Stat): void {
    if (st.kind !== "file") return;
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (this.#seen.has(key)) return;
      this.#seen.add(key);
    }
    this.total += st.size;
  }
}

/** `root`: the codec of a layer root, whose bookkeeping entries are skipped (aufs's /.wh..wh.*). */
function walk(fd: number, sum: SizeSum, root: WhiteoutCodec | null): void {
  for (const e of readDirFd(fd)) {
    if (root !== null && e.name !== null && root.internalAtRoot(e.name)) {
      continue;
    }
    if (e.type === DT.DIR) {
      const sub = openDirAt(fd, e.cname);
      try {
        walk(sub, sum, null);
      } finally {
        close(sub);
      }
      continue;
    }
    if (e.type !== DT.REG && e.type !== DT.UNKNOWN) continue;
    const st = statxAtOrNull(fd, e.cname);
    if (!st) continue;
    if (st.kind === "dir") {
      const sub = openDirAt(fd, e.cname);
      try {
        walk(sub, sum, null);
      } finally {
        close(sub);
      }
    } else sum.add(st);
  }
}

/**
 * Bytes of regular files in the layer's own content, hard links counted once
 * (moby's `directory.Size`/`ChangesSize` semantics, regular files only).
 *
 * - upper-dir codecs (overlay/aufs): the files of `dir` (the union fs's
 *   bookkeeping at the root, aufs's `/.wh..wh.*`, left out).
 * - full-tree codecs (vfs): the files that are added or modified relative to `parentDirs[0]`
 *   (everything without a parent).
 *
 * @param layer The layer's dirs and whiteout codec.
 * @returns The size in bytes.
 * @throws {SysError} A directory cannot be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerDiffSize } from "./layer_size.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a`, "hello");
 * await Deno.link(`${dir}/a`, `${dir}/b`); // a hard link counts once
 * assert.equal(await layerDiffSize({ dir, format: "overlay", parentDirs: [] }), 5);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function layerDiffSize(layer: LayerDirs): Promise<number> {
  try {
    const sum = new SizeSum();
    const codec = layerCodec(layer);
    if (codec.fullTree) {
      treeChanges(
        layer.dir,
        layer.parentDirs[0],
        codec,
        (_p, _k, st) => sum.add(st),
      );
    } else {
      const fd = openDirAt(-100, layer.dir);
      try {
        walk(fd, sum, codec);
      } finally {
        close(fd);
      }
    }
    return Promise.resolve(sum.total);
  } catch (e) {
    return Promise.reject(e);
  }
}
