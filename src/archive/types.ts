/**
 * The types the archive code shares with the store and the backends: layer
 * dirs, changes, progress, options, and the whiteout codec interface. Types
 * only: this module imports no implementation of src/archive, so every file
 * can import it without forming a cycle (the implementations are gathered in
 * `layer.ts` for the store).
 *
 * @module
 */

import type { DirEntry, Stat } from "../sys/fs_walk_linux.ts";
import type { EntryType } from "./tar/header.ts";

/** On-disk whiteout format of a backend. */
export type WhiteoutFormat = "overlay" | "aufs" | "vfs";

/**
 * The formats `applyTar` and `packDir` know: a backend's {@link WhiteoutFormat},
 * or `"none"` (no conversion: `.wh.` entries are ordinary files).
 */
export type ExtractFormat = "overlay" | "aufs" | "vfs" | "none";

/** What `applyDiff` accepts as a tar. */
export type TarSource = ReadableStream<Uint8Array> | Uint8Array | Deno.FsFile;

/**
 * One changed path of a layer, as `docker diff` reports it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Change } from "./types.ts";
 * const changes: Change[] = [
 *   { path: "/etc/hosts", kind: "modify" },
 *   { path: "/tmp/x", kind: "delete" },
 * ];
 * assert.deepEqual(changes.filter((c) => c.kind === "delete").map((c) => c.path), ["/tmp/x"]);
 * ```
 */
export interface Change {
  /** Absolute path inside the layer's root filesystem. */
  path: string;
  /** What happened to it. */
  kind: "add" | "modify" | "delete";
}

/** The dirs of a layer, whatever names its whiteout codec. */
interface LayerDirsBase {
  /** The layer's own directory (`diff/<id>`, or a staging dir). */
  dir: string;
  /**
   * The parents' `diff/` dirs, nearest first. Codecs of upper dirs
   * (overlay/aufs) use them to tell "add" from "modify"; a full-tree codec
   * (vfs) compares `dir` against `parentDirs[0]` (its parent's full tree).
   */
  parentDirs: string[];
}

/**
 * How the store describes a layer directory to the archive code: its dirs and
 * its whiteout codec, given either as the codec itself or (for the transition)
 * by the backend's format name, resolved with `whiteoutCodec(format,
 * { userXattr })`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { LayerDirs } from "./types.ts";
 * const dirs: LayerDirs = { dir: "/s/diff/a", format: "overlay", parentDirs: [] };
 * assert.equal(dirs.parentDirs.length, 0);
 * ```
 */
export type LayerDirs =
  & LayerDirsBase
  & (
    | {
      /** The codec of the store's backend. */
      codec: WhiteoutCodec;
      format?: never;
      userXattr?: never;
    }
    | {
      codec?: never;
      /** Whiteout format of the store's backend. */
      format: WhiteoutFormat;
      /**
       * Overlay opaque markers go in `user.overlay.opaque` instead of
       * `trusted.overlay.opaque` (stores mounted with `userxattr`).
       * @default {false}
       */
      userXattr?: boolean;
    }
  );

/** Progress of a long archive operation. */
export interface ArchiveProgress {
  /** Tar bytes consumed or produced so far. */
  bytes: number;
  /** Entries processed so far. */
  entries: number;
}

/** Options of `applyLayerTar`. */
export interface ApplyLayerOptions {
  /** Called now and then during extraction. */
  onProgress?: (p: ArchiveProgress) => void;
}

/** Options of `layerTar`. */
export interface LayerTarOptions {
  /** Called now and then while the tar is produced. */
  onProgress?: (p: ArchiveProgress) => void;
}

// ---- whiteout codecs -------------------------------------------------------

/** What a tar entry is for a codec, by its name (see `WhiteoutCodec.classify`). */
export type WhiteoutAction =
  /** Not a whiteout: extract normally. */
  | { readonly kind: "entry" }
  /**
   * A whiteout or opaque marker the format keeps as a file (aufs): extract
   * it normally once its directory is known to resolve without symlinks.
   */
  | { readonly kind: "marker" }
  /** A file of aufs's hardlink pool: extract it, drop the pool at the end. */
  | { readonly kind: "pool" }
  /** aufs internals: ignore the entry. */
  | { readonly kind: "skip" }
  /** `.wh..wh..opq`: the parent dir is opaque. */
  | { readonly kind: "opaque" }
  /** `.wh.<name>`: `<name>` in the parent dir is deleted. */
  | { readonly kind: "whiteout"; readonly name: string };

/**
 * What the extractor offers a codec to apply an OCI whiteout with (containers/
 * storage's `TarWhiteoutHandler`). Every method resolves `parent` (a cleaned
 * path below the layer root, "" for the root) without following any symlink
 * and throws `InvalidArchive` naming `entry` when a component is one: a
 * whiteout or opaque marker must name a real directory of the layer.
 */
export interface WhiteoutTarget {
  /**
   * Removes `name` from `parent`; nothing when either is missing, or when
   * `name` is a non-directory this archive made (a whiteout hides only the
   * parent layers' entries; the extractor turns one naming a directory of
   * this archive into the codec's opaque marker of it instead).
   */
  remove(parent: string, name: string, entry: string): void;
  /**
   * Makes `name` in `parent` (created as needed) an overlay whiteout: a 0/0
   * char device; nothing when `name` is a non-directory this archive made
   * (it hides the parents' entry already).
   */
  makeDeviceWhiteout(parent: string, name: string, entry: string): void;
  /** Removes everything in `parent` this archive did not create; nothing when it is missing. */
  keepOnlyArchived(parent: string, entry: string): void;
  /** Sets xattr `name` on `parent` (created as needed) when directories are finished. */
  setDirXattr(
    parent: string,
    name: string,
    value: Uint8Array,
    entry: string,
  ): void;
}

