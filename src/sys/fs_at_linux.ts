/**
 * Small typed wrappers over the `*at` system calls the archive code uses to
 * create, change and remove files strictly below a directory fd, never
 * following a symlink in the last component. Every name argument is a single
 * path component or a path already known to stay inside the directory; callers
 * resolve parents with `openat2(RESOLVE_IN_ROOT)` first.
 *
 * All functions are synchronous (one FFI call each, no promise per call: the
 * extraction hot loop makes hundreds of thousands of them) and throw
 * {@link SysError} on failure.
 *
 * @module
 */

import { check, cstr, libc, SysError } from "./libc_linux.ts";
import { errno } from "./libc_linux.ts";
import { AT, O, openat } from "./fd_linux.ts";
import { Errno } from "./errno.ts";
import { DT, fstatx, openDirAt, readDirFd } from "./fs_walk_linux.ts";

/** File type bits of `st_mode`. */
export const S = {
  IFMT: 0o170000,
  IFSOCK: 0o140000,
  IFLNK: 0o120000,
  IFREG: 0o100000,
  IFBLK: 0o060000,
  IFDIR: 0o040000,
  IFCHR: 0o020000,
  IFIFO: 0o010000,
} as const;

/** `renameat2` flags. */
export const RENAME = {
  NOREPLACE: 1,
  EXCHANGE: 2,
  WHITEOUT: 4,
} as const;

/** `utimensat`/`futimens` special nanosecond value: leave this time unchanged. */
export const UTIME_OMIT = (1 << 30) - 2;

type Name = string | Uint8Array<ArrayBuffer>;

function nameBuf(name: Name): Uint8Array<ArrayBuffer> {
  if (typeof name === "string") return cstr(name);
  // Raw bytes: make sure the buffer is NUL-terminated.
  if (name.length > 0 && name[name.length - 1] === 0) return name;
  const out = new Uint8Array(name.length + 1);
  out.set(name);
  return out;
}

/**
 * A single directory entry name for the recursive removers: refuses "", ".",
 * "..", "/" and NUL before the end, since unlinkat("..") fails with EISDIR
 * and the fallback would then empty the *parent* of `dirfd`.
 */
function componentBuf(name: Name): Uint8Array<ArrayBuffer> {
  const n = nameBuf(name);
  const len = n.length - 1; // without the terminating NUL
  let bad = len === 0 ||
    (n[0] === 0x2e && (len === 1 || (len === 2 && n[1] === 0x2e)));
  for (let i = 0; i < len && !bad; i++) bad = n[i] === 0 || n[i] === 0x2f;
  if (bad) throw new SysError("remove", Errno.EINVAL, label(name));
  return n;
}

function label(name: Name): string {
  return typeof name === "string"
    ? name
    : new TextDecoder().decode(name).replace(/\0$/, "");
}

/**
 * Linux `makedev()`: the `dev_t` of a device number pair (glibc's encoding:
 * 12 bits of major and 20 of minor in the low word, the rest above).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makedev } from "./fs_at_linux.ts";
 * assert.equal(makedev(1, 3), 259n); // /dev/null
 * assert.equal(makedev(1, 3), BigInt(Deno.statSync("/dev/null").rdev!));
 * ```
 */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) |
    ((mi & ~0xffn) << 12n);
}

/**
 * mkdirat(2): creates directory `name` below `dirfd` (mode subject to the umask).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdirat } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * mkdirat(dirfd, "etc", 0o755);
 * assert.ok(Deno.statSync(`${dir}/etc`).isDirectory);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function mkdirat(dirfd: number, name: Name, mode: number): void {
  check(libc().mkdirat(dirfd, nameBuf(name), mode), "mkdirat", name);
}

/**
 * mknodat(2): creates a device node, FIFO or (0/0 char device) overlay whiteout.
 * `mode` includes the file type bits (`S.IFCHR | 0o600`).
 *
 * @example A device node (needs root; a FIFO, `S.IFIFO` with device 0n, does not)
 * ```ts ignore
 * import { makedev, mknodat, S } from "./fs_at_linux.ts";
 * mknodat(dirfd, "null", S.IFCHR | 0o666, makedev(1, 3));
 * ```
 */
