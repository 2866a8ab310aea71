/**
 * The helper's lock and its record of the upper and work dirs its mounts use.
 *
 * overlayfs marks an upper and a work dir "in use" by a mount, but with
 * `index=off` (the default) a second mount of the same dirs only logs
 * "upperdir is in-use as upperdir/workdir of another mount, accessing files
 * from both mounts will result in undefined behavior" and goes ahead
 * (fs/overlayfs/super.c, ovl_report_in_use). Two helper calls at once, or one
 * call after the user renamed `diff/ctr` to `diff/ctr2`, would get there. So
 * the helper serialises its work under one lock (all stores: a user listed
 * for two stores can move a dir from one into the other) and remembers, by
 * device and inode (a rename changes neither), which dirs each of its live
 * mounts uses. Both live in a root-only directory under /run, so no caller
 * can hold the lock or edit the record.
 *
 * @module
 */

import { HelperError } from "../src/errors.ts";
import { type MountInfoEntry, overlayLayers } from "../src/mount/mountinfo.ts";
import {
  AT_FDCWD,
  flock,
  fsync,
  LOCK,
  openat2,
  RESOLVE,
  writeAll,
} from "../src/sys/fd_linux.ts";
import { check, cstr, libc, SysError } from "../src/sys/libc_linux.ts";
import { close, fstat, isDir, O, openNoSymlinks, readAllFd } from "./_fs.ts";

/** Where the helper keeps its lock and record (root-only, 0700). */
export const RUN_DIR = "/run/layerfs-helper";
const RECORD = "inuse.json";

/** One live mount made by the helper. */
interface Used {
  /** Mount id (mountinfo field 1). */
  mount: number;
  /** Its superblock's `major:minor` (tells a reused mount id apart). */
  device: string;
  /** `dev:ino` of its upper and work dirs. */
  dirs: string[];
  /** Where it was mounted. */
  target: string;
  /** The upperdir the kernel reports for it. */
  upperdir?: string;
}

const LOCK_WAIT_MS = 30_000;
const LOCK_POLL_MS = 20;

const BELOW = RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS | RESOLVE.BENEATH;

/**
 * Holds the helper's lock until disposed (or the process exits).
 *
 * @example
 * ```ts ignore
 * import { HelperLock } from "./_inuse.ts";
 * using lock = HelperLock.acquire();
 * ```
 */
export class HelperLock implements Disposable {
  #dir: number;
  #lock: number;

  private constructor(dir: number, lock: number) {
    this.#dir = dir;
    this.#lock = lock;
  }

  /** Opens (creating if needed) the run dir and takes the lock, waiting for it. */
  static acquire(): HelperLock {
    // EEXIST is fine: an existing dir is checked below like a new one.
    libc().mkdirat(AT_FDCWD, cstr(RUN_DIR), 0o700);
    let dir: number;
    try {
      dir = openNoSymlinks(RUN_DIR, O.RDONLY | O.DIRECTORY);
    } catch (e) {
      throw new HelperError(
        `Cannot open ${RUN_DIR} without following symlinks (${
          (e as Error).message
        }); remove it and retry`,
      );
    }
    const s = fstat(dir);
    if (!isDir(s) || s.uid !== 0 || (s.mode & 0o077) !== 0) {
      close(dir);
      throw new HelperError(
        `Refusing ${RUN_DIR}: it must be a directory owned by root with mode 0700; remove it and retry`,
      );
    }
    let lock: number;
    try {
      lock = openat2(dir, "lock", O.RDWR | O.CREAT | O.NOFOLLOW, BELOW, 0o600);
    } catch (e) {
      close(dir);
      throw new HelperError(
        `Cannot open the helper's lock ${RUN_DIR}/lock: ${
          (e as Error).message
        }`,
      );
    }
    // Bounded wait: a request stuck in the kernel (a store on a stalled
    // filesystem) must not queue every later caller of the helper forever.
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0;; waited += LOCK_POLL_MS) {
      try {
        flock(lock, LOCK.EX | LOCK.NB);
        break;
      } catch (e) {
        if (!(e instanceof SysError && e.code === "EAGAIN")) {
          close(lock);
          close(dir);
          throw new HelperError(
            `Cannot take the helper's lock ${RUN_DIR}/lock: ${
              (e as Error).message
            }`,
          );
        }
        if (waited >= LOCK_WAIT_MS) {
          close(lock);
          close(dir);
          throw new HelperError(
            `Another helper request has held ${RUN_DIR}/lock for ${
              LOCK_WAIT_MS / 1000
            } s; retry later (is a store on a stalled filesystem?)`,
          );
        }
        Atomics.wait(nap, 0, 0, LOCK_POLL_MS);
      }
    }
    return new HelperLock(dir, lock);
  }

  #read(): Used[] {
    let fd: number;
    try {
      fd = openat2(this.#dir, RECORD, O.RDONLY | O.NOFOLLOW, BELOW);
    } catch (e) {
      if (e instanceof SysError && e.code === "ENOENT") return [];
      throw e;
    }
    try {
      const v = JSON.parse(new TextDecoder().decode(readAllFd(fd, 16 << 20)));
      return Array.isArray(v) ? v : [];
    } catch {
      return []; // only root writes it; a torn file is rebuilt from scratch
    } finally {
      close(fd);
    }
  }

  #write(used: Used[]): void {
    const tmp = `${RECORD}.tmp`;
    const fd = openat2(
      this.#dir,
      tmp,
      O.WRONLY | O.CREAT | O.TRUNC | O.NOFOLLOW,
      BELOW,
      0o600,
    );
    try {
      writeAll(fd, new TextEncoder().encode(JSON.stringify(used)));
      fsync(fd);
    } finally {
      close(fd);
    }
    check(
      libc().renameat2(this.#dir, cstr(tmp), this.#dir, cstr(RECORD), 0),
      "renameat2",
    );
  }

  /**
   * The recorded mounts still alive per `info`; records the pruned list.
   * Mount ids and overlay device numbers are both reused as soon as they are
   * free (the kernel allocates the lowest), so a record is alive only while
   * a mount with its id, device, mount point and upperdir is there.
   */
  #live(info: MountInfoEntry[]): Used[] {
    const all = this.#read();
    const live = all.filter((u) =>
      info.some((m) =>
        m.id === u.mount && m.device === u.device &&
        m.mountPoint === u.target && overlayLayers(m).upperdir === u.upperdir
      )
    );
    if (live.length !== all.length) this.#write(live);
    return live;
  }

  /**
   * The target of a live helper mount that uses one of `dirs` (`dev:ino`),
   * or undefined.
   */
  usedBy(dirs: string[], info: MountInfoEntry[]): string | undefined {
    return this.#live(info).find((u) => u.dirs.some((d) => dirs.includes(d)))
      ?.target;
  }

  /** Records that mount `entry` uses `dirs`. */
  record(entry: MountInfoEntry, dirs: string[], info: MountInfoEntry[]): void {
    const live = this.#live(info).filter((u) => u.mount !== entry.id);
    live.push({
      mount: entry.id,
      device: entry.device,
      dirs,
      target: entry.mountPoint,
      upperdir: overlayLayers(entry).upperdir,
    });
    this.#write(live);
  }

  /** Drops the record of mount `id` (the helper has just unmounted it). */
  forget(id: number, info: MountInfoEntry[]): void {
    const all = this.#read();
    const kept = all.filter((u) => u.mount !== id);
    if (kept.length !== all.length) this.#write(kept);
    this.#live(info);
  }

  /** Releases the lock. */
  [Symbol.dispose](): void {
    close(this.#lock);
    close(this.#dir);
  }
}
