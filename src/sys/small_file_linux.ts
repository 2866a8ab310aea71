/**
 * Tiny files on the hot path of `get` and `put`: read whole, written in
 * place with one write(2), deleted, and lock files taken without waiting.
 * Synchronous and exception-free for the expected "absent" and "busy"
 * answers: a thrown `Deno.errors.NotFound` costs ~0.1 ms (more than the
 * syscalls), and an `await` of an async file op costs a thread hop.
 *
 * @module
 */

import { Errno } from "./errno.ts";
import { AT_FDCWD, close, LOCK, O } from "./fd_linux.ts";
import { cstr, errno, libc, SysError } from "./libc_linux.ts";

/**
 * Reads all of the file at `path` (not followed if a symlink) into `buf`.
 *
 * @returns The bytes read (at most `buf.length`), or -1 when the file does
 *   not exist.
 * @throws {SysError} on any other failure (ELOOP for a symlink).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSmallFile } from "./small_file_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/n`, "3\n");
 * const buf = new Uint8Array(64);
 * assert.equal(readSmallFile(`${dir}/n`, buf), 2);
 * assert.equal(readSmallFile(`${dir}/gone`, buf), -1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readSmallFile(
  path: string,
  buf: Uint8Array<ArrayBuffer>,
): number {
  const c = libc();
  const fd = c.openat(
    AT_FDCWD,
    cstr(path),
    O.RDONLY | O.NOFOLLOW | O.CLOEXEC,
    0,
  );
  if (fd < 0) {
    const e = errno();
    if (e === Errno.ENOENT) return -1;
    throw new SysError("openat", e, path);
  }
  try {
    let off = 0;
    while (off < buf.length) {
      const n = c.read(fd, buf.subarray(off), buf.length - off);
      if (n < 0) throw new SysError("read", errno(), path);
      if (n === 0) break;
      off += n;
    }
    return off;
  } finally {
    close(fd);
  }
}

/**
 * Writes `bytes` over the start of the file at `path` with one write(2),
 * creating it (mode 0644) if missing unless `create` is false (then a
 * missing file stays missing and the result is false); the file is never
 * truncated, so a
 * killed writer leaves the old bytes or the new ones, never a mix (a write
 * within one page is not interrupted by SIGKILL). A file this call created is
 * deleted again when the write fails, so a full disk leaves nothing.
 *
 * @throws {SysError} from openat or write (ENOSPC on a full filesystem).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeSmallFile } from "./small_file_linux.ts";
 * const dir = await Deno.makeTempDir();
 * writeSmallFile(`${dir}/n`, new TextEncoder().encode("10\n"));
 * writeSmallFile(`${dir}/n`, new TextEncoder().encode("9\n"));
 * assert.equal(await Deno.readTextFile(`${dir}/n`), "9\n\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function writeSmallFile(
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
  create = true,
): boolean {
  const c = libc();
  const p = cstr(path);
  const flags = O.WRONLY | O.NOFOLLOW | O.CLOEXEC;
  // Existing first: the common case (a count changing) is one openat.
  let created = false;
  let fd = c.openat(AT_FDCWD, p, flags, 0);
  if (fd < 0 && errno() === Errno.ENOENT) {
    if (!create) return false;
    created = true;
    fd = c.openat(AT_FDCWD, p, flags | O.CREAT | O.EXCL, 0o644);
  }
  if (fd < 0) throw new SysError("openat", errno(), path);
  let failure: SysError | undefined;
  const n = c.write(fd, bytes, bytes.length);
  if (n !== bytes.length) {
    // A short write of a few bytes only happens when the disk is full.
    failure = new SysError("write", n < 0 ? errno() : Errno.ENOSPC, path);
  }
  close(fd);
  if (failure) {
    if (created) c.unlinkat(AT_FDCWD, p, 0);
    throw failure;
  }
  return true;
}

/**
 * Deletes the file at `path`; returns false when it did not exist.
 *
 * @throws {SysError} on any other failure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeSmallFile } from "./small_file_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/n`, "1\n");
 * assert.equal(removeSmallFile(`${dir}/n`), true);
 * assert.equal(removeSmallFile(`${dir}/n`), false);
 * await Deno.remove(dir);
 * ```
 */
export function removeSmallFile(path: string): boolean {
  if (libc().unlinkat(AT_FDCWD, cstr(path), 0) === 0) return true;
  const e = errno();
  if (e === Errno.ENOENT) return false;
  throw new SysError("unlinkat", e, path);
}

/**
 * Opens (creating it) the lock file at `path` and takes its exclusive flock
 * without waiting. Each call is its own open file, so it excludes other
 * calls in this process as well as other processes; closing the returned fd
 * (fd_linux.ts `close`) releases the lock, and so does the kernel when the
 * process dies.
 *
 * @returns The fd holding the lock, or null when someone else holds it.
 * @throws {SysError} when the file cannot be opened or locked for another reason.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tryLockFile } from "./small_file_linux.ts";
 * import { close } from "./fd_linux.ts";
 * const dir = await Deno.makeTempDir();
 * const fd = tryLockFile(`${dir}/lock`);
 * assert.notEqual(fd, null);
 * assert.equal(tryLockFile(`${dir}/lock`), null); // held by the first open
 * close(fd!);
 * const again = tryLockFile(`${dir}/lock`);
 * assert.notEqual(again, null);
 * close(again!);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function tryLockFile(path: string): number | null {
  const c = libc();
  const fd = c.openat(
    AT_FDCWD,
    cstr(path),
    O.RDWR | O.CREAT | O.CLOEXEC,
    0o666,
  );
  if (fd < 0) throw new SysError("openat", errno(), path);
  if (c.flock(fd, LOCK.EX | LOCK.NB) === 0) return fd;
  const e = errno();
  close(fd);
  if (e === Errno.EAGAIN) return null; // EWOULDBLOCK
  throw new SysError("flock", e, path);
}