export function mknodat(
  dirfd: number,
  name: Name,
  mode: number,
  dev: bigint = 0n,
): void {
  check(
    libc().mknodat(dirfd, nameBuf(name), mode, dev),
    "mknodat",
    name,
  );
}

/**
 * symlinkat(2): creates symlink `name` below `dirfd` with contents `target`
 * (stored verbatim; never resolved here).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { symlinkat } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * symlinkat("/usr/bin/busybox", dirfd, "sh");
 * assert.equal(Deno.readLinkSync(`${dir}/sh`), "/usr/bin/busybox");
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function symlinkat(target: Name, dirfd: number, name: Name): void {
  check(
    libc().symlinkat(nameBuf(target), dirfd, nameBuf(name)),
    "symlinkat",
    name,
  );
}

/**
 * linkat(2) with flags 0: a hard link to `oldName` itself (a symlink is linked,
 * not followed, unless `AT.SYMLINK_FOLLOW` is passed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linkat } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.writeTextFileSync(`${dir}/busybox`, "");
 * linkat(dirfd, "busybox", dirfd, "sh");
 * assert.equal(Deno.statSync(`${dir}/sh`).nlink, 2);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function linkat(
  oldDirfd: number,
  oldName: Name,
  newDirfd: number,
  newName: Name,
  flags = 0,
): void {
  check(
    libc().linkat(
      oldDirfd,
      nameBuf(oldName),
      newDirfd,
      nameBuf(newName),
      flags,
    ),
    "linkat",
    label(newName),
  );
}

/**
 * unlinkat(2): removes a non-directory (`flags` 0) or an empty directory
 * (`AT.REMOVEDIR`). Never follows a symlink: the link itself goes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unlinkat } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.writeTextFileSync(`${dir}/stale.pid`, "1");
 * unlinkat(dirfd, "stale.pid");
 * assert.throws(() => Deno.statSync(`${dir}/stale.pid`), Deno.errors.NotFound);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function unlinkat(dirfd: number, name: Name, flags = 0): void {
  check(libc().unlinkat(dirfd, nameBuf(name), flags), "unlinkat", name);
}

/**
 * renameat2(2) with `RENAME.*` flags.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RENAME, renameat2 } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.writeTextFileSync(`${dir}/tmp.json`, "{}");
 * renameat2(dirfd, "tmp.json", dirfd, "layer.json", 0);
 * assert.equal(Deno.readTextFileSync(`${dir}/layer.json`), "{}");
 * Deno.writeTextFileSync(`${dir}/new`, "");
 * assert.throws(() => renameat2(dirfd, "new", dirfd, "layer.json", RENAME.NOREPLACE)); // EEXIST
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function renameat2(
  oldDirfd: number,
  oldName: Name,
  newDirfd: number,
  newName: Name,
  flags = 0,
): void {
  check(
    libc().renameat2(
      oldDirfd,
      nameBuf(oldName),
      newDirfd,
      nameBuf(newName),
      flags,
    ),
    "renameat2",
    label(newName),
  );
}

/**
 * fchownat(2); pass `AT.SYMLINK_NOFOLLOW` to change a symlink itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AT, close } from "./fd_linux.ts";
 * import { fchownat } from "./fs_at_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.symlinkSync("busybox", `${dir}/sh`);
 * fchownat(dirfd, "sh", Deno.uid()!, Deno.gid()!, AT.SYMLINK_NOFOLLOW); // other owners need root
 * assert.equal(Deno.lstatSync(`${dir}/sh`).uid, Deno.uid());
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fchownat(
  dirfd: number,
  name: Name,
  uid: number,
  gid: number,
  flags: number,
): void {
  check(
    libc().fchownat(dirfd, nameBuf(name), uid >>> 0, gid >>> 0, flags),
    "fchownat",
    name,
  );
}

/**
 * fchmod(2) on an open (not `O_PATH`) fd; sets setuid/setgid/sticky too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fchmod } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openFileAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "");
 * const fd = openFileAt(-100, `${dir}/f`);
 * fchmod(fd, 0o4755);
 * assert.equal(Deno.statSync(`${dir}/f`).mode! & 0o7777, 0o4755);
 * close(fd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fchmod(fd: number, mode: number): void {
  check(libc().fchmod(fd, mode & 0o7777), "fchmod");
}

/**
 * fchown(2) on an open fd. Note the kernel clears setuid/setgid of a regular
 * file on chown, so call {@link fchmod} afterwards.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fchown } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openFileAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "");
 * const fd = openFileAt(-100, `${dir}/f`);
 * fchown(fd, Deno.uid()!, Deno.gid()!); // other owners need root
 * assert.equal(Deno.statSync(`${dir}/f`).gid, Deno.gid());
 * close(fd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fchown(fd: number, uid: number, gid: number): void {
  check(libc().fchown(fd, uid >>> 0, gid >>> 0), "fchown");
}

/**
 * fchmodat2(2) with `AT_SYMLINK_NOFOLLOW` (Linux 6.6+): changes the mode of
 * `name` itself, never a symlink's target (the kernel refuses symlinks with
 * EOPNOTSUPP). Used for FIFOs and device nodes, which cannot be opened for
 * fchmod without side effects. On kernels without it (ENOSYS) falls back to
 * fchmodat(2) after checking with statx that `name` is not a symlink.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fchmodatNoFollow, mknodat, S } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * mknodat(dirfd, "fifo", S.IFIFO | 0o600, 0n);
 * fchmodatNoFollow(dirfd, "fifo", 0o620);
 * assert.equal(Deno.statSync(`${dir}/fifo`).mode! & 0o777, 0o620);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fchmodatNoFollow(
  dirfd: number,
  name: Name,
  mode: number,
): void {
  const n = nameBuf(name);
  const r = libc().fchmodat2(dirfd, n, mode & 0o7777, AT.SYMLINK_NOFOLLOW);
  if (r >= 0) return;
  const e = errno();
  if (e !== Errno.ENOSYS) throw new SysError("fchmodat2", e, label(name));
  // Old kernel: glibc's fchmodat(AT_SYMLINK_NOFOLLOW) emulation needs /proc;
  // we check the type ourselves, then open O_PATH|O_NOFOLLOW and chmod the
  // inode through its /proc/self/fd magic link (which names that inode, not a
  // symlink target), so a swap after the check cannot redirect the chmod.
  const fd = openat(dirfd, label(name), O.PATH | O.NOFOLLOW);
  try {
    if (fstatx(fd).kind === "symlink") {
      throw new SysError("fchmodat", Errno.EOPNOTSUPP, label(name));
    }
    check(
      libc().fchmodat(-100, cstr(`/proc/self/fd/${fd}`), mode & 0o7777),
      "fchmodat",
      name,
    );
  } finally {
    libc().close(fd);
  }
}

// struct timespec[2] as 32-bit halves (little endian): no BigInt per call in
// the extraction hot loop. `x >>> 0` is x mod 2^32 for any safe integer, and
// floor(x / 2^32) is the high word, negative times included.
const times = new Uint32Array(8);
const timesBuf = new Uint8Array(times.buffer);
const TWO32 = 4294967296;

function setTimes(
  atimeSec: number,
  atimeNsec: number,
  mtimeSec: number,
  mtimeNsec: number,
): void {
  const a = Math.trunc(atimeSec);
  const m = Math.trunc(mtimeSec);
  times[0] = a >>> 0;
  times[1] = Math.floor(a / TWO32) >>> 0;
  times[2] = atimeNsec >>> 0;
  times[3] = 0;
  times[4] = m >>> 0;
  times[5] = Math.floor(m / TWO32) >>> 0;
  times[6] = mtimeNsec >>> 0;
  times[7] = 0;
}

/**
 * futimens(2): sets access and modification times with nanoseconds on an
 * open fd. Pass `UTIME_OMIT` as a nanosecond value to leave that time alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { futimens } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openFileAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "");
 * const fd = openFileAt(-100, `${dir}/f`);
 * futimens(fd, 1700000000, 0, 1700000000, 123456789);
 * assert.equal(Deno.statSync(`${dir}/f`).mtime?.getTime(), 1700000000123);
 * close(fd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function futimens(
  fd: number,
  atimeSec: number,
  atimeNsec: number,
  mtimeSec: number,
  mtimeNsec: number,
): void {
  setTimes(atimeSec, atimeNsec, mtimeSec, mtimeNsec);
  check(libc().futimens(fd, timesBuf), "futimens");
}

/**
 * utimensat(2) on `name` below `dirfd`; pass `AT.SYMLINK_NOFOLLOW` to time a
 * symlink itself rather than its target.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AT, close } from "./fd_linux.ts";
 * import { utimensat } from "./fs_at_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.symlinkSync("busybox", `${dir}/sh`);
 * utimensat(dirfd, "sh", 1700000000, 0, 1700000000, 0, AT.SYMLINK_NOFOLLOW);
 * assert.equal(Deno.lstatSync(`${dir}/sh`).mtime?.getTime(), 1700000000000);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function utimensat(
  dirfd: number,
  name: Name,
  atimeSec: number,
  atimeNsec: number,
  mtimeSec: number,
  mtimeNsec: number,
  flags: number,
): void {
  setTimes(atimeSec, atimeNsec, mtimeSec, mtimeNsec);
  check(
    libc().utimensat(dirfd, nameBuf(name), timesBuf, flags),
    "utimensat",
    name,
  );
}

/**
 * fsetxattr(2): sets one extended attribute (binary value) on an open fd
 * (regular files and directories; not `O_PATH` fds).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fgetxattr, fsetxattr } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * fsetxattr(dirfd, "user.layerfs.note", new TextEncoder().encode("y")); // trusted.* needs root
 * assert.deepEqual(fgetxattr(dirfd, "user.layerfs.note"), new TextEncoder().encode("y"));
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fsetxattr(
  fd: number,
  name: string,
  value: Uint8Array,
  flags = 0,
): void {
  check(
    libc().fsetxattr(
      fd,
      cstr(name),
      value as Uint8Array<ArrayBuffer>,
      value.byteLength,
      flags,
    ),
    "fsetxattr",
    name,
  );
}

/**
 * Sets an extended attribute on `name` below `dirfd` without following a
 * symlink in `name`: lsetxattr(2) on `/proc/self/fd/<dirfd>/<name>`.
 *
 * Why this is safe: `/proc/self/fd/<dirfd>` is a magic link to the directory
 * `dirfd` already refers to (resolved earlier under RESOLVE_IN_ROOT, so inside
 * the root); the kernel jumps to that exact dentry instead of re-walking a path
 * an attacker could swap. `name` is one plain component and lsetxattr does not
 * follow it, so a symlink gets the attribute itself. Symlinks, FIFOs and device
 * nodes need this: fsetxattr needs an fd opened for I/O, which a symlink cannot
 * give and opening a FIFO or device would block or have side effects. (Linux
 * 6.13's setxattrat(2) with AT_SYMLINK_NOFOLLOW would do it without /proc.)
 * Requires /proc to be mounted.
 *
 * @example On a symlink (needs root: only trusted.* xattrs may be set on symlinks)
 * ```ts ignore
 * import { lsetxattrAt } from "./fs_at_linux.ts";
 * lsetxattrAt(dirfd, "sh", "trusted.x", new Uint8Array([1, 2]));
 * ```
 */
