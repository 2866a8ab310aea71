/**
 * Internal: where an export writes (`layerfs diff -o FILE`, `saveImage`,
 * `layerfs save -o FILE`). A regular file (or a new name) is written as an
 * unnamed file in its directory (`O_TMPFILE`), fsynced, given a temporary
 * name and renamed over the target: a failed, interrupted or killed export
 * leaves nothing, not even a temp file, and never a truncated file under the
 * name asked for. Where the file system has no `O_TMPFILE` (some FUSE and
 * network file systems) a named temp beside the target is used, removed on
 * failure. Anything else that already exists (a fifo, a device such as
 * /dev/null, a socket) is written in place: replacing it with a regular file
 * would break whoever else uses it. A symlink is followed, so the file it
 * points to is what gets written, and the link stays. A file bind-mounted
 * onto the name is written in place too (a rename onto a mount point cannot
 * be made). A read-only file is refused (as a shell's `>` refuses it), and
 * so is a directory that takes no new file, with what to do. A replaced file's
 * mode is kept, and its owner where the caller may set it (root); other
 * hard links to it keep the old content (a rename makes a new inode).
 *
 * Every failure names the path asked for, never a temp name.
 *
 * @module
 */

import { nodePath } from "./_node.ts";
import { LayerfsError, UsageError } from "./errors.ts";
import { namedFsError } from "./_fs_error.ts";
import { syncDir } from "./store/_atomic.ts";
import { mountPointState } from "./mount/_mount_point.ts";
import { AT, AT_FDCWD, close, O, openat } from "./sys/fd_linux.ts";
import { fchmod, fchown, linkat } from "./sys/fs_at_linux.ts";
import type { SysError } from "./sys/libc_linux.ts";

/** An open output: write to `file`, then `commit` on success or `abort` on failure. */
export interface Output {
  /** Where to write. */
  file: Deno.FsFile;
  /** Makes the written bytes visible under the name asked for, and closes. */
  commit(): Promise<void>;
  /** Closes and removes what a failed write left (never the target itself). */
  abort(): Promise<void>;
}

/** open(2)'s O_TMPFILE (it includes O_DIRECTORY). */
const O_TMPFILE = 0o20000000 | O.DIRECTORY;

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Resolves a final symlink (chains too); a dangling one is refused. */
async function followLink(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `Cannot write to ${path}: it is a symlink to something that does not exist; ` +
          "pass the target's path or remove the link",
      );
    }
    throw e;
  }
}

/** A temp name beside `path` for the last step (or the whole write, without O_TMPFILE). */
const tempName = (path: string) =>
  `${path}.layerfs-${crypto.randomUUID().slice(0, 8)}.tmp`;

/**
 * An unnamed file in `dir`, as [an fd kept only to link it later, the file
 * to write], or null where the file system cannot make one. The kept fd is
 * O_APPEND so that `writableFdOf` (which finds the FsFile's own fd for the
 * fast export path) never takes it for the file's.
 */
function unnamedFile(dir: string, mode: number): [number, Deno.FsFile] | null {
  let fd: number;
  try {
    fd = openat(AT_FDCWD, dir, O_TMPFILE | O.WRONLY | O.APPEND, mode);
  } catch (e) {
    const code = (e as SysError).code;
    if (code === "EOPNOTSUPP" || code === "EINVAL" || code === "EISDIR") {
      return null;
    }
    throw e;
  }
  try {
    return [fd, Deno.openSync(`/proc/self/fd/${fd}`, { write: true })];
  } catch {
    close(fd);
    return null; // no /proc: a named temp instead
  }
}

/**
 * Gives the new file (the unnamed file's fd, or the named temp) the owner
 * and permission bits of the file it replaces. A chown only root may make
 * (another owner) is skipped: the file is then the caller's, as any file it
 * creates. The mode is set after the chown, which clears setuid bits.
 */
function keepOwnerAndMode(
  fd: number | undefined,
  tmp: string | undefined,
  st: Deno.FileInfo,
): void {
  const mode = st.mode! & 0o777;
  try {
    if (fd !== undefined) fchown(fd, st.uid!, st.gid!);
    else Deno.chownSync(tmp!, st.uid!, st.gid!);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (!(code === "EPERM" || e instanceof Deno.errors.PermissionDenied)) {
      throw e;
    }
  }
  if (fd !== undefined) fchmod(fd, mode);
  else Deno.chmodSync(tmp!, mode);
}

/**
 * Whether `path` is a mount point: statx's STATX_ATTR_MOUNT_ROOT (a file
 * bind-mounted from the same file system has its directory's device), or,
 * on kernels that do not say, a device other than its directory's.
 */
async function isMountPoint(path: string, dir: string): Promise<boolean> {
  const state = mountPointState(path);
  if (state !== "unknown") return state === "mount";
  try {
    return (await Deno.stat(path)).dev !== (await Deno.stat(dir)).dev;
  } catch {
    return false;
  }
}

/**
 * Whether this process may write `st`'s file, by its permission bits (root
 * may write any; a shell's `>` refuses a read-only file for anyone else).
 */
