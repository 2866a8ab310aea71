/**
 * Small typed wrappers for walking a directory tree from directory fds without
 * ever following a symlink: `statx` (AT_SYMLINK_NOFOLLOW), a `getdents64`
 * directory reader, `readlinkat`, no-follow `openat`, and xattr listing for
 * open fds and (through `/proc/self/fd/<dirfd>/<name>`) for entries that
 * cannot be opened (symlinks, devices, fifos).
 *
 * Everything here is synchronous: the archive walkers call these in hot loops
 * where one `await` per file costs more than the syscall itself.
 *
 * @module
 */

import { SHORT_ASCII, shortAscii } from "../_ascii.ts";
import { check, cstr, errno, libc, SysError } from "./libc_linux.ts";
import { Errno } from "./errno.ts";
import { AT, AT_FDCWD, O } from "./fd_linux.ts";

/** File kinds, from `st_mode & S_IFMT`. */
export type FileKind =
  | "file"
  | "dir"
  | "symlink"
  | "char"
  | "block"
  | "fifo"
  | "socket"
  | "unknown";

/**
 * What layerfs needs of `statx(2)`, as a plain object: the one stat shape of
 * the code base (the extractor, the change walkers and the exporter share it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statxAt } from "./fs_walk_linux.ts";
 * import { AT_FDCWD } from "./fd_linux.ts";
 * const st = statxAt(AT_FDCWD, "/etc");
 * assert.equal(st.kind, "dir");
 * assert.equal(st.mode & 0o170000, 0o040000);
 * ```
 */
export interface Stat {
  /** File kind (the type bits of {@link Stat.mode}, named). */
  kind: FileKind;
  /** `st_mode`: type bits (`0o170000`) and permission bits with setuid, setgid and sticky (`0o7777`). */
  mode: number;
  /** Owner. */
  uid: number;
  /** Group. */
  gid: number;
  /** Size in bytes. */
  size: number;
  /** Inode number. */
  ino: bigint;
  /**
   * Device of the file system holding the file as one number, major * 2^32 +
   * minor (exact: Linux majors have 12 bits). Compare it, or key by it.
   */
  dev: number;
  /** Number of hard links. */
  nlink: number;
  /** 512-byte blocks allocated (disk usage, sparse files and reflinks included as the fs reports). */
  blocks: number;
  /** Device major number (char/block devices). */
  rdevMajor: number;
  /** Device minor number (char/block devices). */
  rdevMinor: number;
  /** Modification time, whole seconds since the epoch. */
  mtimeSec: number;
  /** Nanoseconds part of the modification time. */
  mtimeNsec: number;
  /** Status-change time (any change of content, mode, owner, xattrs, links), whole seconds. */
  ctimeSec: number;
  /** Nanoseconds part of the status-change time. */
  ctimeNsec: number;
}

const S_IFMT = 0o170000;

function kindOf(mode: number): FileKind {
  switch (mode & S_IFMT) {
    case 0o100000:
      return "file";
    case 0o040000:
      return "dir";
    case 0o120000:
      return "symlink";
    case 0o020000:
      return "char";
    case 0o060000:
      return "block";
    case 0o010000:
      return "fifo";
    case 0o140000:
      return "socket";
  }
  return "unknown";
}

const STATX_BASIC_STATS = 0x7ff;
const statxBuf = new Uint8Array(256);
const statxView = new DataView(statxBuf.buffer);
const EMPTY = new Uint8Array(1);

const TWO32 = 4294967296;

// Decodes the shared buffer right after each call (it is reused: one statx
// per file and no allocation but the result object and the inode BigInt).
// 64-bit numbers as hi*2^32+lo: exact for any size or date a file system
// stores and cheaper than a BigInt conversion per file.
function parseStatx(): Stat {
  return parseStatxAt(statxView, 0);
}

/** Bytes of a `struct statx` (what {@link peekFileAt} writes, {@link parseStatxAt} reads). */
export const STATX_BYTES = 256;

