/**
 * Internal: whether a layer's dir changed after its tar-split record was
 * published. Publishing renames the record into place after the layer's
 * dir, and a rename moves the record's ctime to that moment; every later
 * change to an entry of the layer (content, mode, owner, xattrs, a link
 * count) moves that entry's ctime, and adding, removing or renaming an
 * entry moves its directory's. So one statx per entry finds what the
 * record's own checks (each file's size and crc32, the whole tar's sha256)
 * cannot: a file added, or a mode, owner or xattr changed in place.
 *
 * The top directory is judged by its mtime instead when overlayfs has
 * marked it (see `rootTime`). It errs only towards "changed" otherwise: a
 * store copied with `cp -a` gets new
 * ctimes, and such a layer is then exported afresh (a new DiffID), never
 * passed off as the original. A change within the same clock tick as the
 * publish (the kernel's coarse clock, a few ms) is not seen.
 *
 * @module
 */

import { close } from "../../sys/fd_linux.ts";
import { fgetxattr } from "../../sys/fs_at_linux.ts";
import { SysError } from "../../sys/libc_linux.ts";
import {
  type Ctime,
  ctimeAt,
  type DirEntry,
  displayName,
  DT,
  openDirAt,
  readDirFd,
  statxAt,
} from "../../sys/fs_walk_linux.ts";

const later = (a: Ctime, b: Ctime) =>
  a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec);

/**
 * The time that says whether the layer's top directory changed: its ctime,
 * unless overlayfs marked it as an upper dir (read-only views had the layer
 * as upperdir before 2026-12-08, and still do for a layer with 500 parents;
 * the kernel then writes `*.overlay.uuid` on it, moving its ctime though
 * nothing of the layer changed). Then its mtime, which only a top-level entry added, removed or
 * renamed moves (extraction set it from the tar): a mode, owner or xattr
 * changed on the top directory itself goes unseen in that case.
 */
function rootTime(dirfd: number): Ctime {
  const has = (name: string) => {
    try {
      return fgetxattr(dirfd, name) !== null;
    } catch {
      return false; // no xattrs here (or not ours to read): not marked
    }
  };
  const marked = has("trusted.overlay.uuid") || has("user.overlay.uuid");
  if (!marked) return ctimeAt(dirfd, ".");
  const st = statxAt(dirfd, ".");
  return { sec: st.mtimeSec, nsec: st.mtimeNsec };
}

const unreadable = (e: unknown) =>
  e instanceof SysError && (e.code === "EACCES" || e.code === "EPERM");

/**
 * The first entry of the tree at `dirfd` (its root included, as ".") whose
 * ctime is later than `since`, as a root-relative path, or null when none
 * is. Walks with fds, never following a symlink. With `filesSeen`, regular
 * files are left to the caller, which stats each as it opens it (the
 * rebuild does): only directories and other entries cost a statx here, and
 * a file added still moves its directory's ctime.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { changedSince } from "./_changed_since.ts";
 * import { AT_FDCWD, close } from "../../sys/fd_linux.ts";
 * import { ctimeAt, openDirAt } from "../../sys/fs_walk_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/etc`);
 * await Deno.writeTextFile(`${dir}/etc/hosts`, "x");
 * await Deno.writeTextFile(`${dir}/stamp`, "");
 * const since = ctimeAt(AT_FDCWD, `${dir}/stamp`);
 * const fd = openDirAt(AT_FDCWD, dir);
 * assert.equal(changedSince(fd, since), null);
 * await new Promise((r) => setTimeout(r, 20)); // past the coarse clock's tick
 * await Deno.chmod(`${dir}/etc/hosts`, 0o600);
 * assert.equal(changedSince(fd, since), "etc/hosts");
 * close(fd);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function changedSince(
  dirfd: number,
  since: Ctime,
  filesSeen = false,
): string | null {
  if (later(rootTime(dirfd), since)) return ".";
  // Depth first with an explicit stack: the fds open are those of the
  // directories on the current path (a subdirectory is opened from its
  // parent's fd without following a symlink, so raw, non-UTF-8 names work).
  type Frame = { fd: number; prefix: string; entries: DirEntry[]; at: number };
  // The root read through an fd of its own: reading `dirfd` itself would
  // move its offset, and a second call would see no entries.
  const root = openDirAt(dirfd, ".");
  let rootEntries: DirEntry[];
  try {
    rootEntries = readDirFd(root);
  } finally {
    close(root);
  }
  const stack: Frame[] = [{
    fd: dirfd,
    prefix: "",
    entries: rootEntries,
    at: 0,
  }];
  try {
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.at === top.entries.length) {
        stack.pop();
        if (top.fd !== dirfd) close(top.fd);
        continue;
      }
      const e = top.entries[top.at++];
      if (filesSeen && e.type === DT.REG) continue;
      const path = top.prefix + (e.name ?? displayName(e.cname));
      let isDir = e.type === DT.DIR;
      if (e.type === DT.UNKNOWN) {
        // One statx says both what it is and when it changed.
        const st = statxAt(top.fd, e.cname);
        if (later({ sec: st.ctimeSec, nsec: st.ctimeNsec }, since)) return path;
        if (filesSeen && st.kind === "file") continue;
        isDir = st.kind === "dir";
      } else if (later(ctimeAt(top.fd, e.cname), since)) return path;
      if (!isDir) continue;
      // A directory this process may not read (mode 0311, not root): its
      // own ctime, checked above, still shows entries added or removed.
      let fd: number;
      try {
        fd = openDirAt(top.fd, e.cname);
      } catch (err) {
        if (unreadable(err)) continue;
        throw err;
      }
      try {
        stack.push({ fd, prefix: `${path}/`, entries: readDirFd(fd), at: 0 });
      } catch (err) {
        close(fd);
        if (unreadable(err)) continue;
        throw err;
      }
    }
    return null;
  } finally {
    for (const f of stack) if (f.fd !== dirfd) close(f.fd);
  }
}
