/**
 * Mount syscalls: mount(2), umount2(2) and the new mount API (fsopen,
 * fsconfig, fsmount, move_mount). Thin typed wrappers that throw
 * {@link SysError}; only `src/mount/` calls them.
 *
 * @module
 */

import { check, cstr, errno, libc, SysError } from "./libc_linux.ts";
import { AT_FDCWD, close } from "./fd_linux.ts";

/** mount(2) flags used by layerfs. */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  REMOUNT: 0x20,
  BIND: 0x1000,
} as const;

/** umount2(2) flags. */
export const MNT = {
  FORCE: 0x1,
  DETACH: 0x2,
  EXPIRE: 0x4,
  NOFOLLOW: 0x8,
} as const;

/** fsmount(2) `attr_flags` (MOUNT_ATTR_*). */
export const MOUNT_ATTR = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
} as const;

const FSOPEN_CLOEXEC = 1;
const FSMOUNT_CLOEXEC = 1;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH = 0x40;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_SET_FD = 5;
const FSCONFIG_CMD_CREATE = 6;

/**
 * mount(2).
 *
 * @example
 * ```ts ignore
 * import { MS, mount } from "./mount_linux.ts";
 * mount("overlay", "/mnt/x", "overlay", MS.NOSUID | MS.NODEV, "lowerdir=/a:/b");
 * ```
 */
export function mount(
  source: string,
  target: string,
  fstype: string,
  flags: number,
  data: string,
): void {
  check(
    libc().mount(
      cstr(source),
      cstr(target),
      cstr(fstype),
      flags,
      data === "" ? null : cstr(data),
    ),
    "mount",
    target,
  );
}

/**
 * umount2(2).
 *
 * @example
 * ```ts ignore
 * import { MNT, umount2 } from "./mount_linux.ts";
 * umount2("/mnt/x", MNT.DETACH);
 * ```
 */
export function umount2(target: string, flags: number): void {
  check(libc().umount2(cstr(target), flags), "umount2", target);
}

/**
 * An open filesystem context (fsopen(2)); configure it, then
 * {@link FsContext.createMount} and {@link moveMount}. src/mount/perform.ts
 * holds the one sequence layerfs mounts overlays with.
 *
 * @example
 * ```ts ignore
 * import { FsContext, MOUNT_ATTR, moveMount } from "./mount_linux.ts";
 * import { close } from "./fd_linux.ts";
 * const fc = FsContext.open("overlay");
 * try {
 *   fc.setString("lowerdir+", "/a");
 *   fc.setString("upperdir", "/u");
 *   fc.setString("workdir", "/w");
 *   const mfd = fc.createMount(MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV);
 *   moveMount(mfd, "/mnt/x");
 *   close(mfd);
 * } finally {
 *   fc.close();
 * }
 * ```
 */
export class FsContext {
  #fd: number;
  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** fsopen(2) of `fstype`. */
  static open(fstype: string): FsContext {
    return new FsContext(
      check(libc().fsopen(cstr(fstype), FSOPEN_CLOEXEC), "fsopen", fstype),
    );
  }

  /** fsconfig(FSCONFIG_SET_STRING, key, value). */
  setString(key: string, value: string): void {
    this.#check(
      libc().fsconfig(this.#fd, FSCONFIG_SET_STRING, cstr(key), cstr(value), 0),
      `fsconfig ${key}`,
      value,
    );
  }

  /**
   * fsconfig(FSCONFIG_SET_STRING) with key and value already encoded
   * ({@link cstr}, {@link cstrs}): the loop over hundreds of `lowerdir+`
   * layers allocates nothing per call. `value` names the value in errors.
   */
  setEncoded(
    key: Uint8Array<ArrayBuffer>,
    valueBytes: Uint8Array<ArrayBuffer>,
    keyName: string,
    value: string,
  ): void {
    const r = libc().fsconfig(
      this.#fd,
      FSCONFIG_SET_STRING,
      key,
      valueBytes,
      0,
    );
    if (r < 0) this.#check(r, `fsconfig ${keyName}`, value);
  }

