/**
 * Internal: walks a directory tree from directory fds and yields tar entries
 * in a reproducible order, converting a backend's whiteouts to OCI form.
 *
 * Safety: every open is relative to the parent's directory fd with
 * O_NOFOLLOW, and file bodies are read from the fd whose `fstatx` says it is
 * the regular file we emit, so a writer racing the export (renaming a
 * directory, planting a symlink or a fifo) cannot make us read outside the
 * tree or block (CVE-2018-15664-style TOCTOU in docker cp is the classic
 * example of path re-resolution going wrong).
 *
 * Format (matches what moby's pkg/archive emits for a layer): names relative
 * to the tree, no "./" or "/" prefix, directories end in "/", the root itself
 * is not an entry; numeric uid/gid with empty uname/gname; PAX mtime with
 * nanoseconds; content xattrs as SCHILY.xattr; siblings sorted by the bytes of
 * their (emitted) names, parents before children, so the same tree gives the
 * same bytes; a multiply-linked inode is a file at its first name in that
 * order and a hardlink entry at the others; sockets are skipped (tar cannot
 * carry them, as GNU tar says "socket ignored").
 *
 * @module
 */

import {
  type DirEntry,
  DT,
  fstatx,
  openDirAt,
  openFileAt,
  readDirFd,
  readlinkAt,
  readXattrsAt,
  readXattrsFd,
  type Stat,
  statxAt,
} from "../../sys/fs_walk_linux.ts";
import { close } from "../../sys/fd_linux.ts";
import { FilePrefetch, type Prefetched } from "./_file_prefetch.ts";
import { LayerfsError, StoreError } from "../../errors.ts";
import { SysError } from "../../sys/libc_linux.ts";
import type { EntryType, TarHeader } from "../tar/header.ts";
import type { Change, WhiteoutCodec } from "../types.ts";
import { compareNames, entryName } from "../changes/_change_list.ts";
import { contentXattrs, WH_OPAQUE, WH_PREFIX } from "../whiteout/oci.ts";
import type { ExportItem, ItemSource } from "./_tar_pump.ts";

/**
 * Which entries of each directory to export (vfs diffs): directory path
 * ("" for the root, else "/a/b") to child name and kind. Deletes become
 * `.wh.<name>` entries; directories without an entry here are not descended.
 */
export type ExportPlan = Map<string, Map<string, Change["kind"]>>;

/** How to walk. */
export interface WalkOptions {
  /**
   * Whiteout conversion to OCI form: overlay turns 0/0 char devices into
   * `.wh.<name>` and opaque dirs into `<dir>/.wh..wh..opq`; aufs drops
   * `/.wh..wh.*` bookkeeping at the root; vfs and none export entries as
   * they are.
   */
  codec: WhiteoutCodec;
  /** Only these entries (vfs diffs); absent: everything. */
  plan?: ExportPlan;
}

/** Builds an {@link ExportPlan} from a change list. */
export function planFromChanges(changes: Change[]): ExportPlan {
  const plan: ExportPlan = new Map();
  for (const c of changes) {
    const slash = c.path.lastIndexOf("/");
    const dir = c.path.slice(0, slash);
    let m = plan.get(dir);
    if (!m) plan.set(dir, m = new Map());
    m.set(c.path.slice(slash + 1), c.kind);
  }
  return plan;
}

const EMPTY_XATTRS: Map<string, Uint8Array> = new Map();

function header(
  name: string,
  type: EntryType,
  st: Stat,
  xattrs: Map<string, Uint8Array>,
): TarHeader {
  return {
    name,
    type,
    size: type === "file" ? st.size : 0,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    uname: "",
    gname: "",
    mtime: st.mtimeSec,
    mtimeNsec: st.mtimeNsec,
    linkname: "",
    devmajor: type === "char" || type === "block" ? st.rdevMajor : 0,
    devminor: type === "char" || type === "block" ? st.rdevMinor : 0,
    xattrs,
  };
}

