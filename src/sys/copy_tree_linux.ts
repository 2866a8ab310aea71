/**
 * Copies a directory tree exactly (modes, owners, times, xattrs, hardlinks,
 * symlinks, devices) for the vfs backend, where every layer starts as a full
 * copy of its parent. File data is shared with `ioctl(FICLONE)` where the
 * filesystem can reflink (btrfs, xfs), else copied in the kernel with
 * copy_file_range(2), else read/write with a 1 MiB buffer.
 *
 * Everything goes through directory fds and `*at` calls with NOFOLLOW, so a
 * symlink inside the source can never redirect the copy.
 *
 * @module
 */

import { cbytes, check, cstr, libc } from "./libc_linux.ts";
import {
  AT,
  AT_FDCWD,
  close,
  copyFileRange,
  O,
  openat,
  writeAll,
} from "./fd_linux.ts";

const FICLONE = 0x40049409n;
const STATX_BASIC_STATS = 0x7ff;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

interface Stat {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  ino: bigint;
  dev: string;
  rdev: bigint;
  times: Uint8Array<ArrayBuffer>; // struct timespec[2] (atime, mtime) for utimensat
}

const statxBuf = new Uint8Array(256);
const statxView = new DataView(statxBuf.buffer);

function statAt(
  dirfd: number,
  name: Uint8Array<ArrayBuffer>,
  flags: number,
): Stat {
  check(libc().statx(dirfd, name, flags, STATX_BASIC_STATS, statxBuf), "statx");
  const v = statxView;
  const times = new Uint8Array(32);
  const tv = new DataView(times.buffer);
  tv.setBigInt64(0, v.getBigInt64(64, true), true); // atime.tv_sec
  tv.setBigInt64(8, BigInt(v.getUint32(72, true)), true);
  tv.setBigInt64(16, v.getBigInt64(112, true), true); // mtime.tv_sec
  tv.setBigInt64(24, BigInt(v.getUint32(120, true)), true);
  const rmaj = BigInt(v.getUint32(128, true));
  const rmin = BigInt(v.getUint32(132, true));
  // glibc makedev()
  const rdev = ((rmaj & 0xfffff000n) << 32n) | ((rmaj & 0xfffn) << 8n) |
    ((rmin & 0xffffff00n) << 12n) | (rmin & 0xffn);
  return {
    mode: v.getUint16(28, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    nlink: v.getUint32(16, true),
    size: Number(v.getBigUint64(40, true)),
    ino: v.getBigUint64(32, true),
    dev: `${v.getUint32(136, true)}:${v.getUint32(140, true)}`,
    rdev,
    times,
  };
}

/** Names in a directory (raw bytes, without . and ..). */
function listDir(fd: number): Uint8Array<ArrayBuffer>[] {
  const buf = new Uint8Array(65536);
  const v = new DataView(buf.buffer);
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (;;) {
    const n = check(
      libc().getdents64(fd, buf, buf.byteLength),
      "getdents64",
    );
    if (n === 0) return out;
    for (let off = 0; off < n;) {
      const reclen = v.getUint16(off + 16, true);
      let end = off + 19;
      while (buf[end] !== 0) end++;
      const name = buf.slice(off + 19, end);
      const dot = name.length === 1 && name[0] === 0x2e ||
        name.length === 2 && name[0] === 0x2e && name[1] === 0x2e;
      if (!dot) out.push(name);
      off += reclen;
    }
  }
}

const xnames = new Uint8Array(65536);
const xvalue = new Uint8Array(65536);

function copyXattrs(src: number, dst: number): void {
  const c = libc();
  const n = c.flistxattr(src, xnames, xnames.byteLength);
  if (n <= 0) return;
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (xnames[i] !== 0) continue;
    const name = xnames.slice(start, i + 1);
    start = i + 1;
    const len = c.fgetxattr(src, name, xvalue, xvalue.byteLength);
    if (len < 0) continue;
    // Unsupported namespaces on the target (EOPNOTSUPP) are skipped, as cp -a does.
    c.fsetxattr(dst, name, xvalue.subarray(0, len), len, 0);
  }
}

const rwBuf = new Uint8Array(1 << 20);

function copyData(src: number, dst: number, size: number): void {
  const c = libc();
  if (size === 0) return;
  if (c.ioctl(dst, FICLONE, src) === 0) return;
  // What the kernel cannot copy (another file system, a file that shrank)
  // goes through the buffer from where the copy stopped.
  if (copyFileRange(src, dst, size) === size) return;
  for (;;) {
    const n = check(c.read(src, rwBuf, rwBuf.byteLength), "read");
    if (n === 0) return;
    writeAll(dst, rwBuf.subarray(0, n));
  }
}

