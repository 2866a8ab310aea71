/**
 * The overlay codec: how an overlayfs upper/lower dir stores whiteouts
 * (Linux Documentation/filesystems/overlayfs.rst, "whiteouts and opaque
 * directories"):
 *
 * - a deleted name is a character device numbered 0/0;
 * - an opaque directory has the xattr `trusted.overlay.opaque=y`
 *   (`user.overlay.opaque=y` for mounts with `userxattr`). Only "y" counts:
 *   newer kernels write "x" on directories that merely contain xwhiteouts,
 *   which does not hide the lower layers;
 * - the layer dir holds only this layer, so an opaque dir keeps every entry
 *   this tar puts in it (moby's overlayWhiteoutConverter in
 *   pkg/archive/archive_linux.go does the same).
 *
 * @module
 */

import { StoreError } from "../../errors.ts";
import {
  type DirEntry,
  DT,
  getXattrAt,
  type Stat,
  statxAt,
} from "../../sys/fs_walk_linux.ts";
import type { EntryType } from "../tar/header.ts";
import type {
  DiskEntry,
  WhiteoutAction,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import { classifyOci, isOverlayXattr } from "./oci.ts";

const TRUSTED_OPAQUE = "trusted.overlay.opaque";
const USER_OPAQUE = "user.overlay.opaque";
const Y = 0x79; // "y"
const OPAQUE_VALUE = new Uint8Array([Y]);
const CONTENT: DiskEntry = { kind: "content" };

/** True for an overlay whiteout: a character device numbered 0/0. */
function isDeviceWhiteout(st: Stat): boolean {
  return st.kind === "char" && st.rdevMajor === 0 && st.rdevMinor === 0;
}

function isY(v: Uint8Array | null | undefined): boolean {
  return v != null && v.length === 1 && v[0] === Y;
}

/**
 * The overlay xattrs that change what a file means: a layer using
 * `redirect_dir` or `metacopy` cannot be exported file by file (a metacopy
 * file has no data in the upper dir; a redirected dir names its origin
 * elsewhere). layerfs mounts with both off; finding one means the layer came
 * from another tool.
 */
function featureXattr(xattrs: Map<string, Uint8Array>): string | null {
  if (xattrs.size === 0) return null;
  for (const k of xattrs.keys()) {
    if (
      k === "trusted.overlay.redirect" || k === "user.overlay.redirect" ||
      k === "trusted.overlay.metacopy" || k === "user.overlay.metacopy"
    ) return k;
  }
  return null;
}

/** The overlay codec; `opaqueXattr` is where extraction marks opaque dirs. */
class OverlayCodec implements WhiteoutCodec {
  readonly name = "overlay";
  readonly fullTree = false;
  readonly zeroDeviceIsWhiteout = true;
  readonly whiteoutNamesAreData = true;
  /** The xattr extraction sets on opaque dirs (reading accepts both). */
  readonly opaqueXattr: string;

  constructor(opaqueXattr: string) {
    this.opaqueXattr = opaqueXattr;
  }

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
    // Unprivileged creation is allowed since Linux 5.8 (commit a3c751a50fe6,
    // "vfs: allow unprivileged whiteout creation").
    t.makeDeviceWhiteout(parent, name, entry);
  }

  applyOpaque(t: WhiteoutTarget, parent: string, entry: string): void {
    // Set with the directory's metadata at the end, so the entries of this
    // tar in it stay (they are this layer's).
    t.setDirXattr(parent, this.opaqueXattr, OPAQUE_VALUE, entry);
  }

  unionXattr(name: string): boolean {
    return isOverlayXattr(name);
  }

  internalAtRoot(_name: string): boolean {
    return false;
  }

  deviceWhiteout(dirFd: number, e: DirEntry): Stat | null {
    if (e.type !== DT.CHR && e.type !== DT.UNKNOWN) return null;
    const st = statxAt(dirFd, e.cname);
    return isDeviceWhiteout(st) ? st : null;
  }

  opaqueByXattrs(xattrs: Map<string, Uint8Array>): boolean {
    if (xattrs.size === 0) return false;
    return isY(xattrs.get(TRUSTED_OPAQUE)) || isY(xattrs.get(USER_OPAQUE));
  }

  checkExportable(xattrs: Map<string, Uint8Array>, path: string): void {
    const k = featureXattr(xattrs);
    if (k !== null) {
      throw new StoreError(
        `Cannot export "${path}": it carries the overlay xattr "${k}" (redirect_dir/metacopy), whose content lives in another layer; mount layers with redirect_dir=off,metacopy=off`,
      );
    }
  }

  readEntry(dirFd: number, e: DirEntry, name: string, st?: Stat): DiskEntry {
    const isWh = st !== undefined
      ? isDeviceWhiteout(st)
      : this.deviceWhiteout(dirFd, e) !== null;
    return isWh ? { kind: "whiteout", name } : CONTENT;
  }

  isOpaqueDir(_fd: number, xattrs: Map<string, Uint8Array>): boolean {
    return this.opaqueByXattrs(xattrs);
  }

  isOpaqueAt(rootFd: number, rel: string): boolean {
    const p = rel === "" ? "." : rel;
    return isY(getXattrAt(rootFd, p, TRUSTED_OPAQUE)) ||
      isY(getXattrAt(rootFd, p, USER_OPAQUE));
  }

  whitedOutAt(
    _rootFd: number,
    _rel: string,
    _name: string,
    st: Stat | null,
  ): boolean {
    return st !== null && isDeviceWhiteout(st);
  }
}

/**
 * The overlay codec of stores mounted as root: opaque dirs get
 * `trusted.overlay.opaque=y`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlayCodec } from "./overlay.ts";
 * assert.equal(overlayCodec.name, "overlay");
 * assert.equal(overlayCodec.opaqueXattr, "trusted.overlay.opaque");
 * ```
 */
export const overlayCodec: OverlayCodec = new OverlayCodec(TRUSTED_OPAQUE);

/**
 * The overlay codec of stores mounted with `userxattr` (unprivileged): opaque
 * dirs get `user.overlay.opaque=y`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlayUserXattrCodec } from "./overlay.ts";
 * assert.equal(overlayUserXattrCodec.opaqueXattr, "user.overlay.opaque");
 * ```
 */
export const overlayUserXattrCodec: OverlayCodec = new OverlayCodec(
  USER_OPAQUE,
);
