/**
 * The "none" codec: no conversion at all, for plain directories (`applyTar`
 * and `packDir` with `"none"`, like `tar -x`/`tar -c`). `.wh.` entries are
 * ordinary files both ways; only overlay's own xattrs are still dropped.
 *
 * @module
 */

import type { DirEntry, Stat } from "../../sys/fs_walk_linux.ts";
import type {
  DiskEntry,
  WhiteoutAction,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import { ENTRY, isOverlayXattr } from "./oci.ts";

const CONTENT: DiskEntry = { kind: "content" };

class NoneCodec implements WhiteoutCodec {
  readonly name = "none";
  // A plain tree: it is compared as a whole, like a vfs layer.
  readonly fullTree = true;

  classify(): WhiteoutAction {
    return ENTRY;
  }

  // classify never reports a whiteout: these are never called.
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
 * The codec that converts nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noneCodec } from "./none.ts";
 * assert.equal(noneCodec.classify("file", "a/.wh.b", ".wh.b", "a/.wh.b").kind, "entry");
 * ```
 */
export const noneCodec: WhiteoutCodec = new NoneCodec();
