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
