/**
 * Internal: whether a path is the root of a mount, in one statx(2) call
 * (STATX_ATTR_MOUNT_ROOT, Linux 5.8+), instead of parsing all of
 * /proc/self/mountinfo. `get` and `put` ask this on every call; the full
 * mountinfo is read only to verify a new mount and to reconcile everything.
 *
 * @module
 */

import { AT, AT_FDCWD } from "../sys/fd_linux.ts";
import { cstr, errno, libc } from "../sys/libc_linux.ts";

const STATX_ATTR_MOUNT_ROOT = 0x2000;
const buf = new Uint8Array(256);
const view = new DataView(buf.buffer);

/**
 * True when `path` (not followed if a symlink) is the root of a mount;
 * false when it is not, or does not exist. `undefined` when the kernel does
 * not report the attribute (callers then read mountinfo).
 */
export function isMountPoint(path: string): boolean | undefined {
  // Mask 0: only the always-filled basic fields and attributes are needed.
  if (libc().statx(AT_FDCWD, cstr(path), AT.SYMLINK_NOFOLLOW, 0, buf) < 0) {
    errno();
    return false;
  }
  const mask = view.getUint32(56, true); // stx_attributes_mask (low word)
  if (!(mask & STATX_ATTR_MOUNT_ROOT)) return undefined;
  return (view.getUint32(8, true) & STATX_ATTR_MOUNT_ROOT) !== 0;
}
