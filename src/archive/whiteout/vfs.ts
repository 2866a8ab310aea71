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

import type { DirEntry, Stat } from "../../sys/fs_walk_linux.ts";
import type { EntryType } from "../tar/header.ts";
import type {
  DiskEntry,
  WhiteoutAction,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import { classifyOci, isOverlayXattr } from "./oci.ts";

const CONTENT: DiskEntry = { kind: "content" };

class VfsCodec implements WhiteoutCodec {
  readonly name = "vfs";
  readonly fullTree = true;

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

  unionXattr(name: string): boolean {
    return isOverlayXattr(name);
  }

  internalAtRoot(_name: string): boolean {
    return false;
  }

  deviceWhiteout(_dirFd: number, _e: DirEntry): Stat | null {
    return null;
  }

  opaqueByXattrs(_xattrs: Map<string, Uint8Array>): boolean {
    return false;
  }

  checkExportable(_xattrs: Map<string, Uint8Array>, _path: string): void {}

  readEntry(_dirFd: number, _e: DirEntry, _name: string): DiskEntry {
    return CONTENT;
  }

  isOpaqueDir(_fd: number, _xattrs: Map<string, Uint8Array>): boolean {
    return false;
  }

  isOpaqueAt(_rootFd: number, _rel: string): boolean {
    return false;
  }

  whitedOutAt(
    _rootFd: number,
    _rel: string,
    _name: string,
    _st: Stat | null,
  ): boolean {
    return false;
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
