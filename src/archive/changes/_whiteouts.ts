/**
 * Internal: how each backend marks deletions on disk, and which xattrs belong
 * to the backend rather than to the layer's content. Shared by the exporter
 * and the change calculator so both agree on what a layer says.
 *
 * - overlay: a deleted name is a 0/0 character device; a directory that hides
 *   everything below it has `trusted.overlay.opaque=y` (`user.overlay.opaque=y`
 *   when mounted with `userxattr`). See the kernel's
 *   Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories".
 * - aufs: a deleted name is an empty file `.wh.<name>`; an opaque directory
 *   holds `.wh..wh..opq`; aufs keeps its own bookkeeping in `/.wh..wh.plnk`
 *   (pseudo-links) and `/.wh..wh.aufs` (the whiteout base) at the layer root.
 * - vfs: deletions are real; there is nothing to convert.
 *
 * @module
 */

import type { Stat } from "../../sys/fs_walk_linux.ts";

/** OCI whiteout prefix. */
export const WH_PREFIX = ".wh.";
/** OCI opaque-directory marker (also aufs' on-disk marker). */
export const WH_OPAQUE = ".wh..wh..opq";
/** Prefix of aufs metadata entries at a layer's root (never exported). */
export const WH_META_PREFIX = ".wh..wh.";

/** True for an overlay whiteout: a character device numbered 0/0. */
export function isOverlayWhiteout(st: Stat): boolean {
  return st.kind === "char" && st.rdevMajor === 0 && st.rdevMinor === 0;
}

const Y = 0x79; // "y"

/**
 * True when overlay xattrs mark a directory opaque. Only the value "y" counts:
 * newer kernels write "x" on directories that merely contain xwhiteouts, which
 * does not hide the lower layers.
 */
export function isOverlayOpaque(xattrs: Map<string, Uint8Array>): boolean {
  for (const k of ["trusted.overlay.opaque", "user.overlay.opaque"]) {
    const v = xattrs.get(k);
    if (v && v.length === 1 && v[0] === Y) return true;
  }
  return false;
}

/**
 * True for the overlay xattrs that change what a file means: a layer using
 * `redirect_dir` or `metacopy` cannot be exported file by file (a metacopy
 * file has no data in the upper dir; a redirected dir names its origin
 * elsewhere). layerfs mounts with both off; finding one means the layer came
 * from another tool.
 */
export function overlayFeatureXattr(
  xattrs: Map<string, Uint8Array>,
): string | null {
  for (const k of xattrs.keys()) {
    if (
      k === "trusted.overlay.redirect" || k === "user.overlay.redirect" ||
      k === "trusted.overlay.metacopy" || k === "user.overlay.metacopy"
    ) return k;
  }
  return null;
}

/**
 * Which xattrs are part of a layer's content (exported, and compared by
 * Changes). Left out:
 * - `trusted.overlay.*` / `user.overlay.*`: overlayfs' own bookkeeping
 *   (opaque, origin, impure, redirect...), meaningless on another machine;
 * - `security.selinux`: a host-assigned label, not content. The runtime
 *   relabels a container's rootfs; carrying a label across machines would
 *   write a label the other host's policy may not know (moby and containerd
 *   do not export it either).
 */
export function isContentXattr(name: string): boolean {
  if (name.startsWith("trusted.overlay.")) return false;
  if (name.startsWith("user.overlay.")) return false;
  if (name === "security.selinux") return false;
  return true;
}

/** The content xattrs of a map (see {@link isContentXattr}), in name order. */
export function contentXattrs(
  xattrs: Map<string, Uint8Array>,
): Map<string, Uint8Array> {
  if (xattrs.size === 0) return xattrs;
  const keys = [...xattrs.keys()].filter(isContentXattr).sort();
  const out = new Map<string, Uint8Array>();
  for (const k of keys) out.set(k, xattrs.get(k)!);
  return out;
}

/** True when two xattr maps hold the same content xattrs with the same bytes. */
export function sameContentXattrs(
  a: Map<string, Uint8Array>,
  b: Map<string, Uint8Array>,
): boolean {
  const ca = contentXattrs(a);
  const cb = contentXattrs(b);
  if (ca.size !== cb.size) return false;
  for (const [k, v] of ca) {
    const w = cb.get(k);
    if (!w || w.length !== v.length) return false;
    for (let i = 0; i < v.length; i++) if (v[i] !== w[i]) return false;
  }
  return true;
}

/**
 * Compares two names by their UTF-8 bytes (what `tar --sort=name`, Go and
 * moby use). JS `<` compares UTF-16 code units, which orders astral
 * characters (surrogates, 0xD800-0xDFFF) before U+E000-U+FFFF; shifting the
 * two ranges restores code point order, which equals UTF-8 byte order.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800) x = x < 0xe000 ? x + 0x2000 : x - 0x800;
      if (y >= 0xd800) y = y < 0xe000 ? y + 0x2000 : y - 0x800;
      return x - y;
    }
  }
  return a.length - b.length;
}