function setAttrs(fd: number, st: Stat): void {
  const c = libc();
  check(c.fchown(fd, st.uid, st.gid), "fchown");
  // chmod after chown: chown clears setuid/setgid bits.
  check(c.fchmod(fd, st.mode & 0o7777), "fchmod");
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + 1 + b.length);
  out.set(a);
  out[a.length] = 0x2f;
  out.set(b, a.length + 1);
  return out;
}

function copyDir(
  src: number,
  dst: number,
  rel: Uint8Array,
  dstRoot: number,
  links: Map<string, Uint8Array<ArrayBuffer>>,
): void {
  const c = libc();
  const linkBuf = new Uint8Array(4097);
  for (const raw of listDir(src)) {
    const name = cbytes(raw);
    const st = statAt(src, name, AT.SYMLINK_NOFOLLOW);
    const type = st.mode & S_IFMT;
    if (type !== S_IFDIR && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first) {
        check(c.linkat(dstRoot, first, dst, name, 0), "linkat");
        continue;
      }
      links.set(key, cbytes(join(rel, raw)));
    }
    if (type === S_IFDIR) {
      check(c.mkdirat(dst, name, 0o700), "mkdirat");
      const s = check(
        c.openat(src, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0),
        "openat",
      );
      try {
        const d = check(
          c.openat(
            dst,
            name,
            O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC,
            0,
          ),
          "openat",
        );
        try {
          copyDir(s, d, join(rel, raw), dstRoot, links);
          setAttrs(d, st);
          copyXattrs(s, d);
          check(c.futimens(d, st.times), "futimens");
        } finally {
          close(d);
        }
      } finally {
        close(s);
      }
    } else if (type === S_IFREG) {
      const s = check(
        c.openat(src, name, O.RDONLY | O.NOFOLLOW | O.CLOEXEC, 0),
        "openat",
      );
      try {
        const d = check(
          c.openat(
            dst,
            name,
            O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC,
            0o600,
          ),
          "openat",
        );
        try {
          copyData(s, d, st.size);
          setAttrs(d, st);
          copyXattrs(s, d);
          check(c.futimens(d, st.times), "futimens");
        } finally {
          close(d);
        }
      } finally {
        close(s);
      }
    } else if (type === S_IFLNK) {
      const n = check(
        c.readlinkat(src, name, linkBuf, linkBuf.byteLength - 1),
        "readlinkat",
      );
      check(
        c.symlinkat(cbytes(linkBuf.subarray(0, n)), dst, name),
        "symlinkat",
      );
      check(
        c.fchownat(dst, name, st.uid, st.gid, AT.SYMLINK_NOFOLLOW),
        "fchownat",
      );
      check(c.utimensat(dst, name, st.times, AT.SYMLINK_NOFOLLOW), "utimensat");
    } else {
      // Devices, fifos, sockets (and overlay whiteouts, which are 0/0 char devices).
      check(c.mknodat(dst, name, st.mode, st.rdev), "mknodat");
      check(
        c.fchownat(dst, name, st.uid, st.gid, AT.SYMLINK_NOFOLLOW),
        "fchownat",
      );
      // mknodat applied the umask; set the exact mode afterwards.
      check(c.fchmodat(dst, name, st.mode & 0o7777), "fchmodat");
      check(c.utimensat(dst, name, st.times, AT.SYMLINK_NOFOLLOW), "utimensat");
    }
  }
}

/**
 * Copies the tree at `src` into `dst`, which must be an existing empty
 * directory; `dst` itself takes `src`'s mode, owner, xattrs and times.
 * Blocks the thread (synchronous FFI), which is what makes it fast.
 *
 * @throws {SysError} when a call fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyTree } from "./copy_tree_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/base/etc`, { recursive: true });
 * await Deno.writeTextFile(`${dir}/base/etc/hosts`, "127.0.0.1 localhost\n");
 * await Deno.symlink("etc/hosts", `${dir}/base/hosts`);
 * await Deno.mkdir(`${dir}/copy`);
 * copyTree(`${dir}/base`, `${dir}/copy`);
 * assert.equal(await Deno.readTextFile(`${dir}/copy/etc/hosts`), "127.0.0.1 localhost\n");
 * assert.equal(await Deno.readLink(`${dir}/copy/hosts`), "etc/hosts");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function copyTree(src: string, dst: string): void {
  const s = openat(AT_FDCWD, src, O.RDONLY | O.DIRECTORY);
  try {
    const d = openat(AT_FDCWD, dst, O.RDONLY | O.DIRECTORY);
    try {
      copyDir(s, d, new Uint8Array(0), d, new Map());
      const st = statAt(s, cstr(""), AT.EMPTY_PATH);
      setAttrs(d, st);
      copyXattrs(s, d);
      check(libc().futimens(d, st.times), "futimens");
    } finally {
      close(d);
    }
  } finally {
    close(s);
  }
}