/**
 * Decodes the `struct statx` at byte `o` of `v` (as {@link peekFileAt}
 * left it in another thread's buffer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStatxAt, STATX_BYTES } from "./fs_walk_linux.ts";
 * const raw = new DataView(new ArrayBuffer(STATX_BYTES));
 * raw.setUint16(28, 0o100644, true); // stx_mode
 * raw.setUint32(40, 5, true); // stx_size, low word
 * const st = parseStatxAt(raw, 0);
 * assert.equal(st.kind, "file");
 * assert.equal(st.size, 5);
 * ```
 */
export function parseStatxAt(v: DataView, o: number): Stat {
  const mode = v.getUint16(o + 28, true);
  return {
    kind: kindOf(mode),
    mode,
    uid: v.getUint32(o + 20, true),
    gid: v.getUint32(o + 24, true),
    size: v.getUint32(o + 44, true) * TWO32 + v.getUint32(o + 40, true),
    ino: v.getBigUint64(o + 32, true),
    dev: v.getUint32(o + 136, true) * TWO32 + v.getUint32(o + 140, true),
    nlink: v.getUint32(o + 16, true),
    blocks: v.getUint32(o + 52, true) * TWO32 + v.getUint32(o + 48, true),
    rdevMajor: v.getUint32(o + 128, true),
    rdevMinor: v.getUint32(o + 132, true),
    mtimeSec: v.getInt32(o + 116, true) * TWO32 + v.getUint32(o + 112, true),
    mtimeNsec: v.getUint32(o + 120, true),
    ctimeSec: v.getInt32(o + 100, true) * TWO32 + v.getUint32(o + 96, true),
    ctimeNsec: v.getUint32(o + 104, true),
  };
}

/** A NUL-terminated name: raw bytes from `getdents64`, or a string. */
export type CName = Uint8Array<ArrayBuffer> | string;

function cname(name: CName): Uint8Array<ArrayBuffer> {
  return typeof name === "string" ? cstr(name) : name;
}

function show(name: CName): string {
  return typeof name === "string" ? name : displayName(name);
}

/** A printable form of a NUL-terminated raw name (for error messages). */
export function displayName(name: Uint8Array): string {
  const end = name.indexOf(0);
  return new TextDecoder().decode(end < 0 ? name : name.subarray(0, end));
}

/**
 * `statx(dirfd, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never a
 * symlink's target. Throws {@link SysError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statxAt } from "./fs_walk_linux.ts";
 * import { AT_FDCWD } from "./fd_linux.ts";
 * assert.equal(statxAt(AT_FDCWD, "/proc/self").kind, "symlink");
 * ```
 */
export function statxAt(dirfd: number, name: CName): Stat {
  if (statxName(dirfd, name) < 0) {
    throw new SysError("statx", errno(), show(name));
  }
  return parseStatx();
}

function statxName(dirfd: number, name: CName): number {
  return libc().statx(
    dirfd,
    cname(name),
    AT.SYMLINK_NOFOLLOW,
    STATX_BASIC_STATS,
    statxBuf,
  );
}

/** A status-change time (`st_ctime`): whole seconds and nanoseconds. */
export interface Ctime {
  /** Seconds since the epoch. */
  sec: number;
  /** Nanoseconds part. */
  nsec: number;
}

const STATX_CTIME = 0x80;

/**
 * The ctime of `name` below `dirfd` (the entry itself, never a symlink's
 * target): what any change of its content, mode, owner, xattrs, links or
 * (for a directory) entries moves forward. One statx asking only for it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ctimeAt } from "./fs_walk_linux.ts";
 * import { AT_FDCWD } from "./fd_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const before = ctimeAt(AT_FDCWD, dir);
 * await Deno.chmod(dir, 0o700);
 * const after = ctimeAt(AT_FDCWD, dir);
 * assert.ok(after.sec > before.sec || (after.sec === before.sec && after.nsec >= before.nsec));
 * await Deno.remove(dir);
 * ```
 */