/** An empty regular file entry (whiteouts and opaque markers). */
function marker(
  name: string,
  mode: number,
  uid: number,
  gid: number,
  mtime: number,
  mtimeNsec: number,
): ExportItem {
  return {
    header: {
      name,
      type: "file",
      size: 0,
      mode,
      uid,
      gid,
      uname: "",
      gname: "",
      mtime,
      mtimeNsec,
      linkname: "",
      devmajor: 0,
      devminor: 0,
      xattrs: EMPTY_XATTRS,
    },
    fd: -1,
  };
}

/** A child to emit: a real entry, or a synthesized whiteout (vfs delete). */
interface Child {
  /** Emitted base name (sort key). */
  emit: string;
  /** The directory entry (absent for a synthesized whiteout). */
  e?: DirEntry;
  /** Its real name. */
  name: string;
  /** Stat taken while sorting (overlay char devices). */
  st?: Stat;
  /** Its {@link FilePrefetch} slot once asked for, else -1. */
  slot: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeTarget(b: Uint8Array, path: string): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new StoreError(
      `Cannot export symlink "${path}": its target is not valid UTF-8, which tar headers in layerfs carry as text`,
    );
  }
}

function kindFromDirent(t: number): Stat["kind"] | null {
  switch (t) {
    case DT.REG:
      return "file";
    case DT.DIR:
      return "dir";
    case DT.LNK:
      return "symlink";
    case DT.CHR:
      return "char";
    case DT.BLK:
      return "block";
    case DT.FIFO:
      return "fifo";
    case DT.SOCK:
      return "socket";
  }
  return null;
}

/** What {@link Walker}'s per-entry step returns for a directory (walked by the caller). */
const DIR = Symbol("dir");

/** A directory being walked: its fd, its children in emit order, the next one. */
interface Frame {
  fd: number;
  /** Tar name prefix of its children ("" at the root, else "a/b/"). */
  prefix: string;
  /** Its path ("" at the root, else "/a/b"). */
  path: string;
  children: Child[];
  at: number;
  /** The walker closes the fd when it is done with the directory. */
  owned: boolean;
  /** Children before this index were considered for read-ahead. */
  asked: number;
}

/**
 * Entries a walk emits before it starts a read-ahead helper. The helper
 * costs ~50 ms of wall time on two cores (`new Worker` blocks the calling
 * thread 15-22 ms while the isolate is made, then its module loading takes
 * CPU from the walk) and saves ~2 µs per entry after it: it pays past ~20k
 * entries. At 512 it made a base-image layer's pack (6.8k entries) 1.25x
 * GNU tar's instead of 1.00x; at 8192 a 55k-file pack loses ~3% of its gain.
 */
const READ_AHEAD_AFTER = 8192;
/** Free slots that make the walk ask for more of a directory before the helper runs dry. */
const ASK_MORE = 16;

/**
 * The walk as an explicit stack of directories, stepped by {@link next}. A
 * generator per directory, delegating with `yield*`, was resumed at every
 * level above an entry for each entry (five to seven resumes per file of a
 * deep tree); stepping one method cut 3-7% off fresh-process packs of the
 * bench's layers.
 */
class Walker implements ItemSource {
  readonly #opts: WalkOptions;
  readonly #codec: WhiteoutCodec;
  /** "dev:ino" of multiply-linked inodes to the tar name of their first entry. */
  readonly #links = new Map<string, string>();
  readonly #stack: Frame[] = [];
  /** An item to hand out before the next entry (a directory's opaque marker). */
  #queued: ExportItem | null = null;
  /** Read-ahead wanted ({@link readAhead}): entries to emit before starting it, or -1. */
  #readAheadIn = -1;
  #prefetch: FilePrefetch | null = null;
  /** The slot whose body the last item handed out (freed at the next call). */
  #held = -1;

  constructor(opts: WalkOptions, rootFd: number) {
    this.#opts = opts;
    this.#codec = opts.codec;
    this.#push(rootFd, "", "", true);
  }