  /** fsconfig(FSCONFIG_SET_FLAG, key). */
  setFlag(key: string): void {
    this.#check(
      libc().fsconfig(this.#fd, FSCONFIG_SET_FLAG, cstr(key), null, 0),
      `fsconfig ${key}`,
    );
  }

  /**
   * fsconfig(FSCONFIG_SET_FD, key, fd): a layer given as an open directory
   * (overlayfs accepts fds for lowerdir+/upperdir/workdir since Linux 6.13), so
   * a path swapped after it was checked cannot redirect the mount.
   */
  setFd(key: string, fd: number): void {
    this.#check(
      libc().fsconfig(this.#fd, FSCONFIG_SET_FD, cstr(key), null, fd),
      `fsconfig ${key}`,
    );
  }

  /**
   * FSCONFIG_CMD_CREATE then fsmount(2) with `attrFlags`: the new mount,
   * still attached nowhere, as an fd the caller closes (after
   * {@link moveMount}; keep it to verify or detach that very mount).
   */
  createMount(attrFlags: number, where = ""): number {
    this.#check(
      libc().fsconfig(this.#fd, FSCONFIG_CMD_CREATE, null, null, 0),
      "fsconfig create",
      where,
    );
    return this.#check(
      libc().fsmount(this.#fd, FSMOUNT_CLOEXEC, attrFlags),
      "fsmount",
      where,
    );
  }

