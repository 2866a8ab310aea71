/**
 * The helper's two syscall sequences, on file descriptors only:
 *
 * - mount: fsopen("overlay"), fsconfig(FSCONFIG_SET_FD, "lowerdir+"/"upperdir"/
 *   "workdir", fd) (overlayfs takes layers as fds since Linux 6.13), fsmount with
 *   MOUNT_ATTR_NOSUID|NODEV forced, move_mount onto the already-opened target fd
 *   (MOVE_MOUNT_T_EMPTY_PATH).
 * - unmount: umount2("/proc/self/fd/N") of an fd opened on the mount's root.
 *
 * Every directory was opened and checked beforehand with openat2
 * RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH; passing the fds (not the paths again)
 * means a user who renames or symlinks store dirs between our checks and the
 * mount cannot redirect it (the race behind fusermount's CVE-2010-0789 and
 * mount.cifs's CVE-2010-0787).
 *
 * @module
 */

import { check, cstr, libc, SysError } from "../src/sys/libc_linux.ts";
import { FsContext, MOUNT_ATTR } from "../src/sys/mount_linux.ts";

/** An overlay mount described by open directory fds. */
export interface FdOverlay {
  /** Lower layer fds, nearest first. */
  lower: number[];
  /** Upper dir fd (absent for a read-only view of lowers only). */
  upper?: number;
  /** Work dir fd (with upper). */
  work?: number;
  /** Mount point fd. */
  target: number;
  /** Read-only view. */
  readOnly: boolean;
  /** SELinux context for every file of the view (`context=`). */
  mountLabel?: string;
  /** Pass `userxattr` (the store keeps whiteout state in `user.overlay.*`). */
  userXattr?: boolean;
}

/**
 * Mounts an overlay from fds; nosuid and nodev are always set.
 *
 * @throws {SysError} naming the failing step (kernel messages appended).
 */
export function mountOverlayFds(o: FdOverlay): void {
  // SELinux contexts are user:role:type:level; refuse anything else so a
  // label can never smuggle another option.
  if (
    o.mountLabel !== undefined &&
    !/^[A-Za-z0-9_.:,-]{1,255}$/.test(o.mountLabel)
  ) {
    throw new SysError("fsconfig context", 22);
  }
  const fc = FsContext.open("overlay");
  try {
    for (const fd of o.lower) fc.setFd("lowerdir+", fd);
    if (o.upper !== undefined) fc.setFd("upperdir", o.upper);
    if (o.work !== undefined) fc.setFd("workdir", o.work);
    if (o.mountLabel !== undefined) fc.setString("context", o.mountLabel);
    if (o.userXattr) fc.setFlag("userxattr");
    // Layers come from an unprivileged user: never follow redirects or trust
    // metacopy-only files they may have crafted (kernel overlayfs.rst,
    // "Permission model" and "Metadata only copy up": unsafe with untrusted layers).
    fc.setString("redirect_dir", "nofollow");
    fc.setString("metacopy", "off");
    fc.mountAtFd(
      o.target,
      MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV |
        (o.readOnly ? MOUNT_ATTR.RDONLY : 0),
    );
  } catch (e) {
    const msgs = (e as { kernelMessages?: string[] }).kernelMessages;
    if (e instanceof SysError && msgs?.length) {
      e.message += ` (${msgs.map((m) => m.trim()).join("; ")})`;
    }
    throw e;
  } finally {
    fc.close();
  }
}

/**
 * Unmounts the mount whose root `fd` is open on, through its /proc/self/fd
 * magic link: the kernel resolves it to exactly that mount, whatever the
 * path looks like by now. MNT_DETACH because our own fd keeps the mount busy
 * (and so does any process still inside the view, as the store's own
 * unmount does).
 *
 * @throws {SysError}
 */
export function umountFd(fd: number): void {
  const MNT_DETACH = 2;
  check(libc().umount2(cstr(`/proc/self/fd/${fd}`), MNT_DETACH), "umount2");
}