  /**
   * Starts a read-ahead helper once the walk has emitted a few hundred
   * entries, or uses `helper` (started by the caller) from the next entry
   * on. The walk closes it when it ends or is closed.
   */
  readAhead(helper?: FilePrefetch): void {
    if (this.#prefetch !== null) return;
    if (helper !== undefined) {
      this.#prefetch = helper;
      this.#readAheadIn = -1;
    } else if (this.#readAheadIn < 0) this.#readAheadIn = READ_AHEAD_AFTER;
  }

  /** The next item, or null at the end. */
  next(): ExportItem | null {
    const p = this.#prefetch;
    if (this.#held >= 0) {
      p!.release(this.#held);
      this.#held = -1;
    }
    if (this.#readAheadIn > 0 && --this.#readAheadIn === 0) {
      this.#prefetch = FilePrefetch.start();
    }
    const q = this.#queued;
    if (q !== null) {
      this.#queued = null;
      return q;
    }
    const stack = this.#stack;
    for (;;) {
      const f = stack[stack.length - 1];
      if (f === undefined) {
        // Every request was taken (each before its frame popped and closed
        // its directory fd): the helper holds nothing.
        this.#prefetch?.close();
        this.#prefetch = null;
        return null;
      }
      if (f.at >= f.children.length) {
        stack.pop();
        if (f.owned) close(f.fd);
        continue;
      }
      if (
        p !== null && f.asked < f.children.length &&
        (f.asked <= f.at || p.free >= ASK_MORE) && p.ready
      ) this.#ask(f, p);
      const c = f.children[f.at++];
      const tarName = f.prefix + c.emit;
      if (!c.e) {
        // vfs delete: deterministic metadata (moby stamps time.Now() here,
        // which makes two diffs of the same layer differ).
        return marker(tarName, 0o600, 0, 0, 0, 0);
      }
      if (c.st && c.emit !== c.name) {
        // overlay whiteout, as moby's overlayWhiteoutConverter writes it.
        return marker(
          tarName,
          0o600,
          c.st.uid,
          c.st.gid,
          c.st.mtimeSec,
          c.st.mtimeNsec,
        );
      }
      const item = this.#entry(f.fd, c, f.prefix, f.path);
      if (item === DIR) {
        return this.#enter(f.fd, c.e, c.name, f.prefix, `${f.path}/${c.name}`);
      }
      if (item !== null) return item;
    }
  }

  /** Closes the fds of every directory still open (the walk was cut short or failed). */
  close(): void {
    // The helper first: it may still be opening files below these directories.
    this.#prefetch?.close();
    this.#prefetch = null;
    this.#held = -1;
    for (let f = this.#stack.pop(); f !== undefined; f = this.#stack.pop()) {
      if (f.owned) close(f.fd);
    }
    this.#queued = null;
  }

  /** Lists the directory at `fd` and pushes it (closing `fd` if listing fails and it is ours). */
  #push(fd: number, prefix: string, path: string, owned: boolean): void {
    let children: Child[];
    try {
      children = this.#children(fd, path);
    } catch (e) {
      if (owned) close(fd);
      throw e;
    }
    this.#stack.push({ fd, prefix, path, children, at: 0, owned, asked: 0 });
  }

  /**
   * Asks the helper for the regular files of `f` from the next child on, up
   * to its next subdirectory (the files after it are needed only once the
   * walk is back from that subtree: asked now, they would hold slots the
   * subtree's files need) or the last free slot. Every file asked for is a
   * `DT_REG` child, which {@link #entry} takes before the frame can pop and
   * its fd close: that, not this limit, keeps the helper off closed fds.
   */
  #ask(f: Frame, p: FilePrefetch): void {
    const kids = f.children;
    let j = f.asked > f.at ? f.asked : f.at;
    let n = 0;
    for (; j < kids.length && p.free > 0; j++) {
      const c = kids[j];
      const e = c.e;
      if (e === undefined || c.st !== undefined) continue; // whiteouts
      if (e.type === DT.DIR) {
        // The walk enters it now: ask again once back (at > asked).
        if (j === f.at) j++;
        break;
      }
      if (e.type === DT.REG && (c.slot = p.request(f.fd, e.cname)) >= 0) n++;
    }
    f.asked = j;
    if (n > 0) p.flush();
  }

  /** The children of directory `path` to emit, in emit order. */
  #children(fd: number, path: string): Child[] {
    const plan = this.#opts.plan;
    const planned = plan?.get(path);
    const children: Child[] = [];
    if (plan && !planned) return children;
    for (const e of readDirFd(fd)) {
      const name = entryName(e, path);
      if (planned) {
        const kind = planned.get(name);
        if (kind === undefined || kind === "delete") continue;
      }
      if (e.type === DT.SOCK) continue;
      if (path === "" && this.#codec.internalAtRoot(name)) continue;
      const st = this.#codec.deviceWhiteout(fd, e);
      if (st !== null) {
        children.push({ emit: WH_PREFIX + name, e, name, st, slot: -1 });
        continue;
      }
      if (this.#codec.whiteoutNamesAreData && name.startsWith(WH_PREFIX)) {
        throw new StoreError(
          `Cannot export "${path}/${name}": a file named ${WH_PREFIX}* is read as a whiteout by every OCI layer reader (it would delete "${
            name.slice(WH_PREFIX.length)
          }" where the layer is applied); rename it, then export again`,
        );
      }
      children.push({ emit: name, e, name, st: undefined, slot: -1 });
    }
    if (planned) {
      for (const [name, kind] of planned) {
        if (kind === "delete") {
          children.push({
            emit: WH_PREFIX + name,
            e: undefined,
            name,
            st: undefined,
            slot: -1,
          });
        }
      }
    }
    children.sort((a, b) => compareNames(a.emit, b.emit));
    return children;
  }

  /** The item of a non-directory entry, {@link DIR} for a directory, null for what is not exported. */
  #entry(
    dirFd: number,
    c: Child,
    prefix: string,
    path: string,
  ): ExportItem | typeof DIR | null {
    const e = c.e!;
    const name = c.name;
    const childPath = `${path}/${name}`;
    let st: Stat | null = null;
    let kind = kindFromDirent(e.type);
    if (kind === null) {
      st = statxAt(dirFd, e.cname);
      kind = st.kind;
    }
    if (kind === "dir") return DIR;
    if (kind === "file" && c.slot >= 0) {
      const slot = c.slot;
      c.slot = -1;
      const got = this.#prefetch!.take(slot);
      if (got !== null) {
        return this.#prefetched(got, slot, name, prefix, childPath);
      }
    }
    if (kind === "file") {
      const fd = openFileAt(dirFd, e.cname);
      let handed = false;
      try {
        st = fstatx(fd);
        if (st.kind === "file") {
          const h = this.#fileHeader(
            st,
            readXattrsFd(fd),
            prefix + name,
            childPath,
          );
          if (!this.#linked(h, st, name)) {
            handed = true;
            return { header: h, fd };
          }
          return { header: h, fd: -1 };
        }
      } finally {
        if (!handed) close(fd);
      }
      // O_NOFOLLOW|O_NONBLOCK opened something else than the regular file
      // getdents reported (a racing writer): export what is there now.
      kind = st.kind;
      st = null;
    }
    st ??= statxAt(dirFd, e.cname);
    if (st.kind !== kind) {
      throw new StoreError(
        `"${childPath}" changed type while it was being exported; stop writers to the layer and retry`,
      );
    }
    if (kind === "dir") return DIR;
    if (kind === "socket" || kind === "unknown") return null;
    const xattrs = contentXattrs(this.#codec, readXattrsAt(dirFd, e.cname));
    const h = header(prefix + name, kind, st, xattrs);
    if (kind === "symlink") {
      h.linkname = decodeTarget(readlinkAt(dirFd, e.cname), childPath);
    }
    this.#linked(h, st, name);
    return { header: h, fd: -1 };
  }

