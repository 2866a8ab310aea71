/**
 * statfs(2) and a d_type probe: what the store needs to know about the
 * filesystem under its root before choosing a backend.
 *
 * @module
 */

import { check, cstr, libc } from "./libc_linux.ts";
import { close, O, openat } from "./fd_linux.ts";
import { AT_FDCWD } from "./fd_linux.ts";

/** Filesystem magic numbers (linux/magic.h) layerfs cares about. */
export const FS_MAGIC: Readonly<Record<string, number>> = {
  ext4: 0xef53,
  xfs: 0x58465342,
  btrfs: 0x9123683e,
  tmpfs: 0x01021994,
  overlayfs: 0x794c7630,
  aufs: 0x61756673,
  ecryptfs: 0xf15f,
  nfs: 0x6969,
  zfs: 0x2fc12fc1,
  f2fs: 0xf2f52010,
  fuse: 0x65735546,
  ramfs: 0x858458f6,
};

/** Result of {@link statfs}. */
export interface StatFs {
  /** f_type, the filesystem magic. */
  type: number;
  /** Human name of the magic, or `0x...` when unknown. */
  name: string;
  /** Block size. */
  bsize: number;
  /** Free blocks for unprivileged users. */
  bavail: number;
  /** Maximum name length. */
  namelen: number;
}

/**
 * statfs(2) of `path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statfs } from "./statfs_linux.ts";
 * const root = statfs("/");
 * assert.ok(root.bsize > 0);
 * assert.equal(statfs("/proc").name, "0x9fa0"); // a magic not in FS_MAGIC: in hex
 * ```
 */
export function statfs(path: string): StatFs {
  const buf = new Uint8Array(120);
  check(libc().statfs(cstr(path), buf), "statfs", path);
  const v = new DataView(buf.buffer);
  const type = Number(v.getBigInt64(0, true)) >>> 0;
  const name = Object.entries(FS_MAGIC).find(([, m]) => m === type)?.[0] ??
    `0x${type.toString(16)}`;
  return {
    type,
    name,
    bsize: Number(v.getBigInt64(8, true)),
    bavail: Number(v.getBigUint64(32, true)),
    namelen: Number(v.getBigInt64(64, true)),
  };
}

/**
 * Whether readdir on `dir` reports file types (d_type). overlayfs needs it
 * (moby refuses xfs formatted with ftype=0 for the same reason: whiteouts
 * would be invisible). `dir` must contain at least one entry besides . and ..
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { supportsDType } from "./statfs_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/probe`, "");
 * assert.equal(typeof supportsDType(dir), "boolean"); // true on ext4, xfs (ftype=1), tmpfs
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function supportsDType(dir: string): boolean {
  const fd = openat(AT_FDCWD, dir, O.RDONLY | O.DIRECTORY);
  try {
    const buf = new Uint8Array(32768);
    const v = new DataView(buf.buffer);
    for (;;) {
      const n = check(
        libc().getdents64(fd, buf, buf.byteLength),
        "getdents64",
        dir,
      );
      if (n === 0) return false;
      for (let off = 0; off < n;) {
        const reclen = v.getUint16(off + 16, true);
        const type = buf[off + 18];
        const first = buf[off + 19];
        const second = buf[off + 20];
        const dot = first === 0x2e &&
          (second === 0 || (second === 0x2e && buf[off + 21] === 0));
        if (!dot) return type !== 0;
        off += reclen;
      }
    }
  } finally {
    close(fd);
  }
}
