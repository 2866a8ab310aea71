/**
 * Safe file access for the helper, which runs as root on paths inside stores
 * that unprivileged users own: every open goes through openat2 with
 * RESOLVE_NO_SYMLINKS (so a symlink swapped in anywhere along the path makes
 * the open fail with ELOOP instead of leading to /etc), and ownership and
 * modes are read from the opened fd (fstat), never from a second path lookup
 * (which a racing user could redirect: the classic TOCTOU of setuid mounters,
 * e.g. CVE-2011-1089/CVE-2011-1833 for mount.ecryptfs_private and fusermount).
 *
 * @module
 */

import { check, cstr, libc } from "../src/sys/libc_linux.ts";
import {
  AT,
  AT_FDCWD,
  close,
  O,
  openat2,
  read,
  RESOLVE,
} from "../src/sys/fd_linux.ts";

/** What the helper needs to know of an opened file. */
export interface FdStat {
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** st_mode (type and permission bits). */
  mode: number;
  /** Hard link count. */
  nlink: number;
  /** Mount id (statx STATX_MNT_ID), to tell a mount point from its parent. */
  mntId: bigint;
  /** Device of the filesystem, `major:minor` (as mountinfo prints it). */
  dev: string;
  /** Inode number. */
  ino: bigint;
}

const S_IFMT = 0o170000;
/** File type bits. */
export const S_IFDIR = 0o040000;
/** Regular file type. */
export const S_IFREG = 0o100000;

const STATX_BASIC_STATS = 0x7ff;
const STATX_MNT_ID = 0x1000;

/** fstat of an fd through statx(fd, "", AT_EMPTY_PATH). */
export function fstat(fd: number): FdStat {
  const buf = new Uint8Array(256);
  check(
    libc().statx(
      fd,
      cstr(""),
      AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW,
      STATX_BASIC_STATS | STATX_MNT_ID,
      buf,
    ),
    "statx",
  );
  const v = new DataView(buf.buffer);
  return {
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    nlink: v.getUint32(16, true),
    mntId: v.getBigUint64(144, true),
    dev: `${v.getUint32(136, true)}:${v.getUint32(140, true)}`,
    ino: v.getBigUint64(32, true),
  };
}

/** True when the stat is of a directory. */
export function isDir(s: FdStat): boolean {
  return (s.mode & S_IFMT) === S_IFDIR;
}

/** True when the stat is of a regular file. */
export function isRegular(s: FdStat): boolean {
  return (s.mode & S_IFMT) === S_IFREG;
}

/**
 * Opens an absolute path without following any symlink on the way
 * (openat2 RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS).
 *
 * @param path Absolute path.
 * @param flags open flags (O_CLOEXEC is added).
 * @returns The fd; the caller closes it.
 * @throws SysError (ELOOP when a component is a symlink).
 */
export function openNoSymlinks(path: string, flags: number): number {
  return openat2(
    AT_FDCWD,
    path,
    flags,
    RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS,
  );
}

/**
 * Opens `name` (one or more components, relative) below an open directory
 * without following symlinks and without leaving it (RESOLVE_BENEATH). With
 * `sameMount`, without crossing a mount point either (RESOLVE_NO_XDEV): a
 * bind mount in the store is never taken for a store directory.
 */
export function openBelow(
  dirfd: number,
  name: string,
  flags: number,
  sameMount = false,
): number {
  return openat2(
    dirfd,
    name,
    flags,
    RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS | RESOLVE.BENEATH |
      (sameMount ? RESOLVE.NO_XDEV : 0),
  );
}

/** Reads a whole (small) file from an fd, refusing more than `max` bytes. */
export function readAllFd(fd: number, max: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = read(fd, buf);
    if (n === 0) break;
    total += n;
    if (total > max) throw new Error(`file is larger than ${max} bytes`);
    chunks.push(buf.slice(0, n));
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** The directory flags used for checks: O_PATH is enough for fstat and *at calls. */
export const DIR_PATH_FLAGS: number = O.PATH | O.DIRECTORY;

export { close, O };