export function ctimeAt(dirfd: number, name: CName): Ctime {
  const r = libc().statx(
    dirfd,
    cname(name),
    AT.SYMLINK_NOFOLLOW,
    STATX_CTIME,
    statxBuf,
  );
  if (r < 0) throw new SysError("statx", errno(), show(name));
  return {
    sec: statxView.getInt32(100, true) * TWO32 + statxView.getUint32(96, true),
    nsec: statxView.getUint32(104, true),
  };
}

/**
 * Like {@link statxAt} but returns `null` when the entry does not exist
 * (ENOENT) or a path component is not a directory (ENOTDIR).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statxAtOrNull } from "./fs_walk_linux.ts";
 * import { AT_FDCWD } from "./fd_linux.ts";
 * assert.equal(statxAtOrNull(AT_FDCWD, "/no/such/file"), null);
 * ```
 */
export function statxAtOrNull(dirfd: number, name: CName): Stat | null {
  if (statxName(dirfd, name) < 0) {
    const e = errno();
    if (e === Errno.ENOENT || e === Errno.ENOTDIR) return null;
    throw new SysError("statx", e, show(name));
  }
  return parseStatx();
}

/**
 * `statx` of an open fd (AT_EMPTY_PATH): what was actually opened.
 *
 * @example
 * ```ts
 * import { fstatx } from "./fs_walk_linux.ts";
 * import { AT_FDCWD, close, O, openat } from "./fd_linux.ts";
 * import assert from "node:assert/strict";
 * const fd = openat(AT_FDCWD, "/etc", O.RDONLY | O.DIRECTORY);
 * assert.equal(fstatx(fd).kind, "dir");
 * close(fd);
 * ```
 */
export function fstatx(fd: number): Stat {
  check(
    libc().statx(
      fd,
      EMPTY,
      AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW,
      STATX_BASIC_STATS,
      statxBuf,
    ),
    "statx",
  );
  return parseStatx();
}

/** statx(2)'s STATX_INO: the one field {@link fstatIno} asks for. */
const STATX_INO = 0x100;

/**
 * The inode number of an open fd (statx with AT_EMPTY_PATH and only
 * STATX_INO), as a number: no result object, no BigInt. Inode numbers stay
 * below 2^53 on every Linux file system.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fstatIno, fstatx } from "./fs_walk_linux.ts";
 * import { AT_FDCWD, close, O, openat } from "./fd_linux.ts";
 * const fd = openat(AT_FDCWD, "/etc", O.RDONLY | O.DIRECTORY);
 * assert.equal(fstatIno(fd), Number(fstatx(fd).ino));
 * close(fd);
 * ```
 */
export function fstatIno(fd: number): number {
  check(
    libc().statx(
      fd,
      EMPTY,
      AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW,
      STATX_INO,
      statxBuf,
    ),
    "statx",
  );
  return statxView.getUint32(36, true) * TWO32 + statxView.getUint32(32, true);
}

const STATX_MNT_ID = 0x1000;

/**
 * {@link fstatx} plus the id of the mount the fd is on (STATX_MNT_ID): what
 * the privileged helper checks so that no layer dir sits on another mount.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fstatxWithMount } from "./fs_walk_linux.ts";
 * import { AT_FDCWD, close, O, openat } from "./fd_linux.ts";
 * const fd = openat(AT_FDCWD, "/proc", O.RDONLY | O.DIRECTORY);
 * const root = openat(AT_FDCWD, "/", O.RDONLY | O.DIRECTORY);
 * assert.notEqual(fstatxWithMount(fd).mntId, fstatxWithMount(root).mntId); // /proc is a mount
 * close(fd);
 * close(root);
 * ```
 */
