/**
 * Internal: the extraction engine shared by {@link applyLayerTar} and
 * {@link applyTar}. Reads entries from a {@link TarReader} and creates them
 * below a directory fd, never outside it:
 *
 * - every name is read lexically under the root (`layerPath`, tar/_path.ts);
 *   the reader has refused names that climb above it;
 * - each parent directory is opened with `openat2(RESOLVE_IN_ROOT |
 *   RESOLVE_NO_MAGICLINKS)` from the root fd, so symlinks (made by this tar
 *   or planted by an earlier layer) resolve inside the root; a parent reached
 *   through a symlink whose target climbs above the root is refused, not
 *   contained, while links that stay inside, absolute ones included (taken
 *   from the layer root, as in the container), are followed. (moby's
 *   pkg/archive refuses such a symlink as a `breakoutError` when it is
 *   created; we refuse the first entry written through it, so a link that is
 *   only a link is kept as the image has it);
 * - the entry itself is one plain component created with `*at` calls that do
 *   not follow a final symlink (O_CREAT|O_EXCL|O_NOFOLLOW, mknodat, symlinkat,
 *   linkat without AT_SYMLINK_FOLLOW); metadata goes through the fd we created
 *   or through `*at(AT_SYMLINK_NOFOLLOW)`: a symlink is changed itself, never
 *   its target (Deno.chmod/chown/utime would follow it: CVE-2018-15664-style
 *   escapes in moby's `docker cp` came from re-resolving paths);
 * - an existing entry at the name is removed first (last entry wins) with
 *   unlinkat or a no-follow recursive removal;
 * - a whiteout or opaque marker names its directory without any symlink on
 *   the way (RESOLVE_NO_SYMLINKS), or the archive is refused: through a link
 *   it would delete, empty or mark another directory than it says; the
 *   whiteout codec decides what the marker becomes on disk. A whiteout
 *   hides the parent layers' entry only, never this tar's, in either order
 *   (OCI image-spec): `#whiteout` and `#dirOverWhiteout` decide;
 * - hardlink targets must be earlier entries of this tar (moby CVE-2014-6407:
 *   links to host files); directories get their mode, owner, xattrs and
 *   times at the end, deepest first, through fds opened O_DIRECTORY|O_NOFOLLOW.
 *
 * @module
 */