function writableBy(st: Deno.FileInfo): boolean {
  const uid = Deno.uid();
  if (uid === 0 || uid === null) return true;
  const mode = st.mode!;
  if (st.uid === uid) return (mode & 0o200) !== 0;
  if (st.gid === Deno.gid()) return (mode & 0o020) !== 0;
  return (mode & 0o002) !== 0;
}

/**
 * The error for an output whose directory refuses new files: the file is
 * written beside its name first, so the directory must be writable (even
 * when the file itself is). Null for any other failure.
 */
function dirError(e: unknown, path: string, dir: string): LayerfsError | null {
  const code = (e as { code?: string }).code;
  if (
    !(code === "EACCES" || code === "EPERM" ||
      e instanceof Deno.errors.PermissionDenied)
  ) return null;
  return new LayerfsError(
    `Cannot write to ${path}: its directory ${dir} is not writable, and the file is written beside its name until it is complete; write it elsewhere or make ${dir} writable`,
    { cause: e },
  );
}

/**
 * Opens `path` for an export as described in the module doc.
 *
 * @throws {UsageError} `path` is a directory or a dangling symlink.
 * @throws {LayerfsError} It cannot be created (no such directory, no
 *   permission, a read-only file system), naming `path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openOutput } from "./_output_file.ts";
 * const dir = await Deno.makeTempDir();
 * const out = await openOutput(`${dir}/layer.tar`);
 * await out.file.write(new TextEncoder().encode("tar"));
 * assert.deepEqual([...Deno.readDirSync(dir)], []); // nothing visible yet
 * await out.commit();
 * assert.equal(await Deno.readTextFile(`${dir}/layer.tar`), "tar");
 * const failed = await openOutput(`${dir}/other.tar`);
 * await failed.abort();
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["layer.tar"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openOutput(path: string): Promise<Output> {
  const asked = path;
  const named = (e: unknown) => namedFsError(e, "write to", asked);
  let st = await lstatOrNull(path).catch((e) => {
    throw named(e);
  });
  if (st?.isSymlink) {
    path = await followLink(path);
    st = await Deno.stat(path).catch((e) => {
      throw named(e);
    });
  }
  if (st?.isDirectory) {
    throw new UsageError(
      `Cannot write to ${path}: it is a directory; pass a file name, e.g. ${path}/layer.tar`,
    );
  }
  const { dirname, resolve } = nodePath();
  const dir = dirname(resolve(path));
  // A fifo, device or socket, or a file bind-mounted onto the name (a
  // container's `-v out.tar:/out.tar`: a rename onto a mount point fails
  // with EBUSY): in place, as a shell redirection would.
  if (st && (!st.isFile || await isMountPoint(path, dir))) {
    const file = await Deno.open(path, { write: true, truncate: st.isFile })
      .catch((e) => {
        throw named(e);
      });
    return {
      file,
      commit: () => Promise.resolve(file.close()),
      abort: () => Promise.resolve(file.close()),
    };
  }
  if (st && !writableBy(st)) {
    throw new LayerfsError(
      `Cannot write to ${path}: it is read-only (mode ${
        (st.mode! & 0o777).toString(8)
      }); make it writable (chmod u+w) or remove it`,
    );
  }
  // A new file is 0644 less the umask; one replacing a file keeps its mode
  // and, where we may (root), its owner, as writing in place would.
  const mode = st ? st.mode! & 0o777 : 0o644;
  let unnamed: [number, Deno.FsFile] | null;
  try {
    unnamed = unnamedFile(dir, mode);
  } catch (e) {
    throw dirError(e, path, dir) ?? named(e);
  }
  let tmp: string | undefined;
  let file: Deno.FsFile;
  if (unnamed) file = unnamed[1];
  else {
    tmp = tempName(path);
    file = await Deno.open(tmp, { write: true, createNew: true, mode }).catch(
      (e) => {
        throw dirError(e, path, dir) ?? named(e);
      },
    );
  }
  if (st) {
    try {
      keepOwnerAndMode(unnamed?.[0], tmp, st);
    } catch (e) {
      file.close();
      if (unnamed) close(unnamed[0]);
      if (tmp) await Deno.remove(tmp).catch(() => {});
      throw named(e);
    }
  }
  let closed = false;
  const closeAll = () => {
    if (closed) return;
    closed = true;
    file.close();
    if (unnamed) close(unnamed[0]);
  };
  return {
    file,
    async commit() {
      try {
        // Data on disk before the name points at it: after a crash the name
        // holds the old file or the whole new one, never a short one.
        await file.syncData();
        if (unnamed) {
          tmp = tempName(path);
          // linkat of /proc/self/fd/N with AT_SYMLINK_FOLLOW names an
          // O_TMPFILE file without CAP_DAC_READ_SEARCH (AT_EMPTY_PATH needs it).
          linkat(
            AT_FDCWD,
            `/proc/self/fd/${unnamed[0]}`,
            AT_FDCWD,
            tmp,
            AT.SYMLINK_FOLLOW,
          );
        }
        closeAll();
        await Deno.rename(tmp!, path);
        tmp = undefined;
        await syncDir(dir);
      } catch (e) {
        closeAll();
        if (tmp) await Deno.remove(tmp).catch(() => {});
        throw named(e);
      }
    },
    async abort() {
      closeAll();
      if (tmp) await Deno.remove(tmp).catch(() => {});
    },
  };
}