export function lsetxattrAt(
  dirfd: number,
  name: string,
  attr: string,
  value: Uint8Array,
  flags = 0,
): void {
  if (name.includes("/") || name === "." || name === ".." || name === "") {
    throw new SysError("lsetxattr", Errno.EINVAL, name);
  }
  check(
    libc().lsetxattr(
      cstr(`/proc/self/fd/${dirfd}/${name}`),
      cstr(attr),
      value as Uint8Array<ArrayBuffer>,
      value.byteLength,
      flags,
    ),
    "lsetxattr",
    `${name} ${attr}`,
  );
}

/**
 * Reads one extended attribute of an open fd; `null` when it is not set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fgetxattr } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * assert.equal(fgetxattr(dirfd, "user.layerfs.absent"), null);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fgetxattr(fd: number, name: string): Uint8Array | null {
  const n = cstr(name);
  let buf = new Uint8Array(256);
  for (;;) {
    const r = libc().fgetxattr(fd, n, buf, buf.length);
    if (r >= 0) return buf.slice(0, r);
    const e = errno();
    if (e === Errno.ENODATA) return null;
    if (e !== Errno.ERANGE || buf.length >= 1 << 20) {
      throw new SysError("fgetxattr", e, name);
    }
    buf = new Uint8Array(buf.length * 16);
  }
}

/**
 * Lists the names in an open directory fd (not `O_PATH`), raw NUL-terminated
 * bytes without `.`/`..`, via fs_walk_linux's getdents64 reader (one dirent parser for the
 * code base). Names stay bytes: directory entries need not be UTF-8, and they
 * are passed straight back to the `*at` calls.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readdirFd } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.mkdirSync(`${dir}/etc`);
 * const names = readdirFd(dirfd).map((e) => [new TextDecoder().decode(e.name), e.isDir]);
 * assert.deepEqual(names, [["etc\0", true]]);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readdirFd(
  fd: number,
): { name: Uint8Array<ArrayBuffer>; isDir: boolean | undefined }[] {
  return readDirFd(fd).map((e) => ({
    name: e.cname,
    isDir: e.type === DT.UNKNOWN ? undefined : e.type === DT.DIR,
  }));
}

/**
 * Removes `name` below `dirfd` and, when it is a directory, everything below
 * it, without ever following a symlink: each level is opened with
 * `O_DIRECTORY|O_NOFOLLOW` relative to its parent's fd and emptied with
 * unlinkat. Returns false when `name` did not exist. `name` is one entry
 * name (no "/", not "." or "..").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeAllAt } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.mkdirSync(`${dir}/cache/a/b`, { recursive: true });
 * assert.equal(removeAllAt(dirfd, "cache"), true);
 * assert.equal(removeAllAt(dirfd, "cache"), false); // nothing left
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function removeAllAt(dirfd: number, name: Name): boolean {
  const n = componentBuf(name);
  const c = libc();
  if (c.unlinkat(dirfd, n, 0) === 0) return true;
  const e = errno();
  if (e === Errno.ENOENT) return false;
  // Linux returns EISDIR for unlinkat(dir, 0); some filesystems say EPERM.
  if (e !== Errno.EISDIR && e !== Errno.EPERM) {
    throw new SysError("unlinkat", e, label(name));
  }
  emptyDirAt(dirfd, n);
  check(c.unlinkat(dirfd, n, AT.REMOVEDIR), "unlinkat", name);
  return true;
}

/**
 * Removes everything inside directory `name` below `dirfd` (keeps the
 * directory), never following symlinks. `keep(childName)` may spare entries
 * (of the top level only). `name` is one entry name (no "/", not "." or "..").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emptyDirAt } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.mkdirSync(`${dir}/tmp/a`, { recursive: true });
 * Deno.writeTextFileSync(`${dir}/tmp/b`, "");
 * emptyDirAt(dirfd, "tmp");
 * assert.deepEqual([...Deno.readDirSync(`${dir}/tmp`)], []);
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function emptyDirAt(
  dirfd: number,
  name: Name,
  keep?: (child: Uint8Array<ArrayBuffer>) => boolean,
): void {
  const fd = openDirNoFollow(dirfd, componentBuf(name));
  try {
    const c = libc();
    for (const ent of readdirFd(fd)) {
      if (keep?.(ent.name)) continue;
      if (ent.isDir === true) {
        emptyDirAt(fd, ent.name);
        check(
          c.unlinkat(fd, ent.name, AT.REMOVEDIR),
          "unlinkat",
          label(ent.name),
        );
      } else {
        removeAllAt(fd, ent.name);
      }
    }
  } finally {
    libc().close(fd);
  }
}

/**
 * Opens directory `name` below `dirfd` for reading with
 * `O_DIRECTORY|O_NOFOLLOW` (ELOOP/ENOTDIR when it is a symlink or not a dir).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openDirNoFollow } from "./fs_at_linux.ts";
 * import { close } from "./fd_linux.ts";
 * import { openDirAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const dirfd = openDirAt(-100, dir);
 * Deno.mkdirSync(`${dir}/etc`);
 * Deno.symlinkSync("etc", `${dir}/link`);
 * close(openDirNoFollow(dirfd, "etc"));
 * assert.throws(() => openDirNoFollow(dirfd, "link")); // a symlink is not followed
 * close(dirfd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function openDirNoFollow(dirfd: number, name: Name): number {
  // The walker's open; raw names here may lack the NUL it expects.
  return openDirAt(dirfd, nameBuf(name));
}
