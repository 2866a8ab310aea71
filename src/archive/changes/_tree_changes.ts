/**
 * Internal: Changes between two full trees (the vfs backend: a layer's dir is
 * a complete copy of its parent plus its changes), after moby's
 * `ChangesDirs` (pkg/archive/changes.go, changes_linux.go):
 *
 * - both trees are walked in parallel, names merged in byte order; an entry
 *   with the same inode on the same device in both is unchanged and skipped
 *   with its subtree (moby's getdents pruning);
 * - a name only in the new tree is an "add" (with everything below it), only
 *   in the old tree a "delete" (its subtree is not listed);
 * - a name in both is a "modify" when mode (type and permission bits), owner,
 *   rdev, or, for non-directories, size or mtime differ, or the xattrs differ;
 * - a directory with any change below it is a "modify" unless already listed.
 *
 * Differences from moby, on purpose: mtimes are compared to the nanosecond
 * (moby treats "same second, either side 0 ns" as equal, a leftover from tars
 * without sub-second times; layerfs' tars carry them), and every content
 * xattr is compared (moby compares only `security.capability`, so a change to
 * a `user.*` xattr alone went unreported). File contents are not compared when
 * size and mtime agree, as in moby: reading every file of both trees would
 * make Changes cost as much as copying the image.
 *
 * @module
 */

import {
  type DirEntry,
  openDirAt,
  readDirFd,
  readXattrsAt,
  type Stat,
  statxAtOrNull,
} from "../../sys/fs_walk_linux.ts";
import { close, O, openat } from "../../sys/fd_linux.ts";
import type { Change, WhiteoutCodec } from "../types.ts";
import { sameContentXattrs } from "../whiteout/oci.ts";
import { ChangeList, entryName, sortEntries } from "./_change_list.ts";

/** Called for each add/modify with the new tree's stat (DiffSize uses it). */
export type TreeVisitor = (
  path: string,
  kind: Change["kind"],
  st: Stat,
) => void;

function statDifferent(o: Stat, n: Stat): boolean {
  if (
    o.kind !== n.kind || o.mode !== n.mode || o.uid !== n.uid ||
    o.gid !== n.gid || o.rdevMajor !== n.rdevMajor ||
    o.rdevMinor !== n.rdevMinor
  ) return true;
  if (o.kind === "dir") return false;
  return o.size !== n.size || o.mtimeSec !== n.mtimeSec ||
    o.mtimeNsec !== n.mtimeNsec;
}

class TreeWalk {
  readonly list = new ChangeList();
  readonly #sameDevice: boolean;
  readonly #codec: WhiteoutCodec;
  readonly #visit?: TreeVisitor;

  constructor(sameDevice: boolean, codec: WhiteoutCodec, visit?: TreeVisitor) {
    this.#sameDevice = sameDevice;
    this.#codec = codec;
    this.#visit = visit;
  }

  #record(path: string, kind: Change["kind"], st: Stat | null): void {
    this.list.record(path, kind);
    if (st && kind !== "delete") this.#visit?.(path, kind, st);
  }

  /** Everything below a new directory that has no counterpart: all adds. */
  #addAll(fd: number, path: string): void {
    for (const e of sortEntries(readDirFd(fd))) {
      const p = `${path}/${entryName(e, path)}`;
      const st = statxAtOrNull(fd, e.cname);
      if (!st) continue; // removed while we walk
      this.#record(p, "add", st);
      if (st.kind === "dir") {
        const sub = openDirAt(fd, e.cname);
        try {
          this.#addAll(sub, p);
        } finally {
          close(sub);
        }
      }
    }
  }

  /** Compares directory `nfd` (new) with `ofd` (old); returns true when anything below changed. */
  compare(nfd: number, ofd: number, path: string): boolean {
    const ne = sortEntries(readDirFd(nfd));
    const oe = sortEntries(readDirFd(ofd));
    let changed = false;
    let i = 0;
    let j = 0;
    while (i < ne.length || j < oe.length) {
      let n: DirEntry | null = null;
      let o: DirEntry | null = null;
      const c = i >= ne.length
        ? 1
        : j >= oe.length
        ? -1
        : cmpBytes(ne[i].cname, oe[j].cname);
      if (c < 0) n = ne[i++];
      else if (c > 0) o = oe[j++];
      else {
        n = ne[i++];
        o = oe[j++];
        // Same inode on the same device: the very same file, unchanged.
        if (this.#sameDevice && n.ino === o.ino) continue;
      }
      const name = entryName((n ?? o)!, path);
      const p = `${path}/${name}`;
      const nst = n ? statxAtOrNull(nfd, n.cname) : null;
      const ost = o ? statxAtOrNull(ofd, o.cname) : null;
      if (!nst) {
        if (ost) {
          this.#record(p, "delete", null);
          changed = true;
        }
        continue;
      }
      let listed = false;
      if (!ost) {
        this.#record(p, "add", nst);
        listed = true;
      } else if (
        statDifferent(ost, nst) ||
        !sameContentXattrs(
          this.#codec,
          readXattrsAt(ofd, o!.cname),
          readXattrsAt(nfd, n!.cname),
        )
      ) {
        this.#record(p, "modify", nst);
        listed = true;
      }
      if (listed) changed = true;
      if (nst.kind !== "dir") continue;
      const sub = openDirAt(nfd, n!.cname);
      try {
        if (ost && ost.kind === "dir") {
          const osub = openDirAt(ofd, o!.cname);
          let inner: boolean;
          try {
            inner = this.compare(sub, osub, p);
          } finally {
            close(osub);
          }
          if (inner && !listed) this.#record(p, "modify", nst);
          if (inner) changed = true;
        } else {
          this.#addAll(sub, p);
        }
      } finally {
        close(sub);
      }
    }
    return changed;
  }

  addRoot(fd: number): void {
    this.#addAll(fd, "");
  }
}

function cmpBytes(x: Uint8Array, y: Uint8Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * Changes of the full tree `newDir` against the full tree `oldDir` (or
 * against nothing: everything is an add); `codec` says which xattrs are content.
 */
export function treeChanges(
  newDir: string,
  oldDir: string | undefined,
  codec: WhiteoutCodec,
  visit?: TreeVisitor,
): Change[] {
  const nfd = openat(-100, newDir, O.RDONLY | O.DIRECTORY);
  try {
    if (oldDir === undefined) {
      const w = new TreeWalk(false, codec, visit);
      w.addRoot(nfd);
      return w.list.sorted();
    }
    const ofd = openat(-100, oldDir, O.RDONLY | O.DIRECTORY);
    try {
      const a = statxAtOrNull(nfd, ".")!;
      const b = statxAtOrNull(ofd, ".")!;
      const w = new TreeWalk(a.dev === b.dev, codec, visit);
      w.compare(nfd, ofd, "");
      return w.list.sorted();
    } finally {
      close(ofd);
    }
  } finally {
    close(nfd);
  }
}