export function fstatxWithMount(fd: number): Stat & { mntId: bigint } {
  check(
    libc().statx(
      fd,
      EMPTY,
      AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW,
      STATX_BASIC_STATS | STATX_MNT_ID,
      statxBuf,
    ),
    "statx",
  );
  return { ...parseStatx(), mntId: statxView.getBigUint64(144, true) };
}

/**
 * Opens a directory below `dirfd` without following a symlink in the last
 * component (O_NOFOLLOW | O_DIRECTORY): a symlink planted in place of the
 * directory fails with ELOOP/ENOTDIR instead of leading out of the tree.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fstatx, openDirAt } from "./fs_walk_linux.ts";
 * import { AT_FDCWD, close } from "./fd_linux.ts";
 * const fd = openDirAt(AT_FDCWD, "/etc");
 * assert.equal(fstatx(fd).kind, "dir");
 * close(fd);
 * assert.throws(() => openDirAt(AT_FDCWD, "/proc/self")); // a symlink is not followed
 * ```
 */
export function openDirAt(dirfd: number, name: CName): number {
  return check(
    libc().openat(
      dirfd,
      cname(name),
      O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC,
      0,
    ),
    "openat",
    name,
  );
}

/**
 * Opens a file below `dirfd` for reading without following a symlink
 * (O_NOFOLLOW), without blocking on a fifo swapped in by a racing writer
 * (O_NONBLOCK) and without acquiring a controlling tty (O_NOCTTY). Callers
 * must `fstatx` the fd and check it is the regular file they expect.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fstatx, openFileAt } from "./fs_walk_linux.ts";
 * import { AT_FDCWD, close } from "./fd_linux.ts";
 * const fd = openFileAt(AT_FDCWD, "/etc/hostname");
 * assert.equal(fstatx(fd).kind, "file");
 * close(fd);
 * ```
 */
export function openFileAt(dirfd: number, name: CName): number {
  return check(
    libc().openat(
      dirfd,
      cname(name),
      O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY | O.CLOEXEC,
      0,
    ),
    "openat",
    name,
  );
}

/** What {@link peekFileAt} did with a file entry (an fd, when it is left open, is >= 0). */
export const PEEK = {
  /** Read whole into the body buffer and closed (no xattrs). */
  READ: -1,
  /** Failed, or not a regular file: the caller opens it again itself (and reports what fails). */
  REDO: -2,
} as const;

