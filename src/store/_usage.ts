/**
 * Internal: disk usage of a layer's own dir, as containerd's `Usage` reports
 * it: bytes allocated (st_blocks * 512, so sparse files count what they
 * hold) and inodes, each hard-linked inode counted once. Walks from
 * directory fds without following symlinks.
 *
 * @module
 */

import { AT_FDCWD, close } from "../sys/fd_linux.ts";
import { openDirAt, readDirFd, statxAtOrNull } from "../sys/fs_walk_linux.ts";

/** Bytes and inodes. */
export interface Usage {
  /** Bytes allocated on disk. */
  size: number;
  /** Inodes (files, dirs, links, devices; each hard-linked inode once). */
  inodes: number;
}

/** Usage of the tree at `dir` (the directory itself included). */
export function diskUsage(dir: string): Usage {
  const seen = new Set<string>();
  const u: Usage = { size: 0, inodes: 0 };
  const fd = openDirAt(AT_FDCWD, dir);
  try {
    const top = statxAtOrNull(fd, ".");
    if (top) {
      u.size += top.blocks * 512;
      u.inodes++;
    }
    walk(fd, u, seen);
  } finally {
    close(fd);
  }
  return u;
}

function walk(fd: number, u: Usage, seen: Set<string>): void {
  for (const e of readDirFd(fd)) {
    const st = statxAtOrNull(fd, e.cname);
    if (!st) continue; // removed meanwhile
    if (st.nlink > 1 && st.kind !== "dir") {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    u.size += st.blocks * 512;
    u.inodes++;
    if (st.kind === "dir") {
      const sub = openDirAt(fd, e.cname);
      try {
        walk(sub, u, seen);
      } finally {
        close(sub);
      }
    }
  }
}