  /**
   * Messages the kernel queued on the context ("e overlayfs: ..."), which
   * say why a fsconfig failed far better than the errno does.
   */
  messages(): string[] {
    const out: string[] = [];
    const buf = new Uint8Array(1024);
    for (let i = 0; i < 16; i++) {
      const n = libc().read(this.#fd, buf, buf.byteLength);
      if (n <= 0) break;
      out.push(new TextDecoder().decode(buf.subarray(0, n)));
    }
    return out;
  }

  /** Closes the context. */
  close(): void {
    if (this.#fd >= 0) close(this.#fd);
    this.#fd = -1;
  }

  #check(ret: number, op: string, path?: string): number {
    if (ret < 0) {
      const e = errno();
      const msgs = this.messages();
      const err = new SysError(op, e, path);
      if (msgs.length) {
        (err as { kernelMessages?: string[] }).kernelMessages = msgs;
      }
      throw err;
    }
    return ret;
  }
}

/**
 * move_mount(2) of a detached mount fd (from {@link FsContext.createMount})
 * onto a path, or onto an already-opened directory fd (MOVE_MOUNT_T_EMPTY_PATH).
 * A final symlink in a path is not followed (no MOVE_MOUNT_T_SYMLINKS).
 *
 * @example
 * ```ts ignore
 * import { FsContext, moveMount } from "./mount_linux.ts";
 * const fc = FsContext.open("tmpfs");
 * const mfd = fc.createMount(0);
 * moveMount(mfd, "/mnt/x");
 * ```
 */
export function moveMount(mfd: number, target: string | number): void {
  const c = libc();
  check(
    typeof target === "string"
      ? c.move_mount(
        mfd,
        cstr(""),
        AT_FDCWD,
        cstr(target),
        MOVE_MOUNT_F_EMPTY_PATH,
      )
      : c.move_mount(
        mfd,
        cstr(""),
        target,
        cstr(""),
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
      ),
    "move_mount",
    typeof target === "string" ? target : `fd ${target}`,
  );
}

const STATX_MNT_ID = 0x1000;
const AT_EMPTY_PATH = 0x1000;

/**
 * The id of the mount `fd` is on (statx STATX_MNT_ID): the first field of
 * its /proc/self/mountinfo line.
 *
 * @example
 * ```ts ignore
 * import { mountIdOf } from "./mount_linux.ts";
 * console.log(mountIdOf(mfd));
 * ```
 */
export function mountIdOf(fd: number): number {
  const buf = new Uint8Array(256);
  check(
    libc().statx(fd, cstr(""), AT_EMPTY_PATH, STATX_MNT_ID, buf),
    "statx",
  );
  return Number(new DataView(buf.buffer).getBigUint64(144, true));
}

/**
 * The id of the mount whose root or inside `path` is (statx STATX_MNT_ID,
 * the last component not followed): equal to {@link mountIdOf} of a mount fd
 * exactly when that mount is what `path` shows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mountIdAt } from "./mount_linux.ts";
 * assert.notEqual(mountIdAt("/proc"), mountIdAt("/")); // /proc is a mount of its own
 * ```
 */
export function mountIdAt(path: string): number {
  const buf = new Uint8Array(256);
  check(
    libc().statx(AT_FDCWD, cstr(path), AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, buf),
    "statx",
    path,
  );
  return Number(new DataView(buf.buffer).getBigUint64(144, true));
}

/** statfs(2) `f_flags` bits of a mount (ST_*). */
export const ST = { RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4 } as const;

/**
 * The filesystem magic (`f_type`) and mount flags (`f_flags`, {@link ST})
 * of the mount `fd` is open on (fstatfs(2)): what a mount fd says about
 * itself without a look at /proc/self/mountinfo.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fsFactsOf } from "./mount_linux.ts";
 * import { AT_FDCWD, close, O, openat } from "./fd_linux.ts";
 * const fd = openat(AT_FDCWD, "/proc", O.RDONLY | O.DIRECTORY);
 * assert.equal(fsFactsOf(fd).type, 0x9fa0); // PROC_SUPER_MAGIC
 * close(fd);
 * ```
 */
export function fsFactsOf(fd: number): { type: number; flags: number } {
  const buf = new Uint8Array(120);
  check(libc().fstatfs(fd, buf), "fstatfs");
  const v = new DataView(buf.buffer);
  return {
    type: Number(v.getBigInt64(0, true)) >>> 0,
    flags: Number(v.getBigInt64(80, true)),
  };
}

/**
 * Lazily unmounts (MNT_DETACH) exactly the mount `fd` is open on, through
 * its /proc/self/fd magic link: the kernel resolves it to that mount,
 * wherever a rename has taken it since.
 *
 * @example
 * ```ts ignore
 * import { detachFd } from "./mount_linux.ts";
 * detachFd(mfd);
 * ```
 */
export function detachFd(fd: number): void {
  umount2(`/proc/self/fd/${fd}`, MNT.DETACH);
}

const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_SYMLINK_NOFOLLOW = 0x100;

/**
 * open_tree(OPEN_TREE_CLONE) of a directory (a path, not followed if a
 * symlink, or an open fd): a detached bind mount of it, as an fd for
 * {@link setMountAttrs} and {@link moveMount}. Linux 5.2+.
 *
 * @example
 * ```ts ignore
 * import { cloneTree, moveMount, setMountAttrs, MOUNT_ATTR } from "./mount_linux.ts";
 * const mfd = cloneTree("/s/diff/base");
 * setMountAttrs(mfd, MOUNT_ATTR.RDONLY);
 * moveMount(mfd, "/s/mnt/base");
 * ```
 */
export function cloneTree(source: string | number): number {
  const flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
    (typeof source === "string" ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH);
  const r = libc().open_tree(
    typeof source === "string" ? AT_FDCWD : source,
    cstr(typeof source === "string" ? source : ""),
    flags,
  );
  return check(
    Number(r),
    "open_tree",
    typeof source === "string" ? source : `fd ${source}`,
  );
}

/**
 * mount_setattr(2) on a mount fd: sets MOUNT_ATTR_* flags (read-only,
 * nosuid, nodev) on that mount alone, before it is attached. Linux 5.12+.
 *
 * @example
 * ```ts ignore
 * import { cloneTree, MOUNT_ATTR, setMountAttrs } from "./mount_linux.ts";
 * setMountAttrs(cloneTree("/s/diff/base"), MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID);
 * ```
 */
export function setMountAttrs(mfd: number, set: number): void {
  // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; }
  const attr = new Uint8Array(32);
  new DataView(attr.buffer).setBigUint64(0, BigInt(set), true);
  const r = libc().mount_setattr(
    mfd,
    cstr(""),
    AT_EMPTY_PATH,
    attr,
    32n,
  );
  check(Number(r), "mount_setattr", `fd ${mfd}`);
}
