/**
 * The libc FFI surface: every system call layerfs makes, bound on first use.
 * Only `src/sys/` imports this file; the rest of the code base uses the small
 * typed wrappers next to it.
 *
 * Conventions:
 * - Paths are passed as NUL-terminated byte buffers made by {@link cstr}.
 * - Every wrapper reads `errno` right after a failing call (through the cached
 *   `__errno_location()` pointer) and throws {@link SysError}.
 * - System calls go through glibc's `syscall(2)` with the kernel's number for
 *   this architecture ({@link SYSCALL_NUMBERS}), bound once per *shape* (the
 *   kinds of its arguments, {@link SHAPES}), not once per call: Deno 2.9.6
 *   compiles a call trampoline for every bound symbol, ~0.3 ms each, and an
 *   apply bound 17 symbols (4.3-5.7 ms of a 22-30 ms apply of a 248-entry
 *   layer), a pack 12. Now each binds 7 shapes, plus `__errno_location`
 *   (`tests/sys/libc_shapes_test.ts`). Only `signal` and `__errno_location`
 *   are glibc functions of their own.
 * - Int-typed arguments go as 32-bit numbers; only true 64-bit ones (sizes,
 *   offsets) as BigInt: a number given for a 64-bit parameter takes Deno's
 *   slow path (~200 ns more per call), and a BigInt made per argument made
 *   cold code (the first calls, before V8 optimises the caller) 1.5-3x
 *   slower.
 *
 * @module
 */

import { errnoName } from "./errno.ts";

/** The glibc functions that are not plain system calls. */
const LIBC_FUNCTIONS = {
  __errno_location: { parameters: [], result: "pointer" },
  // sighandler_t signal(int signum, sighandler_t handler); handlers as integers
  signal: { parameters: ["i32", "usize"], result: "usize" },
} as const;

/**
 * Kernel system call numbers: [x86_64, aarch64 (the generic table)]. Calls
 * from 424 on are numbered alike on every architecture.
 * `tests/sys/libc_shapes_test.ts` checks them against the kernel headers.
 */
export const SYSCALL_NUMBERS = {
  read: [0, 63],
  write: [1, 64],
  close: [3, 57],
  ioctl: [16, 29],
  pread64: [17, 67],
  flock: [73, 32],
  fsync: [74, 82],
  ftruncate: [77, 46],
  fchmod: [91, 52],
  fchown: [93, 55],
  geteuid: [107, 175],
  getegid: [108, 177],
  statfs: [137, 43],
  fstatfs: [138, 44],
  mount: [165, 40],
  umount2: [166, 39],
  lsetxattr: [189, 6],
  fsetxattr: [190, 7],
  lgetxattr: [192, 9],
  fgetxattr: [193, 10],
  llistxattr: [195, 12],
  flistxattr: [196, 13],
  fremovexattr: [199, 16],
  getdents64: [217, 61],
  openat: [257, 56],
  mkdirat: [258, 34],
  mknodat: [259, 33],
  fchownat: [260, 54],
  unlinkat: [263, 35],
  linkat: [265, 37],
  symlinkat: [266, 36],
  readlinkat: [267, 78],
  fchmodat: [268, 53],
  utimensat: [280, 88],
  syncfs: [306, 267],
  renameat2: [316, 276],
  copy_file_range: [326, 285],
  statx: [332, 291],
  open_tree: [428, 428],
  move_mount: [429, 429],
  fsopen: [430, 430],
  fsconfig: [431, 431],
  fsmount: [432, 432],
  openat2: [437, 437],
  mount_setattr: [442, 442],
  fchmodat2: [452, 452],
  getxattrat: [464, 464],
  listxattrat: [465, 465],
} as const;

type SyscallName = keyof typeof SYSCALL_NUMBERS;

/**
 * This process's numbers. Deno runs on no other Linux architecture; on one,
 * every call would fail with ENOSYS.
 */
const NR = {} as Record<SyscallName, bigint>;
{
  const col = Deno.build.arch === "x86_64"
    ? 0
    : Deno.build.arch === "aarch64"
    ? 1
    : -1;
  for (const k of Object.keys(SYSCALL_NUMBERS) as SyscallName[]) {
    NR[k] = col < 0 ? -1n : BigInt(SYSCALL_NUMBERS[k][col as 0 | 1]);
  }
}

