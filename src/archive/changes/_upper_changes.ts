/**
 * Internal: Changes of an overlay or aufs layer, computed from the layer's own
 * directory (the upper dir) with lookups into its parents, so the cost grows
 * with the layer, not with the image. The rules follow moby's
 * `archive.Changes`/`OverlayChanges` (pkg/archive/changes.go):
 *
 * - every entry of the upper dir is an "add", or a "modify" when the parents'
 *   merged view has the same path;
 * - a directory present in both whose metadata is unchanged is not reported
 *   itself; a directory gets a "modify" when one of its direct children is
 *   added or deleted (moby PR 13590);
 * - whiteouts are "delete"s of what the parents' merged view has; a whiteout
 *   of a path no parent shows (never there, or already hidden by a nearer
 *   parent's whiteout or opaque dir) deletes nothing and is not reported.
 *
 * Where moby is wrong, we differ (each is a test):
 * - Lookups into the parents follow the union's rules (a whiteout or opaque
 *   dir in a nearer parent hides farther ones; a non-directory ends the
 *   lookup), so a file that became a directory works: moby stats
 *   `<parent>/<file>/<child>`, gets ENOTDIR and fails outright.
 * - An opaque directory is a "modify" (or "add" when the parents had no
 *   directory there), and the parents' entries it hides are "delete"s; moby
 *   reports the directory itself as deleted and the hidden entries not at all.
 * - Unchanged-directory check: mode, owner, exact mtime (ns) and content
 *   xattrs; moby compares size, mode and mtime only (a directory's size
 *   depends on the file system and on how many entries the upper copy holds).
 * - aufs' `/.wh..wh.plnk` and `/.wh..wh.aufs` are skipped with their
 *   contents (moby skips the names but walks into them) and `.wh..wh..opq`
 *   marks an opaque directory instead of reporting a deleted ".wh..opq".
 *
 * @module
 */

import {
  type DirEntry,
  openDirAt,
  readDirFd,
  readXattrsAt,
  readXattrsFd,
  type Stat,
  statxAt,
  statxAtOrNull,
} from "../../sys/fs_walk_linux.ts";
import { close } from "../../sys/fd_linux.ts";
import type { Change, WhiteoutCodec } from "../types.ts";
import { sameContentXattrs } from "../whiteout/oci.ts";
import { ChangeList, entryName, sortEntries } from "./_change_list.ts";

/** One parent layer's directory at the path being visited. */
interface LowerDir {
  /** fd of the parent layer's root. */
  root: number;
  /** Path of this directory relative to `root` ("" for the root itself). */
  rel: string;
}

/** What the parents' merged view holds at a path. */
interface Lower {
  /** The visible entry (from the nearest parent that has it). */
  stat: Stat;
  /** fd of the parent layer's root holding it. */
  root: number;
  /** Its path relative to `root`. */
  rel: string;
  /** The parents' directories that merge at this path (when `stat` is a dir). */
  children: LowerDir[];
}

function join(rel: string, name: string): string {
  return rel === "" ? name : `${rel}/${name}`;
}

/** Walks an upper dir and its parents' merged view. */
class UpperWalk {
  readonly list = new ChangeList();
  readonly #changedDirs = new Set<string>();
  readonly #codec: WhiteoutCodec;

  constructor(codec: WhiteoutCodec) {
    this.#codec = codec;
  }

