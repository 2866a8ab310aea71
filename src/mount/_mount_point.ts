/**
 * Internal: whether a path is the root of a mount, in one statx(2) call
 * (STATX_ATTR_MOUNT_ROOT, Linux 5.8+), instead of parsing all of
 * /proc/self/mountinfo. `get` and `put` ask this on every call; the full
 * mountinfo is read only to reconcile everything (open, remove, commit).
 *
 * @module
 */

import { AT, AT_FDCWD } from "../sys/fd_linux.ts";
import { Errno } from "../sys/errno.ts";
import { cstr, errno, libc } from "../sys/libc_linux.ts";

const STATX_ATTR_MOUNT_ROOT = 0x2000;
const buf = new Uint8Array(256);
const view = new DataView(buf.buffer);

/** What is at a view's mount point. */
export type MountPointState =
  | "mount" // the root of a mount
  | "dir" // there, not a mount root
  | "absent" // nothing at that path
  | "unknown"; // the kernel does not say (read mountinfo)

/** What `path` (not followed if a symlink) is: a mount root, something else, or nothing. */
export function mountPointState(path: string): MountPointState {
  // Mask 0: only the always-filled basic fields and attributes are needed.
  if (libc().statx(AT_FDCWD, cstr(path), AT.SYMLINK_NOFOLLOW, 0, buf) < 0) {
    return errno() === Errno.ENOENT ? "absent" : "dir";
  }
  const mask = view.getUint32(56, true); // stx_attributes_mask (low word)
  if (!(mask & STATX_ATTR_MOUNT_ROOT)) return "unknown";
  return (view.getUint32(8, true) & STATX_ATTR_MOUNT_ROOT) !== 0
    ? "mount"
    : "dir";
}