/**
 * The `syscall(2)` shapes, named by the kinds of their arguments after the
 * number: `i` an int-typed argument (fd, flags, mode, uid: passed as a 32-bit
 * number, no BigInt; the kernel truncates such arguments to 32 bits itself,
 * whatever the register's upper half holds), `l` a long (size_t, off_t,
 * unsigned long: a BigInt), `b` a buffer (or null for NULL). Unused trailing
 * arguments are passed as 0 and ignored by the kernel, which lets calls
 * share a shape; an int may also go in an `l` slot. Results are the low 32
 * bits of the C `long` (fds, 0/-1, and byte counts, which {@link MAX_IO}
 * keeps below 2^31).
 */
const SHAPES = {
  iii: {
    name: "syscall",
    parameters: ["i64", "i32", "i32", "i32"],
    result: "i32",
  },
  ill: {
    name: "syscall",
    parameters: ["i64", "i32", "i64", "i64"],
    result: "i32",
  },
  bi: { name: "syscall", parameters: ["i64", "buffer", "i32"], result: "i32" },
  bbl: {
    name: "syscall",
    parameters: ["i64", "buffer", "buffer", "i64"],
    result: "i32",
  },
  bib: {
    name: "syscall",
    parameters: ["i64", "buffer", "i32", "buffer"],
    result: "i32",
  },
  ibii: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  ibll: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i64", "i64"],
    result: "i32",
  },
  iibbi: {
    name: "syscall",
    parameters: ["i64", "i32", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  ibbli: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "buffer", "i64", "i32"],
    result: "i32",
  },
  ibiii: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i32", "i32", "i32"],
    result: "i32",
  },
  ibiib: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i32", "i32", "buffer"],
    result: "i32",
  },
  ibibi: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  ibibl: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i32", "buffer", "i64"],
    result: "i32",
  },
  bbbli: {
    name: "syscall",
    parameters: ["i64", "buffer", "buffer", "buffer", "i64", "i32"],
    result: "i32",
  },
  bbblb: {
    name: "syscall",
    parameters: ["i64", "buffer", "buffer", "buffer", "i64", "buffer"],
    result: "i32",
  },
  ibibli: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i32", "buffer", "i64", "i32"],
    result: "i32",
  },
  ibibbl: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "i32", "buffer", "buffer", "i64"],
    result: "i32",
  },
} as const;

// Views of a SharedArrayBuffer too: the export's read-ahead helper fills
// one shared with the writing thread (Deno's FFI takes any view).
type Buf = BufferSource | ArrayBufferView<ArrayBufferLike> | null;
type Int = number | bigint;

/**
 * Libraries opened so far, one per bound symbol: kept referenced, since a
 * collected `DynamicLibrary` may unload its symbols.
 */
const opened: Deno.DynamicLibrary<Deno.ForeignLibraryInterface>[] = [];

/** Binds one symbol (a libc function or a syscall shape). */
function bind(name: string, def: Deno.ForeignFunction): unknown {
  const l = Deno.dlopen("libc.so.6", { [name]: def });
  opened.push(l);
  return l.symbols[name];
}

