/**
 * Linux errno numbers and names (x86_64 and aarch64 share these values).
 *
 * @module
 */

/** Common Linux errno values by name. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  ENOTBLK: 15,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ENOTSUP: 95,
  ESTALE: 116,
  EDQUOT: 122,
} as const;

const NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(Errno)) {
  if (!NAMES.has(num)) NAMES.set(num, name);
}

/** The symbolic name of an errno value, e.g. `errnoName(2) === "ENOENT"`. */
export function errnoName(n: number): string {
  return NAMES.get(n) ?? `errno ${n}`;
}

/**
 * What to do about an I/O error that is the machine's, not the input's
 * (full disk, size limit, failing device), by errno name; `undefined` for
 * other errors.
 *
 * @param code An errno name, e.g. "ENOSPC".
 * @returns One clause saying what is wrong and what to do.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ioAdvice } from "./errno.ts";
 * assert.equal(
 *   ioAdvice("ENOSPC"),
 *   "the file system is full; free some space or use another file system",
 * );
 * ```
 */
export function ioAdvice(code: string): string | undefined {
  switch (code) {
    case "ENOSPC":
      return "the file system is full; free some space or use another file system";
    case "EDQUOT":
      return "the disk quota is used up; free some space or ask for a larger quota";
    case "EFBIG":
      return "the file is larger than the file system or the process's file size limit allows; " +
        'raise the limit ("ulimit -f unlimited") or use another file system';
    case "EIO":
      return "the device reported an I/O error; check it (dmesg) before retrying";
    case "EROFS":
      return "the file system is read-only; remount it read-write or use another one";
    default:
      return undefined;
  }
}
