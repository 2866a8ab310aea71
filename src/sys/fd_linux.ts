/**
 * File-descriptor basics shared by the store and the archive code: open
 * (openat, openat2 with RESOLVE_* flags), close, read, write, fsync.
 *
 * @module
 */

import { check, cstr, errno, libc, SysError } from "./libc_linux.ts";
import { Errno } from "./errno.ts";

/** open(2) flags (x86_64/aarch64 generic values). */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

/** openat2(2) `resolve` flags. */
export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
  IN_ROOT: 0x10,
  CACHED: 0x20,
} as const;

/** The `dirfd` value meaning "the current directory". */
export const AT_FDCWD = -100;

/** `*at` flags. */
export const AT = {
  SYMLINK_NOFOLLOW: 0x100,
  REMOVEDIR: 0x200,
  SYMLINK_FOLLOW: 0x400,
  EMPTY_PATH: 0x1000,
} as const;

/** openat(2) with a path string; throws SysError. */
export function openat(
  dirfd: number,
  path: string,
  flags: number,
  mode = 0,
): number {
  return check(
    libc().openat(dirfd, cstr(path), flags | O.CLOEXEC, mode),
    "openat",
    path,
  );
}

const how = new Uint8Array(24);
const howView = new DataView(how.buffer);

/**
 * openat2(2): opens `path` below `dirfd` under `resolve` rules (e.g.
 * RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS), so a symlink can never lead out.
 * `path` may be a string or raw NUL-terminated bytes.
 */
export function openat2(
  dirfd: number,
  path: string | Uint8Array<ArrayBuffer>,
  flags: number,
  resolve: number,
  mode = 0,
): number {
  howView.setBigUint64(0, BigInt(flags | O.CLOEXEC), true);
  howView.setBigUint64(8, BigInt(mode), true);
  howView.setBigUint64(16, BigInt(resolve), true);
  const p = typeof path === "string" ? cstr(path) : path;
  return check(
    libc().openat2(dirfd, p, how, 24n),
    "openat2",
    typeof path === "string" ? path : undefined,
  );
}

/** close(2), ignoring errors (there is nothing useful to do about them). */
export function close(fd: number): void {
  libc().close(fd);
}

/** read(2) into `buf`; returns bytes read (0 at end). */
export function read(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  len = buf.byteLength,
): number {
  return check(libc().read(fd, buf, len), "read");
}

/** Writes all of `buf` to `fd`, looping over short writes. */
export function writeAll(fd: number, buf: Uint8Array<ArrayBuffer>): void {
  let off = 0;
  const c = libc();
  while (off < buf.byteLength) {
    const chunk = off === 0 ? buf : buf.subarray(off);
    off += check(c.write(fd, chunk, chunk.byteLength), "write");
  }
}

/** fsync(2). */
export function fsync(fd: number): void {
  check(libc().fsync(fd), "fsync");
}

/** flock(2) operations. */
export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

/** flock(2) on an fd opened for reading or writing (not O_PATH); blocks unless LOCK.NB. */
export function flock(fd: number, op: number): void {
  check(libc().flock(fd, op), "flock");
}

/**
 * copy_file_range(2): up to `len` bytes from `inFd` to `outFd`, each at (and
 * moving) its own offset, copied in the kernel; short copies are continued.
 * Returns the bytes copied: `len`, or fewer when `inFd` ended or the kernel
 * cannot copy between these two files (EXDEV across file systems before
 * some kernels, EINVAL, ENOSYS, EOPNOTSUPP, a special file). The caller
 * moves the rest through a buffer: both offsets are where the copy stopped.
 *
 * @throws {SysError} Any other failure (ENOSPC, EIO, ...).
 *
 * @example Copy a file's bytes, finishing through a buffer if the kernel stops
 * ```ts
 * import assert from "node:assert/strict";
 * import { AT_FDCWD, close, copyFileRange, O, openat, read, writeAll } from "./fd_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a`, "hello, layers");
 * const src = openat(AT_FDCWD, `${dir}/a`, O.RDONLY);
 * const dst = openat(AT_FDCWD, `${dir}/b`, O.WRONLY | O.CREAT, 0o644);
 * const n = copyFileRange(src, dst, 13);
 * const rest = new Uint8Array(13 - n);
 * if (n < 13) writeAll(dst, rest.subarray(0, read(src, rest)));
 * close(src);
 * close(dst);
 * assert.equal(await Deno.readTextFile(`${dir}/b`), "hello, layers");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function copyFileRange(
  inFd: number,
  outFd: number,
  len: number,
): number {
  const c = libc();
  let copied = 0;
  while (copied < len) {
    const n = c.copy_file_range(inFd, null, outFd, null, len - copied, 0);
    if (n > 0) {
      copied += n;
      continue;
    }
    if (n === 0) break; // the input ended
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (
      e !== Errno.EXDEV && e !== Errno.EINVAL && e !== Errno.ENOSYS &&
      e !== Errno.EOPNOTSUPP && e !== Errno.EBADF
    ) {
      throw new SysError("copy_file_range", e);
    }
    break;
  }
  return copied;
}

/**
 * The fd of an open `Deno.FsFile` opened for writing (Deno keeps its fd to
 * itself): the one fd in /proc/self/fd on the same inode at the same offset
 * with write access and without O_APPEND, or null when there is not exactly
 * one (then the caller writes through the FsFile). Writes through the fd
 * move the FsFile's offset too: they share one open file description.
 *
 * @example
 * ```ts ignore
 * import { writableFdOf } from "./fd_linux.ts";
 * using f = await Deno.create("/tmp/x");
 * console.log(writableFdOf(f)); // e.g. 5
 * ```
 */
export function writableFdOf(file: Deno.FsFile): number | null {
  let ino: number | null;
  let pos: number;
  try {
    ino = file.statSync().ino;
    pos = file.seekSync(0, Deno.SeekMode.Current);
  } catch {
    return null;
  }
  if (ino === null) return null;
  let found: number | null = null;
  try {
    for (const e of Deno.readDirSync("/proc/self/fd")) {
      let info: string;
      try {
        info = Deno.readTextFileSync(`/proc/self/fdinfo/${e.name}`);
      } catch {
        continue; // closed meanwhile (the readdir's own fd)
      }
      const field = (k: string) =>
        new RegExp(`^${k}:\\s*(\\S+)`, "m").exec(info)?.[1];
      const flags = parseInt(field("flags") ?? "0", 8);
      if (
        Number(field("ino")) !== ino || Number(field("pos")) !== pos ||
        (flags & 3) === O.RDONLY || (flags & 0o2000) !== 0 // O_APPEND
      ) continue;
      if (found !== null) return null; // two candidates: cannot tell which
      found = Number(e.name);
    }
  } catch {
    return null;
  }
  return found;
}
