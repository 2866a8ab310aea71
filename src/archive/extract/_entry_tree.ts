/**
 * Internal: what this archive has created so far, as a tree of cleaned paths.
 * It answers the questions the extractor must not ask the file system (which
 * may hold a parent layer's copy or symlinks planted by an earlier layer):
 * - is a hardlink target an earlier entry of this same tar?
 * - which directories get their mode/owner/times (and a codec's xattr) at the
 *   end (post-order)?
 * - which entries survive an opaque marker (vfs: only this tar's entries)?
 * - the applied size: regular-file bytes, each inode counted once.
 *
 * Removing a path removes its subtree, so a replaced directory's entries can
 * no longer be hardlink targets and their bytes stop counting.
 *
 * @module
 */

import type { TarHeader } from "../tar/header.ts";

/** What an entry node stands for. */
export const Kind = {
  /** A directory created only as a parent of later entries. */
  Implicit: 0,
  /** A directory entry of the tar. */
  Dir: 1,
  /** A regular file (or a hardlink to one). */
  File: 2,
  /** Symlink, device, FIFO (or a hardlink to one). */
  Other: 3,
  /** An overlay whiteout made from `.wh.<name>`: never a hardlink target. */
  Whiteout: 4,
} as const;
/** One of {@link Kind}. */
export type Kind = typeof Kind[keyof typeof Kind];

/** An inode written by this tar: shared by all its hardlinked names. */
export interface Inode {
  /** Bytes of the file (0 for non-files). */
  size: number;
  /** Names in the tree that refer to it. */
  links: number;
}

/** One path of the tree. */
export class EntryNode {
  kind: Kind;
  children: Map<string, EntryNode> | null = null;
  inode: Inode | null = null;
  /** The directory's own header (mode, owner, times, xattrs), applied at the end. */
  meta: TarHeader | null = null;
  /** An xattr the codec sets when directories are finished (overlay's opaque mark). */
  endXattr: [name: string, value: Uint8Array] | null = null;

  constructor(kind: Kind) {
    this.kind = kind;
  }

  /** True for directories (explicit or implicit). */
  get isDir(): boolean {
    return this.kind === Kind.Dir || this.kind === Kind.Implicit;
  }
}

/** The tree of entries created by one archive. */
export class EntryTree {
  /** The layer root (`""`). */
  readonly root: EntryNode = new EntryNode(Kind.Implicit);
  /** Regular-file bytes of the inodes currently in the tree. */
  size = 0;
  #hintPath = "";
  #hint: EntryNode | null = null;

  /** The node at `path`, or undefined. */
  get(path: string): EntryNode | undefined {
    if (path === "") return this.root;
    let n: EntryNode | undefined = this.root;
    let start = 0;
    for (;;) {
      const i = path.indexOf("/", start);
      const c = i < 0 ? path.slice(start) : path.slice(start, i);
      n = n.children?.get(c);
      if (n === undefined || i < 0) return n;
      start = i + 1;
    }
  }

  /**
   * Sets the node at `path` to a new node of `kind` (replacing whatever was
   * there, subtree included) and returns it; missing ancestors become
   * implicit directories. `inode` shares an inode for hardlinks.
   */
  set(path: string, kind: Kind, inode?: Inode): EntryNode {
    // Entries come grouped by directory: remember the last parent node.
    const slash = path.lastIndexOf("/");
    const parentPath = slash < 0 ? "" : path.slice(0, slash);
    let parent: EntryNode;
    if (this.#hint !== null && parentPath === this.#hintPath) {
      parent = this.#hint;
    } else {
      parent = this.#ensureParent(path);
      this.#hintPath = parentPath;
      this.#hint = parent;
    }
    const base = path.slice(slash + 1);
    const old = parent.children!.get(base);
    if (old !== undefined) {
      this.#release(old);
      // #release dropped the hint; the parent itself is still attached.
      this.#hintPath = parentPath;
      this.#hint = parent;
    }
    const n = new EntryNode(kind);
    if (inode !== undefined) {
      inode.links++;
      n.inode = inode;
    } else if (kind === Kind.File || kind === Kind.Other) {
      n.inode = { size: 0, links: 1 };
    }
    parent.children!.set(base, n);
    return n;
  }

  /** The directory node at `path`, created (implicit) with its ancestors when missing or not a dir. */
  dir(path: string): EntryNode {
    if (path === "") return this.root;
    const n = this.get(path);
    if (n !== undefined && n.isDir) return n;
    return this.set(path, Kind.Implicit);
  }

  /** Makes sure a node exists at `path` (implicit dirs where missing); never replaces one. */
  touch(path: string): void {
    if (path !== "" && this.get(path) === undefined) {
      this.set(path, Kind.Implicit);
    }
  }

  /** Adds `bytes` to the file at `node` (its inode) and to the total. */
  addBytes(node: EntryNode, bytes: number): void {
    node.inode!.size += bytes;
    this.size += bytes;
  }

  /** Forgets `path` and everything below it. */
  remove(path: string): void {
    if (path === "") {
      for (const c of this.root.children?.values() ?? []) this.#release(c);
      this.root.children = null;
      return;
    }
    const i = path.lastIndexOf("/");
    const parent = this.get(i < 0 ? "" : path.slice(0, i));
    const base = path.slice(i + 1);
    const old = parent?.children?.get(base);
    if (old === undefined) return;
    this.#release(old);
    parent!.children!.delete(base);
  }

  /**
   * Directories that need work at the end (a header or an opaque mark),
   * children before parents, the root last.
   */
  *dirsPostOrder(): Generator<[path: string, node: EntryNode]> {
    // Iterative post-order: deep trees must not overflow the JS stack.
    const stack: [string, EntryNode, boolean][] = [["", this.root, false]];
    while (stack.length > 0) {
      const top = stack.pop()!;
      const [path, node, expanded] = top;
      if (expanded) {
        if (node.meta !== null || node.endXattr !== null) yield [path, node];
        continue;
      }
      stack.push([path, node, true]);
      if (node.children === null) continue;
      for (const [name, child] of node.children) {
        if (child.isDir) {
          stack.push([path === "" ? name : `${path}/${name}`, child, false]);
        }
      }
    }
  }

  #ensureParent(path: string): EntryNode {
    let n = this.root;
    let start = 0;
    for (;;) {
      const i = path.indexOf("/", start);
      if (i < 0) break;
      const c = path.slice(start, i);
      n.children ??= new Map();
      let next = n.children.get(c);
      // A non-directory node here is a symlink the path was resolved through
      // (one that stays in the layer); it keeps its identity and gains children.
      if (next === undefined) {
        next = new EntryNode(Kind.Implicit);
        n.children.set(c, next);
      }
      n = next;
      start = i + 1;
    }
    n.children ??= new Map();
    return n;
  }

  /** Drops the inode references of `node`'s subtree (iteratively). */
  #release(node: EntryNode): void {
    // The hinted parent may be inside the released subtree.
    this.#hint = null;
    const stack = [node];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.inode !== null && --n.inode.links === 0) {
        this.size -= n.inode.size;
      }
      if (n.children !== null) {
        for (const c of n.children.values()) stack.push(c);
      }
    }
  }
}