  /** A regular file's header, its xattrs checked and filtered to content ones. */
  #fileHeader(
    st: Stat,
    xattrs: Map<string, Uint8Array>,
    tarName: string,
    childPath: string,
  ): TarHeader {
    this.#checkFeatures(xattrs, childPath);
    return header(tarName, "file", st, contentXattrs(this.#codec, xattrs));
  }

  /** The item of a file the helper did (see {@link FilePrefetch.take}); frees or holds its slot. */
  #prefetched(
    got: Prefetched,
    slot: number,
    name: string,
    prefix: string,
    childPath: string,
  ): ExportItem {
    const p = this.#prefetch!;
    const st = got.stat;
    let fd = got.fd;
    try {
      const h = this.#fileHeader(
        st,
        got.hasXattrs ? readXattrsFd(fd) : EMPTY_XATTRS,
        prefix + name,
        childPath,
      );
      if (this.#linked(h, st, name) || st.size === 0) {
        p.release(slot);
        if (fd >= 0) close(fd);
        return { header: h, fd: -1 };
      }
      if (fd >= 0) {
        p.release(slot);
        const item = { header: h, fd };
        fd = -1; // the pump's now
        return item;
      }
      this.#held = slot; // the pump copies the body before the next call
      return { header: h, fd: -1, body: got.body! };
    } catch (err) {
      if (fd >= 0) close(fd);
      p.release(slot);
      throw err;
    }
  }

  /** Opens a directory entry: its item, its opaque marker queued, its children pushed. */
  #enter(
    dirFd: number,
    e: DirEntry,
    name: string,
    prefix: string,
    childPath: string,
  ): ExportItem {
    const fd = openDirAt(dirFd, e.cname);
    let item: ExportItem;
    let opaque: ExportItem | null = null;
    const dirName = `${prefix}${name}/`;
    try {
      const st = fstatx(fd);
      const xattrs = readXattrsFd(fd);
      this.#checkFeatures(xattrs, childPath);
      item = {
        header: header(dirName, "dir", st, contentXattrs(this.#codec, xattrs)),
        fd: -1,
      };
      if (this.#codec.opaqueByXattrs(xattrs)) {
        // Right after the directory, before its children, as moby writes it:
        // extractors that apply the marker when they meet it must not wipe
        // entries of this same layer.
        opaque = marker(
          dirName + WH_OPAQUE,
          st.mode & 0o777,
          st.uid,
          st.gid,
          st.mtimeSec,
          st.mtimeNsec,
        );
      }
    } catch (err) {
      close(fd);
      throw err;
    }
    this.#push(fd, dirName, childPath, true);
    this.#queued = opaque;
    return item;
  }

  /**
   * Turns `h` into a hardlink entry when its inode was already emitted;
   * otherwise remembers it. Whiteout names never take part: aufs whiteouts
   * are all links to one base inode, and overlay (since Linux 5.8) shares a
   * whiteout inode too; a link entry there would not mean "delete".
   */
  #linked(h: TarHeader, st: Stat, name: string): boolean {
    if (st.nlink < 2 || name.startsWith(WH_PREFIX)) return false;
    const key = `${st.dev}:${st.ino}`;
    const first = this.#links.get(key);
    if (first === undefined) {
      this.#links.set(key, h.name);
      return false;
    }
    h.type = "hardlink";
    h.linkname = first;
    h.size = 0;
    // The inode's xattrs travel with its first entry; GNU tar does the same.
    h.xattrs = EMPTY_XATTRS;
    return true;
  }

  #checkFeatures(xattrs: Map<string, Uint8Array>, path: string): void {
    this.#codec.checkExportable(xattrs, path);
  }
}

/**
 * The tar entries of the tree at `root` (a path opened once; below it only
 * fds are used), one per {@link ItemSource.next} call.
 */
export function walkTree(
  root: string,
  opts: WalkOptions,
): ItemSource & { readAhead(helper?: FilePrefetch): void } {
  // The walker owns the root fd too: closed when the walk ends, fails or is closed.
  return new Walker(opts, openRoot(root));
}

/** Opens the tree's root (following the caller's own symlinks is fine). */
function openRoot(root: string): number {
  try {
    return openDirAt(-100, root);
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    throw new LayerfsError(
      `Cannot pack ${
        JSON.stringify(root)
      }: ${e.code}; it must be an existing directory`,
      { cause: e },
    );
  }
}