/** The shapes, each bound on its first use and then a plain property. */
const sc = {} as Deno.DynamicLibrary<typeof SHAPES>["symbols"];
/** The glibc functions, likewise. */
const fns = {} as Deno.DynamicLibrary<typeof LIBC_FUNCTIONS>["symbols"];
for (
  const [table, into] of [[SHAPES, sc], [LIBC_FUNCTIONS, fns]] as const
) {
  for (const name of Object.keys(table)) {
    Object.defineProperty(into, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = bind(
          name,
          (table as Record<string, Deno.ForeignFunction>)[name],
        );
        Object.defineProperty(into, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
}

const b = BigInt;

/**
 * The most bytes one call moves (1 GiB), so that the count it returns fits
 * the shapes' 32-bit result: a caller gets a short read or write, as the
 * kernel may give anyway.
 */
const MAX_IO = 1 << 30;
const cap = (n: Int): bigint => b(n > MAX_IO ? MAX_IO : n);

/** A call from one (dirfd, path) to another, with flags: linkat, renameat2, move_mount. */
const fromTo = (nr: bigint) =>
(
  fromDir: number,
  fromPath: Buf,
  toDir: number,
  toPath: Buf,
  flags: number,
): number => sc.ibibi(nr, fromDir, fromPath, toDir, toPath, flags);

/**
 * The system calls, with the C prototypes' argument order; results are
 * numbers (-1 on failure, errno set).
 */
const symbols = {
  __errno_location: (): Deno.PointerValue => fns.__errno_location(),
  signal: (signum: number, handler: Int): number | bigint =>
    fns.signal(signum, b(handler)),
  geteuid: (): number => sc.iii(NR.geteuid, 0, 0, 0),
  getegid: (): number => sc.iii(NR.getegid, 0, 0, 0),
  // mounts
  mount: (src: Buf, target: Buf, fstype: Buf, flags: Int, data: Buf): number =>
    sc.bbblb(NR.mount, src, target, fstype, b(flags), data),
  umount2: (target: Buf, flags: number): number =>
    sc.bi(NR.umount2, target, flags),
  fsopen: (fsname: Buf, flags: number): number =>
    sc.bi(NR.fsopen, fsname, flags),
  fsconfig: (fd: number, cmd: number, key: Buf, value: Buf, aux: number) =>
    sc.iibbi(NR.fsconfig, fd, cmd, key, value, aux),
  fsmount: (fd: number, flags: number, attrs: number): number =>
    sc.iii(NR.fsmount, fd, flags, attrs),
  move_mount: fromTo(NR.move_mount),
  open_tree: (dirfd: number, path: Buf, flags: number): number =>
    sc.ibii(NR.open_tree, dirfd, path, flags, 0),
  mount_setattr: (
    dirfd: number,
    path: Buf,
    flags: number,
    attr: Buf,
    size: Int,
  ): number => sc.ibibl(NR.mount_setattr, dirfd, path, flags, attr, b(size)),
  statfs: (path: Buf, out: Buf): number => sc.bbl(NR.statfs, path, out, 0n),
  fstatfs: (fd: number, out: Buf): number => sc.ibii(NR.fstatfs, fd, out, 0, 0),
  // file descriptors
  openat: (dirfd: number, path: Buf, flags: number, mode: number): number =>
    sc.ibii(NR.openat, dirfd, path, flags, mode),
  openat2: (dirfd: number, path: Buf, how: Buf, size: Int): number =>
    sc.ibbli(NR.openat2, dirfd, path, how, b(size), 0),
  close: (fd: number): number => sc.iii(NR.close, fd, 0, 0),
  read: (fd: number, buf: Buf, count: Int): number =>
    sc.ibll(NR.read, fd, buf, cap(count), 0n),
  write: (fd: number, buf: Buf, count: Int): number =>
    sc.ibll(NR.write, fd, buf, cap(count), 0n),
  pread: (fd: number, buf: Buf, count: Int, offset: Int): number =>
    sc.ibll(NR.pread64, fd, buf, cap(count), b(offset)),
  ftruncate: (fd: number, length: Int): number =>
    sc.ill(NR.ftruncate, fd, b(length), 0n),
  fsync: (fd: number): number => sc.iii(NR.fsync, fd, 0, 0),
  flock: (fd: number, op: number): number => sc.iii(NR.flock, fd, op, 0),
  syncfs: (fd: number): number => sc.iii(NR.syncfs, fd, 0, 0),
  ioctl: (fd: number, request: Int, arg: Int): number =>
    sc.ill(NR.ioctl, fd, b(request), b(arg)),
  /** Offsets are always null here: both files' own positions are used. */
  copy_file_range: (
    fdIn: number,
    offIn: null,
    fdOut: number,
    offOut: null,
    len: Int,
    flags: number,
  ): number =>
    sc.ibibli(NR.copy_file_range, fdIn, offIn, fdOut, offOut, cap(len), flags),
  // *at calls
  mkdirat: (dirfd: number, path: Buf, mode: number): number =>
    sc.ibii(NR.mkdirat, dirfd, path, mode, 0),
  /**
   * `dev` in glibc's `dev_t` encoding; the kernel takes 32 bits of it (the
   * same encoding there), and glibc refuses more with EINVAL, thrown here.
   */
  mknodat: (dirfd: number, path: Buf, mode: number, dev: Int): number =>
    b(dev) >> 32n !== 0n
      ? einval()
      : sc.ibii(NR.mknodat, dirfd, path, mode, Number(dev) | 0),
  symlinkat: (target: Buf, dirfd: number, path: Buf): number =>
    sc.bib(NR.symlinkat, target, dirfd, path),
  linkat: fromTo(NR.linkat),
  unlinkat: (dirfd: number, path: Buf, flags: number): number =>
    sc.ibii(NR.unlinkat, dirfd, path, flags, 0),
  renameat2: fromTo(NR.renameat2),
  fchownat: (
    dirfd: number,
    path: Buf,
    uid: number,
    gid: number,
    flags: number,
  ): number => sc.ibiii(NR.fchownat, dirfd, path, uid | 0, gid | 0, flags),
  fchmod: (fd: number, mode: number): number => sc.iii(NR.fchmod, fd, mode, 0),
  /**
   * The kernel's fchmodat has no flags argument (glibc emulates
   * AT_SYMLINK_NOFOLLOW): it follows a final symlink; see `fchmodat2`.
   */
  fchmodat: (dirfd: number, path: Buf, mode: number): number =>
    sc.ibii(NR.fchmodat, dirfd, path, mode, 0),
  fchmodat2: (dirfd: number, path: Buf, mode: number, flags: number): number =>
    sc.ibii(NR.fchmodat2, dirfd, path, mode, flags),
  fchown: (fd: number, uid: number, gid: number): number =>
    sc.iii(NR.fchown, fd, uid | 0, gid | 0),
  /** A null `path` sets the times of `dirfd` itself (futimens). */
  utimensat: (dirfd: number, path: Buf, times: Buf, flags: number): number =>
    sc.ibbli(NR.utimensat, dirfd, path, times, b(flags), 0),
  futimens: (fd: number, times: Buf): number =>
    sc.ibbli(NR.utimensat, fd, null, times, 0n, 0),
  statx: (
    dirfd: number,
    path: Buf,
    flags: number,
    mask: number,
    out: Buf,
  ): number => sc.ibiib(NR.statx, dirfd, path, flags, mask, out),
  readlinkat: (dirfd: number, path: Buf, buf: Buf, size: Int): number =>
    sc.ibbli(NR.readlinkat, dirfd, path, buf, cap(size), 0),
  getdents64: (fd: number, buf: Buf, count: Int): number =>
    sc.ibll(NR.getdents64, fd, buf, cap(count), 0n),
  // extended attributes
  fgetxattr: (fd: number, name: Buf, value: Buf, size: Int): number =>
    sc.ibbli(NR.fgetxattr, fd, name, value, cap(size), 0),
  fsetxattr: (
    fd: number,
    name: Buf,
    value: Buf,
    size: Int,
    flags: number,
  ): number => sc.ibbli(NR.fsetxattr, fd, name, value, b(size), flags),
  flistxattr: (fd: number, list: Buf, size: Int): number =>
    sc.ibll(NR.flistxattr, fd, list, cap(size), 0n),
  fremovexattr: (fd: number, name: Buf): number =>
    sc.ibii(NR.fremovexattr, fd, name, 0, 0),
  lgetxattr: (path: Buf, name: Buf, value: Buf, size: Int): number =>
    sc.bbbli(NR.lgetxattr, path, name, value, cap(size), 0),
  lsetxattr: (
    path: Buf,
    name: Buf,
    value: Buf,
    size: Int,
    flags: number,
  ): number => sc.bbbli(NR.lsetxattr, path, name, value, b(size), flags),
  llistxattr: (path: Buf, list: Buf, size: Int): number =>
    sc.bbl(NR.llistxattr, path, list, cap(size)),
  // listxattrat(int dfd, const char *path, unsigned at_flags, char *list, size_t size): 6.13+
  listxattrat: (
    dirfd: number,
    path: Buf,
    atFlags: number,
    list: Buf,
    size: Int,
  ): number => sc.ibibl(NR.listxattrat, dirfd, path, atFlags, list, cap(size)),
  // getxattrat(int dfd, const char *path, unsigned at_flags, const char *name, struct xattr_args *, size_t): 6.13+
  getxattrat: (
    dirfd: number,
    path: Buf,
    atFlags: number,
    name: Buf,
    args: Buf,
    size: Int,
  ): number =>
    sc.ibibbl(NR.getxattrat, dirfd, path, atFlags, name, args, b(size)),
};

type Symbols = typeof symbols;

/** glibc's answer to a device number the kernel cannot take. */
function einval(): never {
  throw new SysError("mknodat", 22);
}

/** The shapes bound so far (for the start-up test). */
export function boundShapes(): string[] {
  return Object.keys(SHAPES).filter((k) =>
    typeof Object.getOwnPropertyDescriptor(sc, k)?.value === "function"
  );
}

let errnoView: Deno.UnsafePointerView | undefined;

/**
 * Binds `__errno_location` before anything else: binding a symbol later,
 * between a failed call and the read of its errno, could change errno.
 */
function bindErrno(): Deno.UnsafePointerView {
  const p = fns.__errno_location();
  if (p === null) throw new Error("libc: __errno_location returned NULL");
  return errnoView = new Deno.UnsafePointerView(p);
}

/** The system calls (each shape bound on first use, so importing is free). */
export function libc(): Symbols {
  if (errnoView === undefined) bindErrno();
  return symbols;
}

/** The calling thread's current `errno`. */
export function errno(): number {
  return (errnoView ?? bindErrno()).getInt32(0);
}

const encoder = new TextEncoder();

/**
 * Writes `s` NUL-terminated into `out` (room for `3 * s.length + 1` bytes);
 * returns the length with the NUL. ASCII char by char (an encoder call costs
 * more than a short name), the rest through the encoder.
 */
function encodeCstr(s: string, out: Uint8Array): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c > 0x7f) {
      // An embedded NUL would silently cut the path short ("..\0x" -> "..").
      if (s.includes("\0")) {
        throw new SysError("path", 22, s.replaceAll("\0", "\\0"));
      }
      const { written } = encoder.encodeInto(s, out);
      out[written] = 0;
      return written + 1;
    }
    out[i] = c;
  }
  out[n] = 0;
  return n + 1;
}

