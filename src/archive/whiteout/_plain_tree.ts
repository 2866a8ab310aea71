/**
 * Internal: the disk side shared by codecs whose layer dirs are plain trees
 * (vfs layers, `applyTar`/`packDir` dirs): nothing on disk marks a deletion
 * or an opaque dir, so export and changes compare whole trees (`fullTree`).
 * Subclasses say what extraction does with OCI whiteouts.
 *
 * @module
 */

import type { DirEntry, Stat } from "../../sys/fs_walk_linux.ts";
import type {
  DiskEntry,
  ExtractFormat,
  WhiteoutAction,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import type { EntryType } from "../tar/header.ts";
import { isOverlayXattr } from "./oci.ts";

const CONTENT: DiskEntry = { kind: "content" };

/** A codec over plain trees; `classify` and the apply methods are the subclass's. */
export abstract class PlainTreeCodec implements WhiteoutCodec {
  abstract readonly name: ExtractFormat;
  readonly zeroDeviceIsWhiteout = false;
  readonly fullTree = true;
  abstract readonly whiteoutNamesAreData: boolean;

  abstract classify(
    type: EntryType,
    path: string,
    base: string,
    entryName: string,
  ): WhiteoutAction;

  abstract applyWhiteout(
    t: WhiteoutTarget,
    parent: string,
    name: string,
    entry: string,
  ): void;

  abstract applyOpaque(t: WhiteoutTarget, parent: string, entry: string): void;

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
