/**
 * The aufs codec: aufs stores whiteouts in the OCI tar form itself (the form
 * came from aufs):
 *
 * - a deleted name is a file `.wh.<name>` (a hardlink to the whiteout base);
 * - an opaque directory holds `.wh..wh..opq`;
 * - aufs keeps its own bookkeeping in `/.wh..wh.plnk` (pseudo-links) and
 *   `/.wh..wh.aufs` (the whiteout base) at the layer root: never content.
 *
 * So extraction keeps `.wh.` files as they are and skips the internals, and
 * export passes `.wh.` files through.
 *
 * @module
 */

import {
  type DirEntry,
  type Stat,
  statxAtOrNull,
} from "../../sys/fs_walk_linux.ts";
import type { EntryType } from "../tar/header.ts";
import type {
  DiskEntry,
  WhiteoutAction,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import {
  classifyOci,
  isOverlayXattr,
  WH_META_PREFIX,
  WH_OPAQUE,
  WH_PREFIX,
} from "./oci.ts";

const CONTENT: DiskEntry = { kind: "content" };
const INTERNAL: DiskEntry = { kind: "internal" };

function join(rel: string, name: string): string {
  return rel === "" ? name : `${rel}/${name}`;
}

class AufsCodec implements WhiteoutCodec {
  readonly name = "aufs";
  readonly zeroDeviceIsWhiteout = false;
  readonly whiteoutNamesAreData = false;
  readonly fullTree = false;

  classify(
    type: EntryType,
    path: string,
    base: string,
    entryName: string,
  ): WhiteoutAction {
    return classifyOci(type, path, base, entryName, true);
  }

  // classify keeps `.wh.` files and the opaque marker as entries, so these
  // two are never called: there is nothing to convert.
  applyWhiteout(
    _t: WhiteoutTarget,
    _parent: string,
    _name: string,
    _entry: string,
  ): void {}

  applyOpaque(_t: WhiteoutTarget, _parent: string, _entry: string): void {}

  unionXattr(name: string): boolean {
    return isOverlayXattr(name);
  }

  internalAtRoot(name: string): boolean {
    return name.startsWith(WH_META_PREFIX);
  }

  deviceWhiteout(_dirFd: number, _e: DirEntry): Stat | null {
    return null;
  }

  opaqueByXattrs(_xattrs: Map<string, Uint8Array>): boolean {
    return false;
  }

  checkExportable(_xattrs: Map<string, Uint8Array>, _path: string): void {}

  readEntry(_dirFd: number, _e: DirEntry, name: string): DiskEntry {
    if (!name.startsWith(WH_PREFIX)) return CONTENT;
    // Bookkeeping at the root, and the opaque marker (read with its dir).
    if (name.startsWith(WH_META_PREFIX)) return INTERNAL;
    return { kind: "whiteout", name: name.slice(WH_PREFIX.length) };
  }

  isOpaqueDir(fd: number, _xattrs: Map<string, Uint8Array>): boolean {
    return statxAtOrNull(fd, WH_OPAQUE) !== null;
  }

  isOpaqueAt(rootFd: number, rel: string): boolean {
    return statxAtOrNull(rootFd, join(rel, WH_OPAQUE)) !== null;
  }

  whitedOutAt(
    rootFd: number,
    rel: string,
    name: string,
    st: Stat | null,
  ): boolean {
    if (st !== null) return false;
    return statxAtOrNull(rootFd, join(rel, WH_PREFIX + name)) !== null;
  }
}

/**
 * The aufs codec.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aufsCodec } from "./aufs.ts";
 * assert.equal(aufsCodec.internalAtRoot(".wh..wh.plnk"), true);
 * assert.equal(aufsCodec.internalAtRoot(".wh.passwd"), false);
 * ```
 */
export const aufsCodec: WhiteoutCodec = new AufsCodec();