/** A NUL-terminated copy of `s` for passing to libc. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(s.length * 3 + 1);
  return out.subarray(0, encodeCstr(s, out));
}

/** The buffer {@link scratchCstr} encodes into: a path of PATH_MAX UTF-16 units, as UTF-8. */
const scratch = new Uint8Array(3 * 4096 + 1);

/**
 * `s` NUL-terminated like {@link cstr}, but at the start of one buffer that
 * every call reuses (the bytes after the NUL are left from earlier calls; a
 * string too long for it gets its own {@link cstr}). Valid only until the
 * next call, so pass it straight to one libc call and keep nothing. For
 * per-entry hot paths: in Deno 2.9.6 every `new Uint8Array` costs ~0.3-0.7
 * µs (its backing store is allocated off the V8 heap and freed by a
 * background sweeper), more than the syscall it would feed, and even a view
 * of the buffer is a ~100-byte object per call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scratchCstr } from "./libc_linux.ts";
 * assert.deepEqual([...scratchCstr("abc").subarray(0, 4)], [0x61, 0x62, 0x63, 0]);
 * assert.deepEqual([...scratchCstr("é").subarray(0, 3)], [0xc3, 0xa9, 0]);
 * assert.throws(() => scratchCstr("a\0b"), /EINVAL/);
 * ```
 */