/** What an entry of a layer dir means to Changes (see `WhiteoutCodec.readEntry`). */
export type DiskEntry =
  /** Part of the layer's content. */
  | { readonly kind: "content" }
  /** The union fs's own bookkeeping: not a change. */
  | { readonly kind: "internal" }
  /** A whiteout: `name` in this directory is deleted. */
  | { readonly kind: "whiteout"; readonly name: string };

/**
 * One whiteout format: how OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`) are
 * stored in a layer dir and read back, and which xattrs belong to the union
 * file system rather than to the layer. Extract (tar -> disk), export
 * (disk -> tar) and changes (disk -> change list) consult only this; after
 * containers/storage's `TarWhiteoutConverter` (pkg/archive/archive.go).
 *
 * Every method is called per entry on hot paths: keep them cheap, and let the
 * common case (not a whiteout) return after one test.
 *
 * @example A backend names its codec
 * ```ts
 * import assert from "node:assert/strict";
 * import type { WhiteoutCodec } from "./types.ts";
 * import { overlayCodec } from "./whiteout/mod.ts";
 * const backend: { whiteouts: WhiteoutCodec } = { whiteouts: overlayCodec };
 * assert.equal(backend.whiteouts.name, "overlay");
 * ```
 */
export interface WhiteoutCodec {
  /** The format's name (`layerfs info`, error messages, `whiteoutCodec(name)`). */
  readonly name: ExtractFormat;
  /**
   * True when a layer dir is a full copy of its parent plus its changes
   * (deletions are real, nothing marks them): diffs compare two trees.
   * False when it holds only the layer's own entries (an upper dir).
   */
  readonly fullTree: boolean;
  /**
   * True when a character device 0:0 on disk is this format's whiteout
   * (overlay): a tar's own 0:0 device cannot be stored, extraction refuses it.
   */
  readonly zeroDeviceIsWhiteout: boolean;
  /**
   * True when a file named `.wh.*` on disk is the user's own, not this
   * format's whiteout (overlay marks deletions with devices, vfs deletes):
   * no OCI layer can carry it (every reader takes it for a whiteout), so
   * an export refuses it rather than delete a file in whoever applies it.
   * False for aufs (such files are its whiteouts) and none (passed through
   * as the caller wrote them).
   */
  readonly whiteoutNamesAreData: boolean;

  // tar -> disk

  /**
   * What the entry `entryName` (cleaned to `path`, last component `base`, of
   * tar type `type`) is.
   * @throws {InvalidArchive} `.wh.` naming no file (empty, `.`, `..`).
   */
  classify(
    type: EntryType,
    path: string,
    base: string,
    entryName: string,
  ): WhiteoutAction;
  /**
   * Applies the whiteout `.wh.<name>` of directory `parent` (entry `entry`)
   * when `<name>` is not a directory of this archive.
   */
  applyWhiteout(
    t: WhiteoutTarget,
    parent: string,
    name: string,
    entry: string,
  ): void;
  /**
   * Applies the opaque marker of directory `parent` (entry `entry`); also
   * for a directory of this archive that a whiteout of the same archive
   * names, before or after it (it hides the parents' entries below it).
   */
  applyOpaque(t: WhiteoutTarget, parent: string, entry: string): void;
  /**
   * True for xattrs of the union fs itself: never taken from a tar (they would
   * forge its state), never exported or compared as content.
   */
  unionXattr(name: string): boolean;

  // disk -> tar, disk -> changes

  /** True for a name at a layer dir's root that is the union fs's bookkeeping. */
  internalAtRoot(name: string): boolean;
  /**
   * The stat of `e` (in directory `dirFd`) when it is a whiteout the tar must
   * write as a `.wh.<name>` marker (overlay's 0/0 devices), else null.
   */
  deviceWhiteout(dirFd: number, e: DirEntry): Stat | null;
  /** True when a directory's xattrs make it opaque (the tar needs a synthesized marker). */
  opaqueByXattrs(xattrs: Map<string, Uint8Array>): boolean;
  /**
   * Refuses a layer entry whose xattrs make it unexportable file by file.
   * @throws {StoreError} Naming `path` and the xattr.
   */
  checkExportable(xattrs: Map<string, Uint8Array>, path: string): void;
  /** What entry `e` (named `name`) of directory `dirFd` means; `st` when already known. */
  readEntry(dirFd: number, e: DirEntry, name: string, st?: Stat): DiskEntry;
  /** True when the directory `fd` (whose xattrs are `xattrs`) is opaque. */
  isOpaqueDir(fd: number, xattrs: Map<string, Uint8Array>): boolean;
  /** True when directory `rel` below layer root `rootFd` is opaque. */
  isOpaqueAt(rootFd: number, rel: string): boolean;
  /**
   * True when `name` is whited out in directory `rel` of layer root `rootFd`;
   * `st` is what the layer has at that name (null: nothing).
   */
  whitedOutAt(
    rootFd: number,
    rel: string,
    name: string,
    st: Stat | null,
  ): boolean;
}