/**
 * One file entry of an export, as a helper thread does it ahead of the
 * thread writing the tar: opens `name` below `dirfd` as
 * {@link openFileAt} does, writes its raw `statx` into `statxOut`
 * ({@link parseStatxAt} decodes it) and, when it has no xattrs and its
 * body is smaller than `bodyOut`, reads the body into `bodyOut` and closes
 * it. Never throws.
 *
 * @returns {@link PEEK}.READ, {@link PEEK}.REDO (also for a file whose size
 *   changed between the statx and the read), or the fd left open (the file
 *   has xattrs, when `xattrsOut[0]` is 1, or a bigger body): the caller
 *   closes it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStatxAt, PEEK, peekFileAt, STATX_BYTES } from "./fs_walk_linux.ts";
 * import { AT_FDCWD } from "./fd_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a`, "hello");
 * const st = new Uint8Array(STATX_BYTES);
 * const body = new Uint8Array(16);
 * const xattrs = new Int32Array(1);
 * const r = peekFileAt(AT_FDCWD, new TextEncoder().encode(`${dir}/a\0`), st, body, xattrs);
 * assert.equal(r, PEEK.READ);
 * assert.equal(parseStatxAt(new DataView(st.buffer), 0).size, 5);
 * assert.equal(new TextDecoder().decode(body.subarray(0, 5)), "hello");
 * assert.equal(peekFileAt(AT_FDCWD, new TextEncoder().encode(`${dir}\0`), st, body, xattrs), PEEK.REDO);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function peekFileAt(
  dirfd: number,
  name: Uint8Array,
  statxOut: Uint8Array,
  bodyOut: Uint8Array,
  xattrsOut: Int32Array,
): number {
  const c = libc();
  const fd = c.openat(
    dirfd,
    name,
    O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY | O.CLOEXEC,
    0,
  );
  if (fd < 0) return PEEK.REDO;
  if (
    c.statx(
        fd,
        EMPTY,
        AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW,
        STATX_BASIC_STATS,
        statxOut,
      ) < 0 ||
    (statxOut[28] | (statxOut[29] << 8)) >>> 12 !== 0o10 // not S_IFREG
  ) {
    c.close(fd);
    return PEEK.REDO;
  }
  // The size of the list, not the list: 0 is the common "none".
  const n = c.flistxattr(fd, null, 0);
  if (n < 0 && !isNoXattrSupport(errno())) {
    c.close(fd);
    return PEEK.REDO;
  }
  xattrsOut[0] = n > 0 ? 1 : 0;
  const v = new DataView(statxOut.buffer, statxOut.byteOffset, STATX_BYTES);
  const size = v.getUint32(44, true) * TWO32 + v.getUint32(40, true);
  if (n > 0 || size >= bodyOut.byteLength) return fd;
  // One byte more than its size: a file that grew or shrank since the statx
  // is left to the caller, whose own read reports it.
  // A regular file's read comes back short only at its end: one read(2).
  // An empty one is not read (nor by the pump, nor by moby's exporter).
  let got = 0;
  while (got <= size && size > 0) {
    const want = size + 1 - got;
    const m = c.read(fd, got === 0 ? bodyOut : bodyOut.subarray(got), want);
    if (m < 0) {
      c.close(fd);
      return PEEK.REDO;
    }
    got += m;
    if (m < want) break;
  }
  c.close(fd);
  return got === size ? PEEK.READ : PEEK.REDO;
}

/** `d_type` values of `getdents64`. */
export const DT = {
  UNKNOWN: 0,
  FIFO: 1,
  CHR: 2,
  DIR: 4,
  BLK: 6,
  REG: 8,
  LNK: 10,
  SOCK: 12,
} as const;

/**
 * One directory entry as `getdents64` returns it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type DirEntry, openDirAt, readDirFd } from "./fs_walk_linux.ts";
 * import { close } from "./fd_linux.ts";
 * const fd = openDirAt(-100, "/etc");
 * const entries: DirEntry[] = readDirFd(fd);
 * close(fd);
 * const passwd = entries.find((e) => e.name === "passwd")!;
 * assert.equal(new TextDecoder().decode(passwd.cname), "passwd\0");
 * ```
 */
export interface DirEntry {
  /** The name decoded as UTF-8 (`null` when the bytes are not UTF-8). */
  name: string | null;
  /** The raw name bytes plus a terminating NUL, ready for `*at` calls. */
  cname: Uint8Array<ArrayBuffer>;
  /** Inode number. */
  ino: bigint;
  /** `d_type` (see {@link DT}); DT.UNKNOWN on file systems that do not fill it. */
  type: number;
}

const direntBuf = new Uint8Array(1 << 16);
const direntView = new DataView(direntBuf.buffer);
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes raw name bytes `[o, end)`: short ASCII by hand (fast), else strict UTF-8 or `null`. */
export function decodeName(
  b: Uint8Array,
  o: number,
  end: number,
): string | null {
  if (end - o <= SHORT_ASCII) {
    const s = shortAscii(b, o, end);
    if (s !== null) return s;
  }
  try {
    return utf8.decode(b.subarray(o, end));
  } catch {
    return null;
  }
}

/**
 * Reads every entry of an open directory with `getdents64` (".", ".." left
 * out), in the order the file system returns them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openDirAt, readDirFd } from "./fs_walk_linux.ts";
 * import { close } from "./fd_linux.ts";
 * const fd = openDirAt(-100, "/etc");
 * const names = readDirFd(fd).map((e) => e.name);
 * close(fd);
 * assert.ok(names.includes("passwd"));
 * assert.ok(!names.includes(".") && !names.includes(".."));
 * ```
 */