import { InvalidArchive, LayerfsError } from "../../errors.ts";
import {
  AT,
  close,
  O,
  openat2,
  RESOLVE,
  writeAll,
} from "../../sys/fd_linux.ts";
import { Errno, ioAdvice } from "../../sys/errno.ts";
import {
  check,
  errno,
  libc,
  scratchCstr,
  SysError,
} from "../../sys/libc_linux.ts";
import {
  fchmod,
  fchmodatNoFollow,
  fchown,
  fchownat,
  fsetxattr,
  futimens,
  linkat,
  lsetxattrAt,
  makedev,
  mkdirat,
  mknodat,
  openDirNoFollow,
  readdirFd,
  removeAllAt,
  S,
  symlinkat,
  unlinkat,
  utimensat,
} from "../../sys/fs_at_linux.ts";
import {
  fstatIno,
  fstatx,
  readlinkAt,
  type Stat,
  statxAtOrNull,
} from "../../sys/fs_walk_linux.ts";
import type { TarHeader } from "../tar/header.ts";
import type { TarReader } from "../tar/reader.ts";
import { type CachedDir, DirCache } from "./_dir_cache.ts";
import { type EntryNode, EntryTree, InodeSet, Kind } from "./_entry_tree.ts";
import type {
  ArchiveProgress,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import { isContentXattr, WH_PLNK } from "../whiteout/oci.ts";
import { layerPath } from "../tar/_path.ts";
import { joinPath, splitPath } from "./_names.ts";

/** Settings of one extraction (resolved defaults). */
export interface EngineOptions {
  /** Whiteout codec of the target directory. */
  codec: WhiteoutCodec;
  /** chown entries to the tar's uid/gid (root only; see apply_tar.ts). */
  sameOwner: boolean;
  /** Create char/block devices (root only). */
  devices: boolean;
  /** Progress callback. */
  onProgress?: (p: ArchiveProgress) => void;
}

const RESOLVE_FLAGS = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS;
/**
 * Whiteouts and opaque markers resolve their directory without any symlink:
 * through one they would delete, empty or mark a directory the tar does not
 * name (contained by RESOLVE_IN_ROOT, but still not what the layer says).
 */
const RESOLVE_REAL = RESOLVE_FLAGS | RESOLVE.NO_SYMLINKS;
/** Linux's MAXSYMLINKS: the kernel gives ELOOP after this many links. */
const MAX_LINKS = 40;
const PROGRESS_EVERY = 1024;

/** The process umask, read race-free from /proc (umask(2) would change it). */
function readUmask(): number {
  try {
    const s = Deno.readTextFileSync("/proc/self/status");
    const m = /^Umask:\s*([0-7]+)/m.exec(s);
    if (m) return parseInt(m[1], 8);
  } catch { /* no /proc: assume the worst and always chmod */ }
  return 0o777;
}

const CONTENT_ERRNOS = new Set<number>([
  Errno.ENOTDIR,
  Errno.ELOOP,
  Errno.EEXIST,
  Errno.EISDIR,
  Errno.ENAMETOOLONG,
  Errno.EMLINK,
  Errno.EXDEV,
  Errno.EINVAL,
]);

/**
 * Extracts every entry of `reader` below the directory `rootFd` (any fd of a
 * directory; O_PATH is fine). Returns the applied size: bytes of regular
 * files this tar left in place, each inode once.
 */
export async function extract(
  rootFd: number,
  reader: TarReader,
  opts: EngineOptions,
): Promise<number> {
  const x = new Extractor(rootFd, reader, opts);
  try {
    return await x.run();
  } catch (e) {
    reader.cancel(e);
    throw e;
  } finally {
    x.dispose();
  }
}

class Extractor implements WhiteoutTarget {
  readonly #root: number;
  readonly #reader: TarReader;
  readonly #o: EngineOptions;
  readonly #cache = new DirCache();
  readonly #tree = new EntryTree();
  /**
   * Inodes of the non-directories this tar made (and still has a name for),
   * when the root held entries before it began ({@link #fresh} false).
   */
  readonly #ours = new InodeSet();
  /**
   * The root was empty when this tar began (an image layer's staging dir,
   * a new rootfs): then every non-directory below it is this tar's, except
   * the whiteout devices the codec made, which {@link #notOurs} holds. That
   * saves a stat of every file it creates.
   */
  readonly #fresh: boolean;
  /** Inodes of the whiteout devices made in a {@link #fresh} root. */
  readonly #notOurs = new InodeSet();
  /** Device of the root: inode numbers are only compared on it. */
  readonly #dev: number;
  /** Applied size: regular-file bytes of the inodes in #ours. */
  #size = 0;
  readonly #uid: number;
  readonly #gid: number;
  readonly #umask: number;
  readonly #rootDir: CachedDir;
  readonly #codec: WhiteoutCodec;
  #plnk = false;
  /** Name of the entry being extracted, for errors raised deep inside. */
  #current: string | undefined;

  constructor(rootFd: number, reader: TarReader, opts: EngineOptions) {
    this.#root = rootFd;
    this.#reader = reader;
    this.#o = opts;
    this.#codec = opts.codec;
    this.#uid = libc().geteuid();
    this.#gid = libc().getegid();
    this.#umask = readUmask();
    const st = fstatx(rootFd);
    this.#dev = st.dev;
    this.#fresh = isEmptyDir(rootFd);
    this.#rootDir = {
      fd: rootFd,
      gid: (st.mode & 0o2000) !== 0 ? st.gid : this.#gid,
    };
  }

  dispose(): void {
    this.#cache.clear();
  }

  async run(): Promise<number> {
    const r = this.#reader;
    let entries = 0;
    for (;;) {
      // Most headers and bodies are already buffered: no await for them.
      let h = r.tryNext();
      if (h === undefined) h = await r.next();
      if (h === null) break;
      this.#current = h.name;
      try {
        const p = this.#entry(h);
        if (p !== undefined) await p;
      } catch (e) {
        throw this.#wrap(e, h.name);
      }
      if (++entries % PROGRESS_EVERY === 0) {
        this.#o.onProgress?.({ bytes: r.bytesRead, entries });
      }
    }
    try {
      if (this.#plnk) {
        this.#removeAll(this.#root, WH_PLNK, WH_PLNK, null);
      }
      this.#finishDirs();
    } catch (e) {
      throw this.#wrap(e, undefined);
    }
    this.#o.onProgress?.({ bytes: r.bytesRead, entries });
    return this.#size;
  }

  #wrap(e: unknown, entry: string | undefined): unknown {
    if (e instanceof LayerfsError) return e;
    if (e instanceof SysError) {
      if (CONTENT_ERRNOS.has(e.errno)) {
        return new InvalidArchive(`cannot create it: ${e.message}`, entry, {
          cause: e,
        });
      }
      return new LayerfsError(
        `Cannot extract ${
          entry === undefined
            ? "the archive's directories"
            : `entry ${JSON.stringify(entry)}`
        }: ${e.message}; ${
          ioAdvice(e.code) ??
            "check free space, permissions and the target file system"
        }`,
        { cause: e },
      );
    }
    return e;
  }

  /** Creates one entry; returns a promise only when its body needs reading first. */
  #entry(h: TarHeader): Promise<void> | undefined {
    const path = layerPath(h.name);
    // The reader refuses names that climb out (null) and non-directories
    // named as the root; this keeps the engine safe on its own all the same.
    if (path === null || (path === "" && h.type !== "dir")) {
      throw new InvalidArchive("the name does not stay in the layer", h.name);
    }
    if (path === "") {
      this.#tree.root.meta = h;
      return;
    }
    const [parent, base] = splitPath(path);
    const wh = this.#codec.classify(h.type, path, base, h.name);
    switch (wh.kind) {
      case "skip":
        return;
      case "pool":
        this.#plnk = true;
        break;
      case "marker":
        // Kept as a file (aufs), but like any whiteout it must name a real
        // directory: resolved (and cached) without symlinks first.
        this.#realDir(parent, h.name, true);
        break;
      case "opaque":
        this.#codec.applyOpaque(this, parent, h.name);
        return undefined;
      case "whiteout":
        this.#whiteout(parent, wh.name, h.name);
        return undefined;
    }
    switch (h.type) {
      case "file":
        return this.#file(h, path, parent, base);
      case "dir":
        this.#dir(h, path, parent, base);
        return undefined;
      case "symlink":
        this.#symlink(h, path, parent, base);
        return undefined;
      case "hardlink":
        this.#hardlink(h, path, parent, base);
        return undefined;
      case "char":
      case "block":
      case "fifo":
        this.#node(h, path, parent, base);
        return undefined;
      default:
        throw new InvalidArchive(
          `unsupported entry type ${JSON.stringify(h.type)}`,
          h.name,
        );
    }
  }

  // ---- parents -----------------------------------------------------------

  /** The gid a new entry in directory `fd` gets: the dir's when it is setgid. */
  #inheritedGid(fd: number): number {
    const st = fstatx(fd);
    return (st.mode & 0o2000) !== 0 ? st.gid : this.#gid;
  }

  /**
   * The open parent directory `path` (cleaned), from the cache or resolved
   * under the root; missing directories are created (0755, like moby and GNU
   * tar) unless `create` is false, when `null` is returned instead.
   */
  #dir_(path: string, create = true): CachedDir | null {
    if (path === "") return this.#rootDir;
    const hit = this.#cache.get(path);
    if (hit !== undefined) return hit;
    let fd: number;
    try {
      fd = this.#openDir(path);
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      const missing = e.errno === Errno.ENOENT || e.errno === Errno.ENOTDIR;
      // ENOTDIR: a non-directory on the way, which #makeParents replaces
      // when it is a whiteout of this layer, and refuses otherwise.
      if (missing && create) fd = this.#makeParents(path);
      else if (missing) return null;
      else throw this.#notADir(path, e);
    }
    const d = { fd, gid: this.#inheritedGid(fd) };
    this.#cache.put(path, d);
    this.#tree.dir(path);
    return d;
  }

  /**
   * Creates the missing directories of `path` one by one, each under its
   * resolved parent. A whiteout of this layer in the way (`.wh.d`, then
   * `d/x` without a `d/` entry) becomes a directory too: see
   * {@link #dirOverWhiteout}.
   */
  #makeParents(path: string): number {
    const comps = path.split("/");
    let prev = this.#root;
    let prefix = "";
    try {
      for (let i = 0; i < comps.length; i++) {
        prefix = joinPath(prefix, comps[i]);
        let fd: number;
        try {
          fd = this.#openDir(prefix);
        } catch (e) {
          if (!(e instanceof SysError)) throw e;
          let over: Stat | null = null;
          if (e.errno === Errno.ENOTDIR) {
            // Only here (an error path) is the name looked at.
            over = statxAtOrNull(prev, comps[i]);
            if (
              over === null ||
              !this.#codec.whitedOutAt(prev, "", comps[i], over)
            ) {
              throw this.#notADir(prefix, e);
            }
            this.#removeAll(prev, comps[i], prefix, over);
          } else if (e.errno !== Errno.ENOENT) throw this.#notADir(prefix, e);
          try {
            mkdirat(prev, comps[i], 0o755);
          } catch (e2) {
            // EEXIST: a dangling symlink or a non-directory sits there.
            throw this.#notADir(prefix, e2);
          }
          if (over !== null) {
            this.#dirOverWhiteout(
              prev,
              comps[i],
              prefix,
              over,
              this.#current ?? prefix,
            );
          }
          fd = this.#openDir(prefix);
        }
        if (prev !== this.#root) close(prev);
        prev = fd;
      }
      return prev;
    } catch (e) {
      if (prev !== this.#root) close(prev);
      throw e;
    }
  }

  /**
   * Opens directory `path` (O_PATH) under the root. A symlink on the way is
   * followed (inside the root) only when it stays in the layer.
   *
   * @throws {InvalidArchive} A symlink on the way leads out of the layer.
   * @throws {SysError} ENOENT, ENOTDIR, ELOOP as openat2 gives them.
   */
  #openDir(path: string): number {
    try {
      // Nearly always no symlink is on the way: one syscall, as before.
      return openat2(
        this.#root,
        path,
        O.PATH | O.DIRECTORY,
        RESOLVE_FLAGS | RESOLVE.NO_SYMLINKS,
      );
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== Errno.ELOOP) throw e;
    }
    this.#refuseEscapingLinks(path);
    return openat2(this.#root, path, O.PATH | O.DIRECTORY, RESOLVE_FLAGS);
  }

  /**
   * Walks `path` the way the kernel resolves it, reading each symlink on the
   * way, and refuses the entry when a link's target climbs above the layer
   * root. An absolute target starts again at the layer root (what the
   * container sees, and what RESOLVE_IN_ROOT does). Containment itself stays
   * with the kernel: this only decides refuse or follow.
   */
  #refuseEscapingLinks(path: string): void {
    // A stack of components still to walk (next last), each with the symlink
    // whose target brought it (-1: the path itself, which is clean).
    const todo: [string, number][] = path.split("/").reverse().map((c) => [
      c,
      -1,
    ]);
    const links: [link: string, target: string][] = [];
    const at: string[] = []; // resolved so far: real directories only
    while (todo.length > 0) {
      const [c, from] = todo.pop()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        if (at.length > 0) at.pop();
        else {
          // `from` is never -1: the path itself has no "..".
          const [link, target] = links[from] ?? [path, ""];
          throw new InvalidArchive(
            `its parent ${
              JSON.stringify(path)
            } is reached through the symlink ${JSON.stringify(link)} -> ${
              JSON.stringify(target)
            }, which leads out of the layer; refusing to write through it`,
            this.#current,
          );
        }
        continue;
      }
      at.push(c);
      const rel = at.join("/");
      if (statxAtOrNull(this.#root, rel)?.kind !== "symlink") continue;
      // Past the kernel's limit openat2 reports ELOOP itself.
      if (links.length === MAX_LINKS) return;
      const target = decodeName(readlinkAt(this.#root, rel), false);
      if (target === null) {
        throw new InvalidArchive(
          `its parent ${JSON.stringify(path)} is reached through the symlink ${
            JSON.stringify(rel)
          }, whose target is not UTF-8; cannot check that it stays in the layer`,
          this.#current,
        );
      }
      links.push([rel, target]);
      at.pop();
      if (target.startsWith("/")) at.length = 0;
      const parts = target.split("/");
      for (let i = parts.length - 1; i >= 0; i--) {
        todo.push([parts[i], links.length - 1]);
      }
    }
  }

  #notADir(path: string, e: unknown): unknown {
    if (
      e instanceof SysError &&
      (e.errno === Errno.ENOTDIR || e.errno === Errno.ELOOP ||
        e.errno === Errno.EEXIST || e.errno === Errno.ENOENT)
    ) {
      return new InvalidArchive(
        `parent ${
          JSON.stringify(path)
        } is not a directory (a file, a dangling symlink or a whiteout is in the way)`,
        this.#current,
        { cause: e },
      );
    }
    return e;
  }

  // ---- replacing ----------------------------------------------------------

  /**
   * Removes whatever is at `base` in `dir` (last entry wins), without
   * following it; forgets it in the tree and drops cached fds that may have
   * been reached through it.
   */
  #removeExisting(dir: CachedDir, base: string, path: string): void {
    const st = statxAtOrNull(dir.fd, base);
    if (st === null) return;
    this.#removeAll(dir.fd, base, path, st);
  }

  /**
   * Removes `base` (stat `st`, or looked up when null) below `dirFd` with
   * everything under it, keeping the applied size and the sets right: an
   * inode of this tar whose last name goes leaves {@link #ours} (and its
   * bytes the size). Only a directory the tree knows can hold entries of
   * this tar, so only such a directory is walked first.
   */
  #removeAll(
    dirFd: number,
    base: string,
    path: string,
    st: Stat | null,
  ): void {
    st ??= statxAtOrNull(dirFd, base);
    if (st === null) return;
    if (st.kind === "dir") {
      if (this.#tree.get(path) !== undefined) this.#forgetBelow(dirFd, base);
    } else this.#forget(st, 1);
    removeAllAt(dirFd, base);
    if (st.kind === "dir" || st.kind === "symlink") this.#cache.clear(dirFd);
    this.#tree.remove(path);
  }

  /** `names` names of inode `st` are going away: forget it when they were its last. */
  #forget(st: Stat, names: number): void {
    if (st.dev !== this.#dev || st.nlink > names) return;
    const ino = Number(st.ino);
    if (this.#fresh) {
      if (this.#notOurs.has(ino)) {
        this.#notOurs.delete(ino); // a whiteout: no bytes to take back
        return;
      }
    } else {
      if (!this.#ours.has(ino)) return;
      this.#ours.delete(ino);
    }
    if (st.kind === "file") this.#size -= st.size;
  }

  /** Before the directory `name` below `fd` is removed: forgets this tar's inodes in it. */
  #forgetBelow(fd: number, name: string | Uint8Array<ArrayBuffer>): void {
    const seen = new Map<number, [Stat, number]>();
    const walk = (pfd: number, n: string | Uint8Array<ArrayBuffer>) => {
      let sub: number;
      try {
        sub = openDirNoFollow(pfd, n);
      } catch (e) {
        if (e instanceof SysError) return; // gone, or not a directory
        throw e;
      }
      try {
        for (const ent of readdirFd(sub)) {
          if (ent.isDir === true) {
            walk(sub, ent.name);
            continue;
          }
          const st = statxAtOrNull(sub, ent.name);
          if (st === null) continue;
          if (st.kind === "dir") walk(sub, ent.name);
          // In a fresh root whiteouts too: #forget drops them from #notOurs.
          else if (st.dev === this.#dev && (this.#fresh || this.#isOurs(st))) {
            const k = Number(st.ino);
            const had = seen.get(k);
            seen.set(k, [st, (had?.[1] ?? 0) + 1]);
          }
        }
      } finally {
        close(sub);
      }
    };
    walk(fd, name);
    for (const [st, n] of seen.values()) this.#forget(st, n);
  }

  /** Runs `create` and, when the name exists, removes it and runs it once more. */
  #create(dir: CachedDir, base: string, path: string, create: () => void) {
    try {
      create();
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== Errno.EEXIST) throw e;
      this.#removeExisting(dir, base, path);
      create();
    }
  }

  // ---- entry kinds -------------------------------------------------------

  /** The fd of the file whose body is being written, for {@link #writeBody}. */
  #bodyFd = -1;
  readonly #writeBody = (chunk: Uint8Array) => {
    writeAll(this.#bodyFd, chunk as Uint8Array<ArrayBuffer>);
    this.#size += chunk.length;
  };

  #file(
    h: TarHeader,
    path: string,
    parent: string,
    base: string,
  ): Promise<void> | undefined {
    const dir = this.#dir_(parent)!;
    const c = libc();
    const flags = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC;
    const mode = h.mode & 0o7777;
    // The name is encoded right before each call: removing what is in the
    // way encodes other names into the same scratch buffer.
    let fd = c.openat(dir.fd, scratchCstr(base), flags, mode & 0o777);
    if (fd < 0) {
      const e = new SysError("openat", errno(), base);
      if (e.errno !== Errno.EEXIST) throw e;
      this.#removeExisting(dir, base, path);
      fd = check(
        c.openat(dir.fd, scratchCstr(base), flags, mode & 0o777),
        "openat",
        base,
      );
    }
    let later = false;
    try {
      if (!this.#fresh) this.#ours.add(fstatIno(fd));
      if (h.size > 0) {
        this.#bodyFd = fd;
        if (!this.#reader.readBodyNow(this.#writeBody)) {
          later = true;
          return this.#fileLater(h, fd, dir, base);
        }
      }
      this.#fileMeta(h, fd, dir);
    } catch (e) {
      this.#dropPartial(dir, base);
      throw e;
    } finally {
      if (!later) close(fd);
    }
  }

  /** The rest of {@link #file} when its body is not buffered yet; closes `fd`. */
  async #fileLater(
    h: TarHeader,
    fd: number,
    dir: CachedDir,
    base: string,
  ): Promise<void> {
    try {
      await this.#reader.readBody(this.#writeBody);
      this.#fileMeta(h, fd, dir);
    } catch (e) {
      this.#dropPartial(dir, base);
      throw e;
    } finally {
      close(fd);
    }
  }

  /**
   * Removes the file an entry that failed had begun (a body cut short, a
   * failed chown): nothing half-written looks like a whole file. The
   * apply fails; the entries before it stay.
   */
  #dropPartial(dir: CachedDir, base: string): void {
    try {
      unlinkat(dir.fd, base);
    } catch { /* the entry's own error is the one to report */ }
  }

  /** Owner, mode, xattrs and times of the regular file open at `fd`. */
  #fileMeta(h: TarHeader, fd: number, dir: CachedDir): void {
    const mode = h.mode & 0o7777;
    let chmod = (mode & 0o7000) !== 0 || (mode & this.#umask) !== 0;
    if (this.#o.sameOwner && (h.uid !== this.#uid || h.gid !== dir.gid)) {
      fchown(fd, h.uid, h.gid);
      // chown(2) clears setuid/setgid of a regular file: chmod comes after.
      chmod ||= (mode & 0o6000) !== 0;
    }
    if (chmod) fchmod(fd, mode);
    if (h.xattrs.size > 0) this.#fdXattrs(fd, h);
    futimens(fd, ...times(h));
  }

  #dir(h: TarHeader, path: string, parent: string, base: string): void {
    const dir = this.#dir_(parent)!;
    try {
      mkdirat(dir.fd, base, 0o755);
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== Errno.EEXIST) throw e;
      const st = statxAtOrNull(dir.fd, base);
      if (st?.kind !== "dir") {
        // A file, symlink or node: replace it (never follow a symlink here).
        this.#removeAll(dir.fd, base, path, st);
        mkdirat(dir.fd, base, 0o755);
        if (st !== null) this.#dirOverWhiteout(dir.fd, base, path, st, h.name);
      }
      // An existing directory is merged into, as tar does.
    }
    const node = this.#tree.dir(path);
    node.kind = Kind.Dir;
    node.meta = h;
  }

  #symlink(h: TarHeader, path: string, parent: string, base: string): void {
    const dir = this.#dir_(parent)!;
    // The target is stored verbatim: it is only ever resolved later, inside
    // the container's root (or under RESOLVE_IN_ROOT by this engine).
    this.#create(dir, base, path, () => symlinkat(h.linkname, dir.fd, base));
    this.#own(dir, base);
    this.#metaAt(h, dir, base, false);
  }

  #node(h: TarHeader, path: string, parent: string, base: string): void {
    const isDev = h.type !== "fifo";
    if (
      h.type === "char" && h.devmajor === 0 && h.devminor === 0 &&
      this.#codec.zeroDeviceIsWhiteout
    ) {
      // moby's overlay2 stores it, and the path vanishes from
      // the union view and comes back out of a diff as a deletion.
      throw new InvalidArchive(
        `a character device 0:0 is how ${this.#codec.name} marks a deletion: stored in this layer it would delete the path from the layers below, not add a device; remove it from the image, or use the vfs backend`,
        h.name,
      );
    }
    if (isDev && !this.#o.devices) return; // rootless: see apply_tar.ts
    const dir = this.#dir_(parent)!;
    const type = h.type === "char"
      ? S.IFCHR
      : h.type === "block"
      ? S.IFBLK
      : S.IFIFO;
    const mode = h.mode & 0o7777;
    const dev = isDev ? makedev(h.devmajor, h.devminor) : 0n;
    this.#create(
      dir,
      base,
      path,
      () => mknodat(dir.fd, base, type | (mode & 0o777), dev),
    );
    this.#own(dir, base);
    this.#metaAt(h, dir, base, true);
  }

  /** Records the entry just made at `base` in `dir` as this tar's. */
  #own(dir: CachedDir, base: string): void {
    if (this.#fresh) return; // see #fresh
    const st = statxAtOrNull(dir.fd, base);
    if (st !== null) this.#ours.add(Number(st.ino));
  }

  /** True when the non-directory `st` is one this tar made as an entry. */
  #isOurs(st: Stat): boolean {
    if (st.dev !== this.#dev) return false;
    const ino = Number(st.ino);
    return this.#fresh ? !this.#notOurs.has(ino) : this.#ours.has(ino);
  }

  /**
   * The inode at `target` when it is a non-directory this tar made (and so
   * may be linked to), else null.
   */
  #ownTarget(target: string): Stat | null {
    if (target === "") return null;
    const [tparent, tbase] = splitPath(target);
    const td = this.#dir_(tparent, false);
    if (td === null) return null;
    const st = statxAtOrNull(td.fd, tbase);
    if (
      st === null || st.kind === "dir" || !this.#isOurs(st)
    ) return null;
    return st;
  }

  #hardlink(h: TarHeader, path: string, parent: string, base: string): void {
    // The reader refused targets that climb out, and links to themselves.
    const target = layerPath(h.linkname) ?? "";
    const t = this.#ownTarget(target);
    if (t === null) {
      throw new InvalidArchive(
        `hardlink target ${
          JSON.stringify(h.linkname)
        } is not an earlier file of this archive; a layer can only link to its own entries`,
        h.name,
      );
    }
    const [tparent, tbase] = splitPath(target);
    const link = () => {
      const td = this.#dir_(tparent)!;
      const d = this.#dir_(parent)!;
      // Flags 0: link the target entry itself; a symlink is not followed.
      linkat(td.fd, tbase, d.fd, base, 0);
    };
    try {
      link();
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== Errno.EEXIST) throw e;
      this.#removeExisting(this.#dir_(parent)!, base, path);
      if (this.#ownTarget(target)?.ino !== t.ino) {
        throw new InvalidArchive(
          `hardlink target ${
            JSON.stringify(h.linkname)
          } was removed by this entry`,
          h.name,
        );
      }
      link();
    }
    // No metadata: a hardlink shares its target's inode, which already has it.
  }

  /** Owner, mode, xattrs and times of a symlink or node, never following it. */
  #metaAt(h: TarHeader, dir: CachedDir, base: string, chmodOk: boolean): void {
    const mode = h.mode & 0o7777;
    let chmod = chmodOk &&
      ((mode & 0o7000) !== 0 || (mode & this.#umask) !== 0);
    if (this.#o.sameOwner && (h.uid !== this.#uid || h.gid !== dir.gid)) {
      fchownat(dir.fd, base, h.uid, h.gid, AT.SYMLINK_NOFOLLOW);
      chmod ||= chmodOk && (mode & 0o6000) !== 0;
    }
    // Symlinks have no mode of their own on Linux: never chmod them (chmod(2)
    // would change the target).
    if (chmod) fchmodatNoFollow(dir.fd, base, mode);
    for (const [k, v] of h.xattrs) {
      if (isContentXattr(this.#codec, k)) {
        this.#xattr(() => lsetxattrAt(dir.fd, base, k, v), k, false);
      }
    }
    utimensat(dir.fd, base, ...times(h), AT.SYMLINK_NOFOLLOW);
  }

  /**
   * The tar's xattrs of a file or directory, on its open fd. Never taken
   * from a tar: the union fs's own (they would let a layer forge redirects,
   * origins, metacopy or opaque state) and `security.selinux` (the host
   * labels views with `context=`, as containers/storage does); kept:
   * `security.capability` and every other content xattr.
   */
  #fdXattrs(fd: number, h: TarHeader): void {
    for (const [k, v] of h.xattrs) {
      if (isContentXattr(this.#codec, k)) {
        this.#xattr(() => fsetxattr(fd, k, v), k, true);
      }
    }
  }

  /**
   * Sets one xattr, tolerating what containers/storage and moby tolerate:
   * ENOTSUP (the file system has no xattrs of that namespace), and EPERM when
   * unprivileged (trusted.*, security.*) or on a symlink/node (the kernel
   * allows user.* only on regular files and directories).
   */
  #xattr(set: () => void, name: string, regular: boolean): void {
    try {
      set();
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      if (e.errno === Errno.ENOTSUP) return;
      if (
        e.errno === Errno.EPERM && (this.#uid !== 0 || !regular ||
          name.startsWith("user."))
      ) return;
      throw e;
    }
  }

  // ---- whiteouts: the WhiteoutTarget the codec applies them with ------------

  /**
   * The directory `parent` of a whiteout or opaque marker `entry`, resolved
   * without following any symlink (see RESOLVE_REAL); missing directories are
   * created when `create`, else `null` is returned for them.
   */
  #realDir(parent: string, entry: string, create: boolean): CachedDir | null {
    if (parent === "") return this.#rootDir;
    let fd: number;
    try {
      fd = openat2(this.#root, parent, O.PATH | O.DIRECTORY, RESOLVE_REAL);
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      if (e.errno === Errno.ELOOP) {
        throw new InvalidArchive(
          `its directory ${
            JSON.stringify(parent)
          } resolves through a symlink; a whiteout or opaque marker must name a real directory of the layer (rebuild the layer without the symlink in its path)`,
          entry,
          { cause: e },
        );
      }
      // ENOENT without a symlink on the way: only real dirs are missing.
      if (e.errno === Errno.ENOENT && create) fd = this.#makeParents(parent);
      else if (
        !create && (e.errno === Errno.ENOENT || e.errno === Errno.ENOTDIR)
      ) return null;
      else throw this.#notADir(parent, e);
    }
    // The real dir at `parent`: what a cached fd for it must be too.
    const d = { fd, gid: this.#inheritedGid(fd) };
    this.#cache.put(parent, d);
    this.#tree.dir(parent);
    return d;
  }

  /**
   * The whiteout `.wh.<name>` of directory `parent`. A whiteout hides what
   * the parent layers have at `<name>`, never what this tar made there
   * (OCI image-spec, layer.md: "Whiteout files MUST only apply to resources
   * in lower/parent layers. Files that are present in the same layer as a
   * whiteout file can only be hidden by whiteout files in subsequent
   * layers"), whatever the order of the two entries:
   *
   * - a directory of this tar (named, or a parent of its entries) stays,
   *   and the parents' entries below it are hidden: the codec applies it
   *   as an opaque marker of that directory (overlay: the opaque xattr;
   *   vfs: only this tar's entries stay in the copy);
   * - a non-directory of this tar stays as it is: it hides the parents'
   *   entry already. {@link remove} and {@link makeDeviceWhiteout} keep it,
   *   as they meet the name anyway;
   * - the other order, `.wh.<name>` first, is {@link #dirOverWhiteout}.
   *
   * Only directories of this tar are in the tree, so a whiteout of a
   * parent's entry (the common case) costs no syscall more than before.
   */
  #whiteout(parent: string, name: string, entry: string): void {
    const path = joinPath(parent, name);
    if (this.#tree.get(path) !== undefined) {
      const dir = this.#realDir(parent, entry, false);
      // A node may be a symlink the tar passed through: not a dir of its own.
      if (dir !== null && statxAtOrNull(dir.fd, name)?.kind === "dir") {
        this.#codec.applyOpaque(this, path, entry);
        return;
      }
    }
    this.#codec.applyWhiteout(this, parent, name, entry);
  }

  /**
   * A directory of this tar was just made at `base` of `dirFd` (`path`) in
   * place of `st`. When `st` was a whiteout of the format (overlay's 0/0
   * device: a `.wh.<name>` earlier in this tar), the parents' `<name>` stays
   * deleted (see {@link #whiteout}), so the new directory hides their
   * entries below it: opaque, as the kernel makes a directory created over
   * a whiteout. vfs deleted the parents' copy already and has no whiteout on
   * disk; aufs keeps `.wh.<name>` beside the directory.
   */
  #dirOverWhiteout(
    dirFd: number,
    base: string,
    path: string,
    st: Stat,
    entry: string,
  ): void {
    if (!this.#codec.whitedOutAt(dirFd, "", base, st)) return;
    try {
      this.#codec.applyOpaque(this, path, entry);
    } catch (e) {
      // The opaque marker must name the real directory (#realDir): a
      // directory made through a symlink of the layer over its whiteout
      // cannot be marked where the tar names it. Refused, and said so.
      if (
        !(e instanceof InvalidArchive) ||
        !/resolves through a symlink/.test(e.message)
      ) {
        throw e;
      }
      throw new InvalidArchive(
        `the directory ${
          JSON.stringify(path)
        } replaces a whiteout of this layer through a symlink on its path, so it cannot be made opaque there (rebuild the layer naming the directory itself)`,
        entry,
        { cause: e },
      );
    }
  }

  /** True when `st` is a non-directory this tar made (a whiteout keeps it: see {@link #whiteout}). */
  #ownNonDir(st: Stat): boolean {
    return st.kind !== "dir" && this.#isOurs(st);
  }

  remove(parent: string, name: string, entry: string): void {
    // Delete from the copy; nothing to do when the parent is not there.
    const dir = this.#realDir(parent, entry, false);
    if (dir === null) return;
    const st = statxAtOrNull(dir.fd, name);
    if (st === null || this.#ownNonDir(st)) return;
    this.#removeAll(dir.fd, name, joinPath(parent, name), st);
  }

  makeDeviceWhiteout(parent: string, name: string, entry: string): void {
    const path = joinPath(parent, name);
    const dir = this.#realDir(parent, entry, true)!;
    // Not recorded as this tar's: a whiteout is never a hardlink target.
    try {
      mknodat(dir.fd, name, S.IFCHR, 0n);
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== Errno.EEXIST) throw e;
      const st = statxAtOrNull(dir.fd, name);
      if (st !== null && this.#ownNonDir(st)) return;
      this.#removeAll(dir.fd, name, path, st);
      mknodat(dir.fd, name, S.IFCHR, 0n);
    }
    if (this.#fresh) {
      const st = statxAtOrNull(dir.fd, name);
      if (st !== null) this.#notOurs.add(Number(st.ino));
    }
  }

  keepOnlyArchived(parent: string, entry: string): void {
    const dir = this.#realDir(parent, entry, false);
    if (dir === null) return;
    const node = this.#tree.get(parent);
    // O_PATH fds cannot be listed: open the dir itself, again without symlinks.
    const fd = openat2(
      this.#root,
      parent === "" ? "." : parent,
      O.RDONLY | O.DIRECTORY | O.NOFOLLOW,
      RESOLVE_REAL,
    );
    try {
      this.#clearExcept(fd, node);
    } finally {
      close(fd);
    }
    this.#cache.clear(dir.fd);
  }

  setDirXattr(
    parent: string,
    name: string,
    value: Uint8Array,
    entry: string,
  ): void {
    this.#realDir(parent, entry, true);
    this.#tree.dir(parent).endXattr = [name, value];
  }

  /**
   * An opaque directory (its marker was just set on `fd`) hides everything
   * below it already: whiteouts this tar made in it (`d/.wh.p` with
   * `d/.wh..wh..opq`, or with `.wh.d` when d is this tar's) would only show
   * in the view as entries that cannot be opened (overlay reads an opaque
   * directory as it is), so they go. Only opaque directories are read.
   */
  #dropWhiteoutsIn(fd: number, path: string): void {
    for (const ent of readdirFd(fd)) {
      if (ent.isDir === true) continue;
      const name = decodeName(ent.name);
      if (name === null) continue; // tar names are UTF-8: none of ours
      const st = statxAtOrNull(fd, name);
      if (st !== null && this.#codec.whitedOutAt(fd, "", name, st)) {
        this.#removeAll(fd, name, joinPath(path, name), st);
      }
    }
  }

  /** Removes every entry of directory `fd` that this tar did not create (vfs opaque). */
  #clearExcept(fd: number, node: EntryNode | undefined): void {
    for (const ent of readdirFd(fd)) {
      const name = decodeName(ent.name);
      // A directory of this tar (named, or a parent of its entries; a
      // symlink passed through counts too): kept, and cleared in turn.
      const child = name === null ? undefined : node?.children?.get(name);
      if (child !== undefined) {
        if (ent.isDir === false) continue;
        let sub: number;
        try {
          sub = openDirNoFollow(fd, ent.name);
        } catch (e) {
          if (
            e instanceof SysError &&
            (e.errno === Errno.ELOOP || e.errno === Errno.ENOTDIR)
          ) continue;
          throw e;
        }
        try {
          this.#clearExcept(sub, child);
        } finally {
          close(sub);
        }
        continue;
      }
      if (ent.isDir !== true) {
        // A file, symlink or node of this tar stays.
        const st = statxAtOrNull(fd, ent.name);
        if (st === null) continue;
        if (st.kind !== "dir" && this.#isOurs(st)) continue;
      }
      removeAllAt(fd, ent.name);
    }
  }

  // ---- directories, at the end ---------------------------------------------

  #finishDirs(): void {
    this.#cache.clear();
    for (const [path, node] of this.#tree.dirsPostOrder()) {
      let fd: number;
      try {
        fd = path === ""
          ? openat2(this.#root, ".", O.RDONLY | O.DIRECTORY, RESOLVE_FLAGS)
          : openat2(
            this.#root,
            path,
            O.RDONLY | O.DIRECTORY | O.NOFOLLOW,
            RESOLVE_FLAGS,
          );
      } catch (e) {
        // Gone or replaced by a non-directory since: nothing of it to set.
        if (
          e instanceof SysError &&
          (e.errno === Errno.ENOENT || e.errno === Errno.ENOTDIR ||
            e.errno === Errno.ELOOP)
        ) continue;
        throw e;
      }
      try {
        const h = node.meta;
        if (h !== null) {
          if (this.#o.sameOwner) fchown(fd, h.uid, h.gid);
          fchmod(fd, h.mode);
          this.#fdXattrs(fd, h);
        }
        if (node.endXattr !== null) {
          fsetxattr(fd, node.endXattr[0], node.endXattr[1]);
          this.#dropWhiteoutsIn(fd, path);
        }
        if (h !== null) futimens(fd, ...times(h));
      } finally {
        close(fd);
      }
    }
  }
}

/** True when the directory `fd` (any fd of it, O_PATH too) has no entries. */
function isEmptyDir(fd: number): boolean {
  const d = openDirNoFollow(fd, ".");
  try {
    return readdirFd(d).length === 0;
  } finally {
    close(d);
  }
}

/** atime (mtime when the tar has none) and mtime, as futimens/utimensat take them. */
function times(
  h: TarHeader,
): [atime: number, atimeNsec: number, mtime: number, mtimeNsec: number] {
  return h.atime === undefined
    ? [h.mtime, h.mtimeNsec, h.mtime, h.mtimeNsec]
    : [h.atime, h.atimeNsec ?? 0, h.mtime, h.mtimeNsec];
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes a name from the kernel, `null` when it is not UTF-8. */
function decodeName(b: Uint8Array, nulTerminated = true): string | null {
  try {
    return utf8.decode(nulTerminated ? b.subarray(0, b.length - 1) : b);
  } catch {
    return null;
  }
}
