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

import { fstatxWithMount } from "../src/sys/fs_walk_linux.ts";
import {
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

/** fstat of an fd (statx with the mount id), in the shape the helper checks. */
export function fstat(fd: number): FdStat {
  const s = fstatxWithMount(fd);
  return {
    uid: s.uid,
    gid: s.gid,
    mode: s.mode,
    nlink: s.nlink,
    mntId: s.mntId,
    // Stat.dev is major * 2^32 + minor; mountinfo prints "major:minor".
    dev: `${Math.floor(s.dev / 2 ** 32)}:${s.dev % 2 ** 32}`,
    ino: s.ino,
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