export function readDirFd(fd: number): DirEntry[] {
  const out: DirEntry[] = [];
  const c = libc();
  for (;;) {
    const n = check(
      c.getdents64(fd, direntBuf, direntBuf.byteLength),
      "getdents64",
    );
    if (n === 0) break;
    // One copy per batch, the names views of it: a `new Uint8Array` per
    // entry would cost more than the entry's syscalls (see `scratchCstr`).
    const batch = direntBuf.slice(0, n);
    let off = 0;
    while (off < n) {
      const reclen = direntView.getUint16(off + 16, true);
      const type = direntBuf[off + 18];
      const start = off + 19;
      let end = start;
      while (direntBuf[end] !== 0) end++;
      const len = end - start;
      // Skip "." and "..".
      const dot = len <= 2 && direntBuf[start] === 0x2e &&
        (len === 1 || direntBuf[start + 1] === 0x2e);
      if (!dot) {
        out.push({
          name: decodeName(direntBuf, start, end),
          cname: batch.subarray(start, end + 1),
          ino: direntView.getBigUint64(off, true),
          type,
        });
      }
      off += reclen;
    }
  }
  return out;
}

const linkBuf = new Uint8Array(4097);

/**
 * `readlinkat(2)`: a symlink's target as raw bytes (no NUL).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readlinkAt } from "./fs_walk_linux.ts";
 * assert.equal(new TextDecoder().decode(readlinkAt(-100, "/proc/self")), String(Deno.pid));
 * ```
 */
export function readlinkAt(dirfd: number, name: CName): Uint8Array {
  const n = check(
    libc().readlinkat(dirfd, cname(name), linkBuf, linkBuf.byteLength),
    "readlinkat",
    name,
  );
  if (n >= linkBuf.byteLength) {
    throw new SysError("readlinkat", Errno.ENAMETOOLONG, show(name));
  }
  return linkBuf.slice(0, n);
}

// XATTR_LIST_MAX and XATTR_SIZE_MAX are both 64 KiB on Linux.
const xlistBuf = new Uint8Array(1 << 16);
const xvalBuf = new Uint8Array(1 << 16);
const latin1 = new TextDecoder("latin1");

function splitNames(
  n: number,
): { name: string; cname: Uint8Array<ArrayBuffer> }[] {
  const out: { name: string; cname: Uint8Array<ArrayBuffer> }[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (xlistBuf[i] === 0) {
      if (i > start) {
        out.push({
          name: decodeName(xlistBuf, start, i) ??
            latin1.decode(xlistBuf.subarray(start, i)),
          cname: xlistBuf.slice(start, i + 1),
        });
      }
      start = i + 1;
    }
  }
  return out;
}

/**
 * What the readers return for an entry without xattrs (nearly every file):
 * one shared map, not a new one per file (~170 B each on every pack and
 * changes walk). It refuses to be changed, so a caller that tried to add to
 * it fails loudly instead of giving every file its xattrs.
 */
class NoXattrs extends Map<string, Uint8Array> {
  override set(): this {
    throw new TypeError("the empty xattr map of a file is read-only");
  }
  override delete(): boolean {
    throw new TypeError("the empty xattr map of a file is read-only");
  }
  override clear(): void {
    throw new TypeError("the empty xattr map of a file is read-only");
  }
}
const NO_XATTRS: Map<string, Uint8Array> = Object.freeze(new NoXattrs());

function isNoXattrSupport(e: number): boolean {
  return e === Errno.EOPNOTSUPP || e === Errno.ENODATA;
}

