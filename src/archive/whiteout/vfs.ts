/**
 * The vfs codec: a vfs layer dir is a full copy of its parent plus the
 * layer's changes, so there is nothing on disk to mark a deletion:
 *
 * - extraction applies a whiteout by deleting `<name>` from the copy, and an
 *   opaque marker by emptying the dir of everything this tar did not put
 *   there (moby's UnpackLayer keeps `unpackedPaths` for this);
 * - export and changes compare the layer's tree with its parent's
 *   (`fullTree`), and write deletions as `.wh.<name>` themselves.
 *
 * @module
 */

import type { EntryType } from "../tar/header.ts";
import type {
  WhiteoutAction,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import { PlainTreeCodec } from "./_plain_tree.ts";
import { classifyOci } from "./oci.ts";

class VfsCodec extends PlainTreeCodec {
  readonly whiteoutNamesAreData = true;
  readonly name = "vfs";

  classify(
    type: EntryType,
    path: string,
    base: string,
    entryName: string,
  ): WhiteoutAction {
    return classifyOci(type, path, base, entryName, false);
  }

  applyWhiteout(
    t: WhiteoutTarget,
    parent: string,
    name: string,
    entry: string,
  ): void {
    t.remove(parent, name, entry);
  }

  applyOpaque(t: WhiteoutTarget, parent: string, entry: string): void {
    t.keepOnlyArchived(parent, entry);
  }
}

/**
 * The vfs codec.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { vfsCodec } from "./vfs.ts";
 * assert.equal(vfsCodec.fullTree, true);
 * ```
 */
export const vfsCodec: WhiteoutCodec = new VfsCodec();
