/**
 * The libc FFI surface: every glibc symbol layerfs calls, each bound on its
 * first use. Only `src/sys/` imports this file; the rest of the code base uses the
 * small typed wrappers next to it.
 *
 * Conventions:
 * - Paths are passed as NUL-terminated byte buffers made by {@link cstr}.
 * - Every wrapper reads `errno` right after a failing call (through the cached
 *   `__errno_location()` pointer) and throws {@link SysError}.
 * - Syscalls that glibc 2.36 has no wrapper for (openat2) go through
 *   `syscall(2)` under an aliased symbol with a fixed signature.
 *
 * @module
 */

import { errnoName } from "./errno.ts";

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  geteuid: { parameters: [], result: "u32" },
  // sighandler_t signal(int signum, sighandler_t handler); handlers as integers
  signal: { parameters: ["i32", "usize"], result: "usize" },
  getegid: { parameters: [], result: "u32" },
  // mounts
  mount: {
    parameters: ["buffer", "buffer", "buffer", "u64", "buffer"],
    result: "i32",
  },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  fsopen: { parameters: ["buffer", "u32"], result: "i32" },
  fsconfig: {
    parameters: ["i32", "u32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  fsmount: { parameters: ["i32", "u32", "u32"], result: "i32" },
  move_mount: {
    parameters: ["i32", "buffer", "i32", "buffer", "u32"],
    result: "i32",
  },
  // long syscall(SYS_open_tree, int dfd, const char *path, unsigned flags)
  syscall_open_tree: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "i64"],
    result: "i64",
  },
  // long syscall(SYS_mount_setattr, int dfd, const char *path, unsigned flags, struct mount_attr *, size_t)
  syscall_mount_setattr: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "i64", "buffer", "u64"],
    result: "i64",
  },
  statfs: { parameters: ["buffer", "buffer"], result: "i32" },
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  // file descriptors
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  // long syscall(long nr, int dirfd, const char *path, struct open_how *how, size_t size)
  syscall_openat2: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "buffer", "u64"],
    result: "i64",
  },
  // long syscall(long nr, int dirfd, const char *path, mode_t mode, int flags): fchmodat2 (6.6+)
  syscall_fchmodat2: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "i64", "i64"],
    result: "i64",
  },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  fsync: { parameters: ["i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  syncfs: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "i64"], result: "i32" },
  copy_file_range: {
    parameters: ["i32", "pointer", "i32", "pointer", "usize", "u32"],
    result: "isize",
  },
  // *at calls
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  mknodat: { parameters: ["i32", "buffer", "u32", "u64"], result: "i32" },
  symlinkat: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  linkat: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  renameat2: {
    parameters: ["i32", "buffer", "i32", "buffer", "u32"],
    result: "i32",
  },
  fchownat: {
    parameters: ["i32", "buffer", "u32", "u32", "i32"],
    result: "i32",
  },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  fchmodat: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  utimensat: {
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  statx: {
    parameters: ["i32", "buffer", "i32", "u32", "buffer"],
    result: "i32",
  },
  readlinkat: {
    parameters: ["i32", "buffer", "buffer", "usize"],
    result: "isize",
  },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // extended attributes
  fgetxattr: {
    parameters: ["i32", "buffer", "buffer", "usize"],
    result: "isize",
  },
  fsetxattr: {
    parameters: ["i32", "buffer", "buffer", "usize", "i32"],
    result: "i32",
  },
  flistxattr: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fremovexattr: { parameters: ["i32", "buffer"], result: "i32" },
  lgetxattr: {
    parameters: ["buffer", "buffer", "buffer", "usize"],
    result: "isize",
  },
  lsetxattr: {
    parameters: ["buffer", "buffer", "buffer", "usize", "i32"],
    result: "i32",
  },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  // long syscall(SYS_listxattrat, int dfd, const char *path, unsigned at_flags, char *list, size_t size): 6.13+
  syscall_listxattrat: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "i64", "buffer", "i64"],
    result: "i64",
  },
  // long syscall(SYS_getxattrat, int dfd, const char *path, unsigned at_flags, const char *name, struct xattr_args *, size_t): 6.13+
  syscall_getxattrat: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "i64", "buffer", "buffer", "i64"],
    result: "i64",
  },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * Libraries opened so far, one per bound symbol: kept referenced, since a
 * collected `DynamicLibrary` may unload its symbols.
 */
const opened: Deno.DynamicLibrary<Deno.ForeignLibraryInterface>[] = [];

/**
 * The symbol table, bound lazily: each symbol is `dlopen`ed on its first
 * use and then stays a plain property. Binding all of them up front cost
 * every process ~6 ms of CPU (Deno 2.9.6 builds a call trampoline per
 * symbol; measured with `perf stat -e task-clock`, a script binding 1 symbol:
 * 13.7 ms, all 60: 19.8 ms), most of them for symbols a command never calls
 * (an apply uses a dozen, no mount calls). Binding a dozen together in one
 * `dlopen` saves nothing: the cost is each symbol's trampoline (~0.2 ms),
 * not the `dlopen` call (tried and measured, 2026-12-02).
 */
const symbols = {} as Symbols;
for (const name of Object.keys(SYMBOLS) as (keyof typeof SYMBOLS)[]) {
  Object.defineProperty(symbols, name, {
    configurable: true,
    enumerable: true,
    get() {
      const l = Deno.dlopen("libc.so.6", { [name]: SYMBOLS[name] });
      opened.push(l);
      const fn = l.symbols[name];
      Object.defineProperty(symbols, name, { value: fn, enumerable: true });
      return fn;
    },
  });
}

let errnoView: Deno.UnsafePointerView | undefined;

/**
 * Binds `__errno_location` before anything else: binding a symbol later,
 * between a failed call and the read of its errno, could change errno.
 */
function bindErrno(): Deno.UnsafePointerView {
  const p = symbols.__errno_location();
  if (p === null) throw new Error("libc: __errno_location returned NULL");
  return errnoView = new Deno.UnsafePointerView(p);
}

/** The libc symbols (each bound on first use, so importing is free). */
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