/**
 * All extended attributes of an open file or directory (`flistxattr` +
 * `fgetxattr`), values as raw bytes. File systems without xattr support give
 * an empty map. Names the process may not read (trusted.* as non-root) are
 * simply not listed by the kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openDirAt, readXattrsFd } from "./fs_walk_linux.ts";
 * import { close } from "./fd_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const fd = openDirAt(-100, dir);
 * assert.ok(readXattrsFd(fd) instanceof Map); // names -> raw values
 * close(fd);
 * await Deno.remove(dir);
 * ```
 */
export function readXattrsFd(fd: number): Map<string, Uint8Array> {
  const c = libc();
  const n = c.flistxattr(fd, xlistBuf, xlistBuf.byteLength);
  if (n < 0) {
    const e = errno();
    if (isNoXattrSupport(e)) return NO_XATTRS;
    throw new SysError("flistxattr", e);
  }
  if (n === 0) return NO_XATTRS;
  const out = new Map<string, Uint8Array>();
  for (const { name, cname } of splitNames(n)) {
    const m = c.fgetxattr(fd, cname, xvalBuf, xvalBuf.byteLength);
    if (m < 0) {
      // Removed between list and get by a racing writer: skip it.
      if (errno() === Errno.ENODATA) continue;
      throw new SysError("fgetxattr", errno(), name);
    }
    out.set(name, xvalBuf.slice(0, m));
  }
  return out;
}

function procPath(dirfd: number, name: CName): Uint8Array<ArrayBuffer> {
  if (dirfd === AT_FDCWD) return cname(name);
  const prefix = new TextEncoder().encode(`/proc/self/fd/${dirfd}/`);
  const n = cname(name);
  const out = new Uint8Array(prefix.length + n.length);
  out.set(prefix);
  out.set(n, prefix.length);
  return out;
}

/**
 * All extended attributes of the entry `name` below `dirfd`, without following
 * it if it is a symlink. For entries that cannot be opened safely: symlinks,
 * devices, fifos; and for every entry of the trees `layerChanges` compares.
 * On Linux 6.13+ with `listxattrat`/`getxattrat` relative to `dirfd`; else
 * `llistxattr`/`lgetxattr` on `/proc/self/fd/<dirfd>/<name>` (the directory
 * is reached through its fd, and only the last component is looked up, with
 * no-follow), which costs a procfs walk per call: comparing two trees of 55k
 * files spent 57% of its time there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openDirAt, readXattrsAt } from "./fs_walk_linux.ts";
 * import { close } from "./fd_linux.ts";
 * const fd = openDirAt(-100, "/");
 * assert.ok(readXattrsAt(fd, "tmp") instanceof Map);
 * close(fd);
 * ```
 */
export function readXattrsAt(
  dirfd: number,
  name: CName,
): Map<string, Uint8Array> {
  if (dirfd !== AT_FDCWD && xattrAtCalls !== false) {
    const got = readXattrsAtCalls(dirfd, name);
    if (got !== undefined) return got;
  }
  const c = libc();
  const p = procPath(dirfd, name);
  const n = c.llistxattr(p, xlistBuf, xlistBuf.byteLength);
  if (n < 0) {
    const e = errno();
    if (isNoXattrSupport(e)) return NO_XATTRS;
    throw new SysError("llistxattr", e, show(name));
  }
  if (n === 0) return NO_XATTRS;
  const out = new Map<string, Uint8Array>();
  for (const x of splitNames(n)) {
    const m = c.lgetxattr(p, x.cname, xvalBuf, xvalBuf.byteLength);
    if (m < 0) {
      if (errno() === Errno.ENODATA) continue;
      throw new SysError("lgetxattr", errno(), show(name));
    }
    out.set(x.name, xvalBuf.slice(0, m));
  }
  return out;
}

const AT_SYMLINK_NOFOLLOW = 0x100;
/** Whether `listxattrat`/`getxattrat` work here: learned on the first call. */
let xattrAtCalls: boolean | undefined;
/** `struct xattr_args { u64 value; u32 size; u32 flags; }` for getxattrat. */
const xattrArgs = new BigUint64Array(2);