export function scratchCstr(s: string): Uint8Array<ArrayBuffer> {
  if (s.length * 3 + 1 > scratch.length) return cstr(s);
  encodeCstr(s, scratch);
  return scratch;
}

/**
 * NUL-terminated copies of many strings, as views of one buffer: one
 * allocation instead of one per string (500 lower dirs of an overlay).
 */
export function cstrs(strings: string[]): Uint8Array<ArrayBuffer>[] {
  let size = 0;
  for (const s of strings) size += s.length * 3 + 1;
  const all = new Uint8Array(size);
  const out: Uint8Array<ArrayBuffer>[] = [];
  let off = 0;
  for (const s of strings) {
    const n = encodeCstr(s, all.subarray(off));
    out.push(all.subarray(off, off + n));
    off += n;
  }
  return out;
}

/** A NUL-terminated copy of raw name bytes (names from tar need not be UTF-8). */
export function cbytes(b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/**
 * A failed system call: carries the errno number and name and the operation.
 * Higher layers translate it into the typed errors of `src/errors.ts`.
 */
export class SysError extends Error {
  /** errno value, e.g. 2. */
  readonly errno: number;
  /** errno name, e.g. "ENOENT". */
  readonly code: string;
  /** The call that failed, e.g. "openat2". */
  readonly syscall: string;
  /** The path the call was about, when there is one. */
  readonly path?: string;

  constructor(syscall: string, errnum: number, path?: string) {
    const code = errnoName(errnum);
    super(`${syscall}${path === undefined ? "" : ` "${path}"`}: ${code}`);
    this.name = "SysError";
    this.errno = errnum;
    this.code = code;
    this.syscall = syscall;
    this.path = path;
  }
}

/** Throws {@link SysError} when `ret` is negative; returns it otherwise. */
export function check(
  ret: number | bigint,
  syscall: string,
  path?: string | Uint8Array,
): number {
  const n = Number(ret);
  if (n < 0) {
    const e = errno();
    throw new SysError(
      syscall,
      e,
      typeof path === "object" ? shown(path) : path,
    );
  }
  return n;
}

/**
 * A raw (possibly NUL-terminated) name as text, for an error message: only
 * decoded when a call failed (decoding every name on success cost a pack of
 * 55k files ~80 ms).
 */
function shown(name: Uint8Array): string {
  const end = name.indexOf(0);
  return new TextDecoder().decode(end < 0 ? name : name.subarray(0, end));
}