  /** A lower entry is a whiteout in that layer. */
  #whitedOut(l: LowerDir, name: string, st: Stat | null): boolean {
    return this.#codec.whitedOutAt(l.root, l.rel, name, st);
  }

  #opaqueLower(l: LowerDir, rel: string): boolean {
    return this.#codec.isOpaqueAt(l.root, rel);
  }

  /** Looks `name` up in the merged view of the parents' dirs `stack`. */
  lookup(stack: LowerDir[], name: string): Lower | null {
    for (let i = 0; i < stack.length; i++) {
      const l = stack[i];
      const rel = join(l.rel, name);
      const st = statxAtOrNull(l.root, rel);
      if (this.#whitedOut(l, name, st)) return null;
      if (st === null) continue;
      if (st.kind !== "dir") {
        return { stat: st, root: l.root, rel, children: [] };
      }
      const children: LowerDir[] = [{ root: l.root, rel }];
      if (!this.#opaqueLower(l, rel)) {
        for (let j = i + 1; j < stack.length; j++) {
          const m = stack[j];
          const rel2 = join(m.rel, name);
          const st2 = statxAtOrNull(m.root, rel2);
          if (this.#whitedOut(m, name, st2)) break;
          if (st2 === null) continue;
          if (st2.kind !== "dir") break;
          children.push({ root: m.root, rel: rel2 });
          if (this.#opaqueLower(m, rel2)) break;
        }
      }
      return { stat: st, root: l.root, rel, children };
    }
    return null;
  }

  /** Names visible in the merged view of `stack` (a directory's lower contents). */
  mergedNames(stack: LowerDir[]): string[] {
    const seen = new Set<string>();
    const out: string[] = [];
    for (const l of stack) {
      const fd = openDirAt(l.root, l.rel === "" ? "." : l.rel);
      try {
        for (const e of readDirFd(fd)) {
          const name = entryName(e, "/" + l.rel);
          if (seen.has(name)) continue;
          const d = this.#codec.readEntry(fd, e, name);
          if (d.kind === "internal") continue;
          if (d.kind === "whiteout") {
            // Hides `d.name` of farther parents (overlay: the device's own name).
            seen.add(d.name);
            continue;
          }
          seen.add(name);
          out.push(name);
        }
      } finally {
        close(fd);
      }
    }
    return out;
  }

  #parentModified(dirPath: string): void {
    if (dirPath === "" || this.#changedDirs.has(dirPath)) return;
    this.list.record(dirPath, "modify");
    this.#changedDirs.add(dirPath);
  }

  #record(path: string, dirPath: string, kind: Change["kind"]): void {
    if (kind !== "modify") this.#parentModified(dirPath);
    this.list.record(path, kind);
  }

  /**
   * Visits the upper directory `fd` at `path` ("" for the root, else "/a/b").
   * `stack`: the parents' dirs merging at this path; `hidden`: this dir is
   * opaque or below one, so lower entries it does not have are deleted.
   */
  visit(
    fd: number,
    path: string,
    stack: LowerDir[],
    hidden: boolean,
  ): void {
    const entries = sortEntries(readDirFd(fd));
    const present = new Set<string>();
    for (const e of entries) {
      const name = entryName(e, path);
      const st = statxAt(fd, e.cname);
      const d = this.#codec.readEntry(fd, e, name, st);
      // Bookkeeping (aufs's, and its opaque marker, read with its dir).
      if (d.kind === "internal") continue;
      if (d.kind === "whiteout") {
        present.add(d.name);
        // Deleted only when a parent has it: a whiteout of a path no parent
        // has deletes nothing (moby, continuity and treeChanges agree).
        if (this.lookup(stack, d.name) !== null) {
          this.#record(`${path}/${d.name}`, path, "delete");
        }
        continue;
      }
      present.add(name);
      const p = `${path}/${name}`;
      const lower = this.lookup(stack, name);
      if (st.kind !== "dir") {
        this.#record(p, path, lower ? "modify" : "add");
        continue;
      }
      this.#visitDir(fd, e, st, p, path, lower, hidden);
    }
    if (hidden && stack.length > 0) {
      for (const name of this.mergedNames(stack)) {
        if (!present.has(name)) this.#record(`${path}/${name}`, path, "delete");
      }
    }
  }

  #visitDir(
    parentFd: number,
    e: DirEntry,
    st: Stat,
    p: string,
    dirPath: string,
    lower: Lower | null,
    hidden: boolean,
  ): void {
    const fd = openDirAt(parentFd, e.cname);
    try {
      const xattrs = readXattrsFd(fd);
      const opaque = this.#codec.isOpaqueDir(fd, xattrs);
      if (!lower) {
        this.#record(p, dirPath, "add");
        this.#changedDirs.add(p);
      } else if (
        lower.stat.kind !== "dir" ||
        !sameDir(st, lower.stat) ||
        !sameContentXattrs(
          this.#codec,
          xattrs,
          readXattrsAt(lower.root, lower.rel),
        )
      ) {
        this.#record(p, dirPath, "modify");
        this.#changedDirs.add(p);
      }
      const children = lower && lower.stat.kind === "dir" ? lower.children : [];
      this.visit(fd, p, children, hidden || opaque);
    } finally {
      close(fd);
    }
  }
}

function sameDir(a: Stat, b: Stat): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid &&
    a.mtimeSec === b.mtimeSec && a.mtimeNsec === b.mtimeNsec;
}

/** Changes of an upper-dir layer `dir` (overlay/aufs) against its parents' dirs (nearest first). */
export function upperChanges(
  dir: string,
  codec: WhiteoutCodec,
  parentDirs: string[],
): Change[] {
  const roots: number[] = [];
  const fd = openDirAt(-100, dir);
  try {
    for (const p of parentDirs) roots.push(openDirAt(-100, p));
    const walk = new UpperWalk(codec);
    walk.visit(fd, "", roots.map((root) => ({ root, rel: "" })), false);
    return walk.list.sorted();
  } finally {
    close(fd);
    for (const r of roots) close(r);
  }
}