/** {@link xattrArgs} for reading a value into `buf`, as bytes. */
function xattrArgsFor(buf: Uint8Array): Uint8Array<ArrayBuffer> {
  xattrArgs[0] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
  xattrArgs[1] = BigInt(buf.byteLength); // size; flags (the high half) 0
  return new Uint8Array(xattrArgs.buffer);
}

/**
 * Internal, for tests: makes {@link readXattrsAt} use the `/proc` path
 * (`false`) or learn again whether the `*xattrat` calls work (`undefined`),
 * so both ways are checked on a kernel that has the calls.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openDirAt, readXattrsAt, useXattrAtCalls } from "./fs_walk_linux.ts";
 * import { close } from "./fd_linux.ts";
 * const fd = openDirAt(-100, "/");
 * useXattrAtCalls(false);
 * const viaProc = readXattrsAt(fd, "tmp");
 * useXattrAtCalls(undefined);
 * assert.deepEqual(readXattrsAt(fd, "tmp"), viaProc);
 * close(fd);
 * ```
 */
export function useXattrAtCalls(use: false | undefined): void {
  xattrAtCalls = use;
}

/**
 * {@link readXattrsAt} with the `*xattrat` calls; undefined when the kernel
 * has none (ENOSYS before 6.13; EPERM from a seccomp filter that does not
 * know them), learned once.
 */
function readXattrsAtCalls(
  dirfd: number,
  name: CName,
): Map<string, Uint8Array> | undefined {
  const c = libc();
  const n = cname(name);
  const got = c.listxattrat(
    dirfd,
    n,
    AT_SYMLINK_NOFOLLOW,
    xlistBuf,
    xlistBuf.byteLength,
  );
  if (got < 0) {
    const e = errno();
    if (
      xattrAtCalls === undefined && (e === Errno.ENOSYS || e === Errno.EPERM)
    ) {
      xattrAtCalls = false;
      return undefined;
    }
    if (isNoXattrSupport(e)) return NO_XATTRS;
    throw new SysError("listxattrat", e, show(name));
  }
  xattrAtCalls = true;
  if (got === 0) return NO_XATTRS;
  const out = new Map<string, Uint8Array>();
  const args = xattrArgsFor(xvalBuf);
  for (const x of splitNames(got)) {
    const m = c.getxattrat(
      dirfd,
      n,
      AT_SYMLINK_NOFOLLOW,
      x.cname,
      args,
      16n,
    );
    if (m < 0) {
      if (errno() === Errno.ENODATA) continue;
      throw new SysError("getxattrat", errno(), show(name));
    }
    out.set(x.name, xvalBuf.slice(0, m));
  }
  return out;
}

/**
 * One extended attribute of the entry `name` below `dirfd` (no-follow), or
 * `null` when it is absent or the file system has no xattrs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getXattrAt } from "./fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * assert.equal(getXattrAt(-100, dir, "user.layerfs.absent"), null);
 * await Deno.remove(dir);
 * ```
 */
export function getXattrAt(
  dirfd: number,
  name: CName,
  attr: string,
): Uint8Array | null {
  // The *xattrat call once readXattrsAt found it works (see there).
  const at = dirfd !== AT_FDCWD && xattrAtCalls === true;
  const m = Number(
    at
      ? libc().getxattrat(
        dirfd,
        cname(name),
        AT_SYMLINK_NOFOLLOW,
        cstr(attr),
        xattrArgsFor(xvalBuf),
        16n,
      )
      : libc().lgetxattr(
        procPath(dirfd, name),
        cstr(attr),
        xvalBuf,
        xvalBuf.byteLength,
      ),
  );
  if (m < 0) {
    const e = errno();
    if (isNoXattrSupport(e)) return null;
    throw new SysError(at ? "getxattrat" : "lgetxattr", e, show(name));
  }
  return xvalBuf.slice(0, m);
}
