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

import { check, cstr, errno, libc, SysError } from "../src/sys/libc_linux.ts";
import { close } from "../src/sys/fd_linux.ts";

const FSOPEN_CLOEXEC = 1;
const FSMOUNT_CLOEXEC = 1;
const FSCONFIG_SET_FD = 5;
const FSCONFIG_CMD_CREATE = 6;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH = 0x40;
/** MOUNT_ATTR_* flags. */
export const ATTR = { RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4 } as const;

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
}

const FSCONFIG_SET_STRING = 1;

function kernelMessages(fc: number): string {
  const out: string[] = [];
  const buf = new Uint8Array(1024);
  for (let i = 0; i < 8; i++) {
    const n = Number(libc().read(fc, buf, BigInt(buf.byteLength)));
    if (n <= 0) break;
    out.push(new TextDecoder().decode(buf.subarray(0, n)).trim());
  }
  return out.join("; ");
}

/**
 * Mounts an overlay from fds; nosuid and nodev are always set.
 *
 * @throws {SysError} naming the failing step (kernel messages appended).
 */
export function mountOverlayFds(o: FdOverlay): void {
  const c = libc();
  const fc = check(
    c.fsopen(cstr("overlay"), FSOPEN_CLOEXEC),
    "fsopen",
    "overlay",
  );
  try {
    const set = (key: string, fd: number) => {
      if (c.fsconfig(fc, FSCONFIG_SET_FD, cstr(key), null, fd) < 0) {
        const e = new SysError(`fsconfig ${key}`, errno());
        const m = kernelMessages(fc);
        if (m) e.message += ` (${m})`;
        throw e;
      }
    };
    for (const fd of o.lower) set("lowerdir+", fd);
    if (o.upper !== undefined) set("upperdir", o.upper);
    if (o.work !== undefined) set("workdir", o.work);
    if (o.mountLabel !== undefined) {
      // SELinux contexts are user:role:type:level; refuse anything else so a
      // label can never smuggle another option.
      if (!/^[A-Za-z0-9_.:,-]{1,255}$/.test(o.mountLabel)) {
        throw new SysError("fsconfig context", 22);
      }
      if (
        c.fsconfig(
          fc,
          FSCONFIG_SET_STRING,
          cstr("context"),
          cstr(o.mountLabel),
          0,
        ) < 0
      ) {
        throw new SysError("fsconfig context", errno());
      }
    }
    if (c.fsconfig(fc, FSCONFIG_CMD_CREATE, null, null, 0) < 0) {
      const e = new SysError("fsconfig create", errno());
      const m = kernelMessages(fc);
      if (m) e.message += ` (${m})`;
      throw e;
    }
    const attrs = ATTR.NOSUID | ATTR.NODEV | (o.readOnly ? ATTR.RDONLY : 0);
    const mfd = check(c.fsmount(fc, FSMOUNT_CLOEXEC, attrs), "fsmount");
    try {
      check(
        c.move_mount(
          mfd,
          cstr(""),
          o.target,
          cstr(""),
          MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        ),
        "move_mount",
      );
    } finally {
      close(mfd);
    }
  } finally {
    close(fc);
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
